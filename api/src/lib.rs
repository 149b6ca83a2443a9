//! The Cowans HTTP API: `/api/v1` (jobs, queues, audit) behind API-key authentication and
//! roles, one error shape, plus the ops endpoints. The binary (`main.rs`) only wires settings.

pub mod auth;
pub mod error;
pub mod events;
mod ndjson;
pub mod openapi;
pub mod rate_limit;
pub mod routes;
mod submit_group;

use std::time::Duration;

use axum::{
    Router,
    extract::{DefaultBodyLimit, rejection::JsonRejection},
    routing::{get, post},
};
use cowans_core::KindRegistry;
use cowans_store::PgPool;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::Value;

use crate::{auth::Principal, error::ApiError};

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    pub pool: PgPool,
    pub limiter: std::sync::Arc<rate_limit::KeyRateLimiter>,
    /// Events relayed from the `cowans_events` channel.
    pub events: tokio::sync::broadcast::Sender<Value>,
    /// JWT bearer tokens, when configured (API keys always work).
    pub jwt: Option<std::sync::Arc<auth::JwtConfig>>,
    /// Registered job kinds: payloads are checked against their types at submit.
    pub kinds: std::sync::Arc<KindRegistry>,
    /// API keys recently looked up.
    pub keys: std::sync::Arc<auth::KeyCache>,
    /// Single submits, committed in groups.
    pub submits: submit_group::SubmitGroup,
    /// See [`ApiOptions::lease_ttl`].
    pub lease_ttl: Duration,
}

/// Per-process options of the API.
pub struct ApiOptions {
    pub rate: rate_limit::RateConfig,
    pub jwt: Option<auth::JwtConfig>,
    /// The job kinds with their payload types (default: none registered, unknown kinds accepted).
    pub kinds: KindRegistry,
    /// Most single submits per group commit (1 = no grouping).
    pub submit_group_max: usize,
    /// The workers' `engine.lease_ttl`: a worker not seen for this long no longer counts as live
    /// in the queue summaries.
    pub lease_ttl: Duration,
}

impl Default for ApiOptions {
    fn default() -> Self {
        Self {
            rate: Default::default(),
            jwt: None,
            kinds: KindRegistry::new(),
            submit_group_max: 500,
            lease_ttl: Duration::from_secs(30),
        }
    }
}

/// Request bodies above this are refused (413).
pub const BODY_LIMIT: usize = 16 << 20;
/// A request taking longer is answered 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The whole HTTP surface with the default per-key rate limit. `metrics` is the process's
/// Prometheus handle (for `/metrics`).
pub fn router(pool: PgPool, metrics: PrometheusHandle) -> Router {
    router_with(pool, metrics, ApiOptions::default())
}

/// The whole HTTP surface with `options`. Starts the event relay, so call it inside a Tokio
/// runtime.
pub fn router_with(pool: PgPool, metrics: PrometheusHandle, options: ApiOptions) -> Router {
    let state = ApiState {
        pool: pool.clone(),
        limiter: std::sync::Arc::new(rate_limit::KeyRateLimiter::new(options.rate)),
        events: events::start_relay(pool.clone()),
        jwt: options.jwt.map(std::sync::Arc::new),
        kinds: std::sync::Arc::new(options.kinds),
        keys: std::sync::Arc::default(),
        submits: submit_group::SubmitGroup::start(pool.clone(), options.submit_group_max),
        lease_ttl: options.lease_ttl,
    };
    let api = Router::new()
        .route(
            "/api/v1/jobs",
            post(routes::jobs::submit).get(routes::jobs::list),
        )
        .route("/api/v1/jobs/bulk", post(routes::jobs::submit_many))
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
        .route("/api/v1/queues/{queue}/dead", get(routes::dead::list))
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
        .route("/api/v1/events", get(events::sse))
        .route("/api/v1/events/ws", get(events::websocket))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route_layer(axum::middleware::from_fn(track))
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(
            tower::ServiceBuilder::new()
                .layer(axum::error_handling::HandleErrorLayer::new(
                    |_: tower::BoxError| async {
                        ApiError::new(
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            "timeout",
                            format!("the request took longer than {REQUEST_TIMEOUT:?}"),
                        )
                    },
                ))
                .timeout(REQUEST_TIMEOUT),
        )
        .with_state(state);
    api.merge(cowans_service::ops::router(pool, metrics))
}

/// A JSON body that could not be read, as a 422 (or 413) naming what is wrong.
pub(crate) fn json_error(e: &JsonRejection) -> ApiError {
    match e {
        JsonRejection::BytesRejection(_)
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
        {
            ApiError::new(
                e.status(),
                "too_large",
                format!("the body is larger than {BODY_LIMIT} bytes"),
            )
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send Content-Type: application/json",
        ),
        _ => ApiError::invalid("body", e.body_text()),
    }
}

/// Records a mutating call; a failure to record is logged, never hidden from operators.
pub(crate) async fn audit(
    state: &ApiState,
    who: &Principal,
    action: &str,
    target: Option<&str>,
    details: Value,
) {
    let entry = cowans_store::NewAudit {
        actor: who.actor.clone(),
        role: who.role.as_str().to_owned(),
        action: action.to_owned(),
        target: target.map(str::to_owned),
        client_addr: who.client_addr.clone(),
        details,
    };
    if let Err(e) = cowans_store::audit(&state.pool, &entry).await {
        tracing::error!(error = %e, action, "could not write the audit log");
    }
}

/// Publishes an event on the `cowans_events` channel (every API instance relays it to its
/// SSE/WebSocket clients); a failure is logged, the call it reports on has already succeeded.
pub(crate) async fn publish(state: &ApiState, event: Value) {
    if let Err(e) = cowans_store::publish_event(&state.pool, &event).await {
        tracing::warn!(error = %e, "could not publish an event");
    }
}

/// Requests by route, method and status, and their latency.
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
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("cowans_api_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("cowans_api_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
