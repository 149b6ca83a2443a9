//! `cowans-shopsim`: a stand-in for the Shopify Admin GraphQL API (2026-10), for tests and for
//! running the system without a real shop. It answers real GraphQL (async-graphql) for products,
//! variants, inventory, the shop, locations, bulk operations and webhook subscriptions, gating
//! version-dependent rules by the request's API version (what is faithful, approximated or
//! absent: `SIMULATED.md`); charges every request by Shopify's cost rules against a leaky
//! bucket per plan (THROTTLED as HTTP 200, MAX_COST_EXCEEDED over 1000, `extensions.cost` on
//! every answer); rejects bad tokens exactly as Shopify does; and offers a control API (`/__sim/...`) for
//! seeding, plans, a movable clock, fault injection, merchant edits and a request log.

pub mod bulk;
pub mod model;
pub mod schema;
pub mod search;
pub mod server;
pub mod shop;
pub mod webhooks;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

pub use shop::{Faults, ForcedUserError, Plan, Shop, ShopState};

/// How to start a simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub plan: Plan,
    /// Access tokens accepted in `X-Shopify-Access-Token`.
    pub tokens: Vec<String>,
    /// The app secret webhooks are signed with.
    pub secret: String,
    pub products: usize,
    pub variants: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            plan: Plan::Standard,
            tokens: vec!["shpat_sim".to_owned()],
            secret: "sim-secret".to_owned(),
            products: 0,
            variants: 1,
        }
    }
}

/// A running simulator.
pub struct Running {
    pub addr: SocketAddr,
    pub shop: Shop,
    task: tokio::task::JoinHandle<()>,
    webhook_task: tokio::task::JoinHandle<()>,
    results_dir: std::path::PathBuf,
}

impl Running {
    /// `http://127.0.0.1:PORT`, the base URL for a client.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
        self.webhook_task.abort();
        let _ = std::fs::remove_dir_all(&self.results_dir);
    }
}

/// Starts a simulator on `listener` (use port 0 in tests).
pub fn start(listener: tokio::net::TcpListener, config: &SimConfig) -> std::io::Result<Running> {
    let addr = listener.local_addr()?;
    let mut state = ShopState::new(config.plan, config.tokens.clone(), config.secret.clone());
    let now = state.clock.now();
    state.catalog.seed(config.products, config.variants, now);
    state.base_url = format!("http://{addr}");
    std::fs::create_dir_all(&state.results_dir)?;
    let results_dir = state.results_dir.clone();
    let (outbox, deliveries) = tokio::sync::mpsc::unbounded_channel();
    state.outbox = Some(outbox);
    let shop = Shop(Arc::new(Mutex::new(state)));
    let app = server::router(server::AppState {
        shop: shop.clone(),
        schema: schema::build(shop.clone()),
    });
    let webhook_task = tokio::spawn(webhooks::run(shop.clone(), deliveries));
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "simulator stopped");
        }
    });
    Ok(Running {
        addr,
        shop,
        task,
        webhook_task,
        results_dir,
    })
}
