//! The Cowans HTTP API: `/api/v1` (jobs, queues, dead letters, batches, audit, live events)
//! behind API-key or JWT authentication and roles, one error shape, plus the ops endpoints.
//! Every action goes through the engine's [`FrontDoor`]; this crate only speaks HTTP.
//!
//! [`ApiServer`] is the server with its background services (event relay, group commit), which
//! start and stop with it; [`run_api`] is the whole process minus the command line.

pub mod auth;
pub mod commands;
pub mod console;
pub mod error;
pub mod events;
pub mod input;
mod ndjson;
pub mod openapi;
pub mod rate_limit;
pub mod routes;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use axum::{
    Router,
    extract::DefaultBodyLimit,
    routing::{get, post, put},
};
use cowans_queue::{App, EventRelay, FrontDoor};
use cowans_service::{Settings, apps, backends, database, ops};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    /// Every action goes through here.
    pub front: FrontDoor,
    /// The catalog application's front door, when it is enabled.
    pub catalog: Option<cowans_catalog::Catalog>,
    pub relay: Arc<EventRelay>,
    pub limiter: Arc<rate_limit::KeyRateLimiter>,
    /// Failed authentications per client address.
    pub auth_failures: Arc<rate_limit::KeyRateLimiter>,
    /// JWT bearer tokens, when configured (API keys always work).
    pub jwt: Option<Arc<auth::JwtConfig>>,
    /// API keys recently looked up.
    pub keys: Arc<auth::KeyCache>,
    /// The OpenAPI document, made once from the routes and the registered kinds.
    pub openapi: openapi::Document,
}

/// Per-process options of the HTTP layer.
#[derive(Default)]
pub struct ApiOptions {
    pub rate: rate_limit::RateConfig,
    /// Failed authentications allowed per client address (default: a burst of 20, then one per
    /// second).
    pub auth_failures: Option<rate_limit::RateConfig>,
    pub jwt: Option<auth::JwtConfig>,
    /// Serve the catalog's routes (shops, pulls, products) through this.
    pub catalog: Option<cowans_catalog::Catalog>,
}

/// Request bodies above this are refused (413).
pub const BODY_LIMIT: usize = 16 << 20;
/// Requests answered, by `route` (the matched path pattern), `method` and `status`.
pub const REQUESTS_METRIC: &str = "cowans_api_requests_total";
/// Time to answer a request, by `route`.
pub const REQUEST_DURATION_METRIC: &str = "cowans_api_request_duration_seconds";
/// A client must send its whole request head within this, or it is disconnected.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A request taking longer is answered 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `run_api` waits for the event relay to listen before giving up.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The API server: its router and the services that live as long as it (the event relay; the
/// front door's group commit). Call inside a Tokio runtime.
pub struct ApiServer {
    state: ApiState,
    router: Router,
}

impl ApiServer {
    /// `ops`: the process's `/health`, `/ready`, `/metrics` router, served beside the API.
    pub fn new(front: FrontDoor, ops: Router, options: ApiOptions) -> Self {
        let state = ApiState {
            openapi: openapi::Document::new(front.kinds()),
            relay: Arc::new(front.event_relay()),
            catalog: options.catalog,
            front,
            limiter: Arc::new(rate_limit::KeyRateLimiter::new(options.rate)),
            auth_failures: Arc::new(rate_limit::KeyRateLimiter::new(
                options
                    .auth_failures
                    .unwrap_or(rate_limit::RateConfig::AUTH_FAILURES),
            )),
            jwt: options.jwt.map(Arc::new),
            keys: Arc::default(),
        };
        let router = router(state.clone()).merge(ops);
        Self { state, router }
    }

    /// The whole HTTP surface (serve it with `into_make_service_with_connect_info::<SocketAddr>`
    /// so the audit log records client addresses).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    pub fn front(&self) -> &FrontDoor {
        &self.state.front
    }

    /// Resolves once the event relay listens: events published from then on reach clients.
    pub async fn ready(&self) {
        self.state.relay.ready().await;
    }

    /// Serves on `listener` until `shutdown` resolves, then stops the services: live streams
    /// end, queued submits are committed and answered, later ones are refused.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        // Each connection is served by hyper directly (not `axum::serve`) for one setting axum
        // does not expose: a client that does not finish its request head within
        // `HEADER_READ_TIMEOUT` is disconnected, so idle half-open requests cannot pile up.
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        let (closing, closing_rx) = tokio::sync::watch::channel(false);
        let mut connections = tokio::task::JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: let it pass, then accept again.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            // Answers go out as soon as they are written: without TCP_NODELAY a response written
            // in two parts waits for the client's delayed ACK (~40 ms) before its second part.
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY on a connection");
            }
            // The client's address, for the audit log and the failed-authentication limit.
            let service = hyper_util::service::TowerToHyperService::new(
                self.router
                    .clone()
                    .layer(axum::Extension(axum::extract::ConnectInfo(peer))),
            );
            let conn = http
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                .with_upgrades();
            let mut closing = closing_rx.clone();
            connections.spawn(async move {
                let mut conn = std::pin::pin!(conn);
                tokio::select! {
                    done = conn.as_mut() => {
                        if let Err(e) = done {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                        return;
                    }
                    _ = closing.wait_for(|c| *c) => conn.as_mut().graceful_shutdown(),
                }
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            });
            while connections.try_join_next().is_some() {}
        }
        drop(listener);
        // Open event streams never end by themselves: end them, then let every connection
        // finish the request it is on.
        self.state.relay.shutdown().await;
        let _ = closing.send(true);
        while connections.join_next().await.is_some() {}
        self.state.front.shutdown().await;
        Ok(())
    }
}

/// The whole API process minus the command line: connect (migrating the engine's and the
/// enabled applications' tables), assemble the applications' job kinds (`settings.apps`, picked
/// from `available`), serve on `listener` until `shutdown`, export the queue gauges meanwhile.
/// `ready` is called with the address once the server accepts requests and its live events flow.
pub async fn run_api(
    settings: Settings,
    available: &[App],
    metrics: PrometheusHandle,
    listener: TcpListener,
    ready: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let migrations = apps::migrations(available, &settings.apps)?;
    let pool = database::connect(&settings.database, &migrations).await?;
    let jobs = apps::assemble(available, &settings, &pool).await?;
    let kinds = jobs
        .registry()
        .reject_unknown(settings.api.reject_unknown_kinds);
    let routes = backends::connect(&settings, &pool).await?;
    let front = FrontDoor::builder(pool.clone())
        .backends(routes.clone())
        .kinds(kinds)
        .lease_ttl(settings.engine.lease_ttl)
        .group_commit(settings.api.submit_group_max)
        .build();
    let catalog = jobs
        .apps()
        .contains(&cowans_catalog::APP.name)
        .then(|| cowans_catalog::Catalog::new(front.clone(), &settings.catalog))
        .transpose()?;
    if let Some(c) = &catalog
        && let Some(b) = backends::catalog_budgets(&settings).await?
    {
        c.use_redis_budgets(b);
    }
    let options = ApiOptions {
        rate: rate_limit::RateConfig {
            per_second: settings.api.rate_per_second,
            burst: f64::from(settings.api.rate_burst),
        },
        auth_failures: Some(rate_limit::RateConfig {
            per_second: settings.api.auth_failures_per_second,
            burst: f64::from(settings.api.auth_failure_burst),
        }),
        jwt: auth::JwtConfig::from_settings(&settings.api).map_err(anyhow::Error::msg)?,
        catalog,
    };
    let server = ApiServer::new(
        front,
        ops::router(
            pool.clone(),
            metrics,
            &migrations.run,
            routes.redis().cloned(),
        ),
        options,
    );
    // The queue gauges on this process's /metrics, as on every worker's.
    let stop_gauges = CancellationToken::new();
    let gauges = tokio::spawn(cowans_queue::export_queue_gauges(
        std::sync::Arc::new(routes),
        settings.engine.clone(),
        stop_gauges.clone(),
    ));
    let addr = listener.local_addr().context("the API's listen address")?;
    // Live events must flow before the API says it is ready; a shutdown meanwhile still counts.
    let mut shutdown = Box::pin(shutdown);
    let listening = tokio::select! {
        listening = tokio::time::timeout(READY_TIMEOUT, server.ready()) => Some(listening),
        _ = &mut shutdown => None,
    };
    match listening {
        Some(Ok(())) => ready(addr),
        Some(Err(_)) => {
            stop_gauges.cancel();
            anyhow::bail!(
                "could not LISTEN for live events within {READY_TIMEOUT:?} (is the database out of connections?)"
            );
        }
        None => {
            // Asked to stop before ready: stop the services without serving.
            server.serve(listener, std::future::ready(())).await?;
            stop_gauges.cancel();
            return Ok(());
        }
    }
    let served = server.serve(listener, shutdown).await;
    stop_gauges.cancel();
    let _ = gauges.await;
    served.context("serving the API")
}

fn router(state: ApiState) -> Router {
    Router::new()
        .route(
            "/api/v1/jobs",
            post(routes::jobs::submit).get(routes::jobs::list),
        )
        .route("/api/v1/jobs/bulk", post(routes::jobs::submit_many))
        .route("/api/v1/jobs/export", get(routes::exports::jobs))
        .route("/api/v1/jobs/{id}", get(routes::jobs::get))
        .route("/api/v1/jobs/{id}/cancel", post(routes::jobs::cancel))
        .route("/api/v1/jobs/{id}/retry", post(routes::jobs::retry))
        .route("/api/v1/kinds", get(routes::kinds::list))
        .route("/api/v1/queues", get(routes::queues::list))
        .route("/api/v1/queues/{queue}", get(routes::queues::get))
        .route("/api/v1/queues/{queue}/pause", post(routes::queues::pause))
        .route(
            "/api/v1/queues/{queue}/resume",
            post(routes::queues::resume),
        )
        .route(
            "/api/v1/queues/{queue}/limits",
            put(routes::queues::set_limits),
        )
        .route("/api/v1/queues/{queue}/dead", get(routes::dead::list))
        .route(
            "/api/v1/queues/{queue}/dead/export",
            get(routes::exports::dead),
        )
        .route(
            "/api/v1/queues/{queue}/dead/redrive",
            post(routes::dead::redrive),
        )
        .route(
            "/api/v1/queues/{queue}/dead/purge",
            post(routes::dead::purge),
        )
        .route("/api/v1/batches", post(routes::batches::create))
        .route("/api/v1/batches/{id}", get(routes::batches::get))
        .route("/api/v1/batches/{id}/cancel", post(routes::batches::cancel))
        .route("/api/v1/audit", get(routes::audit::list))
        .route("/api/v1/errors", get(routes::errors::list))
        .route("/api/v1/audit/export", get(routes::exports::audit))
        .route(
            "/api/v1/shops",
            post(routes::shops::add).get(routes::shops::list),
        )
        .route(
            "/api/v1/shops/{shop}",
            get(routes::shops::get)
                .patch(routes::shops::patch)
                .delete(routes::shops::delete),
        )
        .route("/api/v1/shops/{shop}/pull", post(routes::shops::start_pull))
        .route("/api/v1/shops/{shop}/pulls", get(routes::shops::pulls))
        .route(
            "/api/v1/shops/{shop}/webhooks",
            post(routes::shops::subscribe),
        )
        .route(
            "/api/v1/shops/{shop}/products",
            get(routes::shops::products),
        )
        .route(
            "/api/v1/shops/{shop}/products/export",
            get(routes::exports::products),
        )
        .route(
            "/api/v1/shops/{shop}/products/{id}",
            get(routes::shops::product).patch(routes::changes::edit_product),
        )
        .route("/api/v1/shops/{shop}/changes", get(routes::changes::list))
        .route(
            "/api/v1/shops/{shop}/changes/export",
            get(routes::exports::changes),
        )
        .route(
            "/api/v1/shops/{shop}/changes/approve",
            post(routes::changes::approve),
        )
        .route(
            "/api/v1/shops/{shop}/changes/reject",
            post(routes::changes::reject),
        )
        .route(
            "/api/v1/shops/{shop}/changes/{id}",
            get(routes::changes::get),
        )
        .route(
            "/api/v1/shops/{shop}/changes/{id}/resolve",
            post(routes::changes::resolve),
        )
        .route("/api/v1/shops/{shop}/push", post(routes::changes::push))
        .route(
            "/api/v1/shops/{shop}/bulk-edits",
            post(routes::bulk_edits::start).get(routes::bulk_edits::list),
        )
        .route(
            "/api/v1/shops/{shop}/bulk-edits/preview",
            post(routes::bulk_edits::preview),
        )
        .route("/api/v1/bulk-edits/{id}", get(routes::bulk_edits::get))
        .route(
            "/api/v1/shops/{shop}/imports",
            post(routes::imports::create)
                .layer(DefaultBodyLimit::max(routes::imports::IMPORT_LIMIT)),
        )
        .route(
            "/api/v1/shops/{shop}/imports/{id}",
            get(routes::imports::report),
        )
        .route("/api/v1/pulls/{id}", get(routes::shops::pull))
        .route("/webhooks/shopify", post(routes::webhooks::shopify))
        .route("/api/v1/events", get(events::sse))
        .route("/api/v1/events/ws", get(events::websocket))
        .route("/api/v1/events/schema.json", get(events::schema))
        .route("/api/v1/openapi.json", get(openapi::document))
        .merge(console::router())
        .route_layer(axum::middleware::from_fn(track))
        .layer(axum::middleware::from_fn(input::refuse_unstorable_uri))
        .layer(axum::middleware::from_fn(input::refuse_oversized_head))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(
            tower::ServiceBuilder::new()
                .layer(axum::error_handling::HandleErrorLayer::new(
                    |_: tower::BoxError| async { timed_out() },
                ))
                .timeout(REQUEST_TIMEOUT),
        )
        .with_state(state)
}

/// The answer to a request that took longer than [`REQUEST_TIMEOUT`].
fn timed_out() -> ApiError {
    ApiError::Unavailable(format!("the request took longer than {REQUEST_TIMEOUT:?}"))
}

/// Requests by route, method and status (timed-out ones too, as 503), and their latency.
async fn track(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = req.method().to_string();
    let started = std::time::Instant::now();
    // The request timeout, inside the count: a request that runs out of time is a 503 here
    // (the outer timeout layer only catches what no route matched).
    let response = match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => axum::response::IntoResponse::into_response(timed_out()),
    };
    let status = response.status().as_u16().to_string();
    metrics::counter!(REQUESTS_METRIC, "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!(REQUEST_DURATION_METRIC, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
