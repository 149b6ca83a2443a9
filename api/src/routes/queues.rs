//! Queues: stats, pause, resume.

use axum::{
    Json,
    extract::{Path, State},
};
use cowans_core::QueueName;
use serde_json::{Value, json};

use crate::{
    ApiState,
    auth::{Principal, Role},
    error::{ApiError, ApiResult},
};

pub(crate) fn queue_name(q: &str) -> ApiResult<QueueName> {
    QueueName::new(q.to_owned()).map_err(|e| ApiError::invalid("queue", e.to_string()))
}

fn view(s: &cowans_store::QueueStats) -> Value {
    json!({
        "queue": s.queue,
        "counts": {
            "available": s.available, "scheduled": s.scheduled, "running": s.running,
            "completed": s.completed, "cancelled": s.cancelled, "dead": s.dead,
        },
        "oldest_available_at": s.oldest_available_at,
        "oldest_available_age_seconds": s.oldest_available_age_secs,
        "completed_last_minute": s.completed_last_minute,
        "paused": s.paused,
        "workers": s.workers,
        "worker_concurrency": s.worker_concurrency,
        "refreshed_at": s.refreshed_at,
    })
}

/// `GET /api/v1/queues` (viewer): the leader's summary of every queue.
#[utoipa::path(get, path = "/api/v1/queues", tag = "queues", responses((status = 200, description = "{queues: [summary]}")), security(("api_key" = [])), description = "Role: viewer")]
pub async fn list(State(state): State<ApiState>, who: Principal) -> ApiResult<Json<Value>> {
    who.require(Role::Viewer)?;
    let stats = cowans_store::queue_stats(&state.pool, None, state.lease_ttl).await?;
    Ok(Json(
        json!({ "queues": stats.iter().map(view).collect::<Vec<_>>() }),
    ))
}

/// `GET /api/v1/queues/{queue}` (viewer).
#[utoipa::path(get, path = "/api/v1/queues/{queue}", tag = "queues", params(("queue" = String, Path)),
    responses((status = 200, description = "The queue's summary"), (status = 404, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody)), security(("api_key" = [])), description = "Role: viewer")]
pub async fn get(
    State(state): State<ApiState>,
    who: Principal,
    Path(q): Path<String>,
) -> ApiResult<Json<Value>> {
    who.require(Role::Viewer)?;
    let q = queue_name(&q)?;
    let stats = cowans_store::queue_stats(&state.pool, Some(q.as_str()), state.lease_ttl).await?;
    let s = stats.first().ok_or_else(|| {
        ApiError::not_found(format!(
            "queue {q} has no summary yet (no jobs, or the leader has not counted it)"
        ))
    })?;
    Ok(Json(view(s)))
}

async fn set_paused(
    state: &ApiState,
    who: &Principal,
    q: &str,
    paused: bool,
) -> ApiResult<Json<Value>> {
    who.require(Role::Operator)?;
    let q = queue_name(q)?;
    cowans_store::set_paused(&state.pool, q.as_str(), paused).await?;
    let action = if paused {
        "queue.pause"
    } else {
        "queue.resume"
    };
    crate::audit(state, who, action, Some(&format!("queue:{q}")), json!({})).await;
    let event =
        json!({ "type": if paused { "queue.paused" } else { "queue.resumed" }, "queue": q });
    crate::publish(state, event).await;
    Ok(Json(json!({ "queue": q, "paused": paused })))
}

/// `POST /api/v1/queues/{queue}/pause` (operator).
#[utoipa::path(post, path = "/api/v1/queues/{queue}/pause", tag = "queues", params(("queue" = String, Path)), responses((status = 200, description = "{queue, paused}")), security(("api_key" = [])), description = "Role: operator")]
pub async fn pause(
    State(state): State<ApiState>,
    who: Principal,
    Path(q): Path<String>,
) -> ApiResult<Json<Value>> {
    set_paused(&state, &who, &q, true).await
}

/// `POST /api/v1/queues/{queue}/resume` (operator).
#[utoipa::path(post, path = "/api/v1/queues/{queue}/resume", tag = "queues", params(("queue" = String, Path)), responses((status = 200, description = "{queue, paused}")), security(("api_key" = [])), description = "Role: operator")]
pub async fn resume(
    State(state): State<ApiState>,
    who: Principal,
    Path(q): Path<String>,
) -> ApiResult<Json<Value>> {
    set_paused(&state, &who, &q, false).await
}
