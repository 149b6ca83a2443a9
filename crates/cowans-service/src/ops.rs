//! The ops endpoints every Cowans process serves: `/health` (alive), `/ready` (database
//! reachable and migrations current, and Redis answering when queues live there) and `/metrics`
//! (Prometheus text).

use std::{future::Future, sync::Arc};

use cowans_core::queue::Driver;

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::{PgPool, migrate::Migrator};
use tokio::net::TcpListener;

#[derive(Clone)]
struct OpsState {
    pool: PgPool,
    metrics: PrometheusHandle,
    apps: Vec<&'static Migrator>,
    redis: Option<Arc<dyn Driver>>,
}

/// `apps`: the enabled applications' migrators, which `/ready` also waits for; `redis`: the
/// Redis of the queues stored there, which must answer too.
pub fn router(
    pool: PgPool,
    metrics: PrometheusHandle,
    apps: &[&'static Migrator],
    redis: Option<Arc<dyn Driver>>,
) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready))
        .route("/metrics", get(render_metrics))
        // The API's error shape, so a wrong method on an ops route is answered like any other.
        .method_not_allowed_fallback(|| async {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                r#"{"error":{"code":"method_not_allowed","message":"this route does not take this method","details":null}}"#,
            )
        })
        .with_state(OpsState {
            pool,
            metrics,
            apps: apps.to_vec(),
            redis,
        })
}

async fn ready(State(s): State<OpsState>) -> impl IntoResponse {
    match cowans_store::migrations_pending(&s.pool, &s.apps).await {
        Ok(0) => match &s.redis {
            Some(r) => match r.ping().await {
                Ok(()) => (StatusCode::OK, "ready".to_owned()),
                Err(e) => {
                    tracing::warn!(error = %e, "readiness check failed: Redis");
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Redis unreachable".to_owned(),
                    )
                }
            },
            None => (StatusCode::OK, "ready".to_owned()),
        },
        Ok(n) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{n} migrations pending; run cowans-worker migrate"),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "database unreachable".to_owned(),
            )
        }
    }
}

async fn render_metrics(State(s): State<OpsState>) -> impl IntoResponse {
    s.metrics.run_upkeep();
    (
        [("content-type", "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
