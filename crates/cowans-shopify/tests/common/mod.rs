//! Shared by the client's tests here and the simulator's fidelity tests (which include this file
//! by path): a simulator on port 0, a client for it with quick retries, the simulator's control
//! API, and a webhook receiver written as an app would write it.

// Each test binary uses a different part of these helpers.
#![allow(dead_code)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use cowans_shopify::{Client, ClientConfig, RetryPolicy};
use cowans_shopsim::{Faults, Plan, Running, SimConfig};
use serde_json::{Value, json};

pub const TOKEN: &str = "shpat_test_token_0123456789";
pub const VERSION: &str = "2026-10";

pub async fn sim(products: usize, variants: usize) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    cowans_shopsim::start(
        listener,
        &SimConfig {
            plan: Plan::Standard,
            tokens: vec![TOKEN.to_owned()],
            secret: "whsec".to_owned(),
            products,
            variants,
        },
    )
    .unwrap()
}

pub fn client(sim: &Running) -> Client {
    let mut cfg = ClientConfig::new(sim.base_url(), VERSION, TOKEN);
    cfg.retry = RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
    };
    Client::new(cfg).unwrap()
}

pub async fn control(sim: &Running, method: reqwest::Method, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .request(method, format!("{}/__sim/{path}", sim.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "control {path}: {}", r.status());
    r.json().await.unwrap_or(Value::Null)
}

pub async fn log(sim: &Running) -> Vec<Value> {
    control(sim, reqwest::Method::GET, "requests", json!(null))
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
}

pub async fn faults(sim: &Running, f: Faults) {
    control(
        sim,
        reqwest::Method::PUT,
        "faults",
        serde_json::to_value(f).unwrap(),
    )
    .await;
}

#[derive(Default)]
pub struct Inbox {
    pub accepted: Vec<(String, Value)>,
    pub rejected: usize,
    pub duplicates: usize,
    dedup: Option<cowans_shopify::webhook::Dedup>,
}

/// A webhook receiver as an app would write it: verify the HMAC over the raw body first,
/// de-duplicate by webhook id, then accept.
pub async fn receiver(secret: &'static str) -> (String, Arc<std::sync::Mutex<Inbox>>) {
    use axum::{body::Bytes, extract::State, http::HeaderMap, http::StatusCode, routing::post};
    let inbox = Arc::new(std::sync::Mutex::new(Inbox {
        dedup: Some(cowans_shopify::webhook::Dedup::new(10_000)),
        ..Default::default()
    }));
    async fn handle(
        State((secret, inbox)): State<(&'static str, Arc<std::sync::Mutex<Inbox>>)>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        let h = cowans_shopify::webhook::WebhookHeaders::parse(|n| headers.get(n)?.to_str().ok());
        let mut inbox = inbox.lock().unwrap();
        let Ok(h) = h else {
            inbox.rejected += 1;
            return StatusCode::BAD_REQUEST;
        };
        if !cowans_shopify::webhook::verify(secret.as_bytes(), &body, &h.hmac) {
            inbox.rejected += 1;
            return StatusCode::UNAUTHORIZED;
        }
        if !inbox.dedup.as_mut().unwrap().first_time(&h.webhook_id) {
            inbox.duplicates += 1;
            return StatusCode::OK;
        }
        let v: Value = serde_json::from_slice(&body).unwrap();
        inbox.accepted.push((h.topic, v));
        StatusCode::OK
    }
    let app = axum::Router::new()
        .route("/hooks", post(handle))
        .with_state((secret, inbox.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hooks"), inbox)
}

pub async fn wait_inbox(
    inbox: &Arc<std::sync::Mutex<Inbox>>,
    what: &str,
    ok: impl Fn(&Inbox) -> bool,
) {
    let t0 = Instant::now();
    while !ok(&inbox.lock().unwrap()) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
