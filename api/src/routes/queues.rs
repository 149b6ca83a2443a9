//! Queues: summaries, pause, resume, fleet-wide limits.

use axum::{Json, extract::State};
use chrono::{DateTime, Utc};
use cowans_core::{QueueName, Role};
use cowans_queue::{QueueStats, RateLimit, StoreError};
use serde::{Deserialize, Serialize};

use crate::{
    ApiState,
    auth::Principal,
    error::{ApiError, ApiResult, ErrorBody},
};

pub(crate) fn queue_name(q: &str) -> ApiResult<QueueName> {
    QueueName::new(q.to_owned()).map_err(|e| ApiError::invalid("queue", e.to_string()))
}

/// Jobs of a queue by state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueueCounts {
    pub available: i64,
    pub scheduled: i64,
    pub running: i64,
    pub completed: i64,
    pub cancelled: i64,
    pub dead: i64,
}

/// A queue's summary, as the leader last counted it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueueView {
    pub queue: String,
    pub counts: QueueCounts,
    pub oldest_available_at: Option<DateTime<Utc>>,
    /// How long the oldest available job has waited (0 when none waits).
    pub oldest_available_age_seconds: f64,
    pub completed_last_minute: i64,
    pub paused: bool,
    /// Live worker processes consuming the queue, and their summed concurrency.
    pub workers: i64,
    pub worker_concurrency: i64,
    pub refreshed_at: DateTime<Utc>,
}

impl From<QueueStats> for QueueView {
    fn from(s: QueueStats) -> Self {
        Self {
            counts: QueueCounts {
                available: s.available,
                scheduled: s.scheduled,
                running: s.running,
                completed: s.completed,
                cancelled: s.cancelled,
                dead: s.dead,
            },
            queue: s.queue,
            oldest_available_at: s.oldest_available_at,
            oldest_available_age_seconds: s.oldest_available_age_secs,
            completed_last_minute: s.completed_last_minute,
            paused: s.paused,
            workers: s.workers,
            worker_concurrency: s.worker_concurrency,
            refreshed_at: s.refreshed_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueueList {
    pub queues: Vec<QueueView>,
}

/// `GET /api/v1/queues` (viewer): the leader's summary of every queue.
#[utoipa::path(get, path = "/api/v1/queues", tag = "queues", responses((status = 200, body = QueueList)), security(("api_key" = [])), description = "Role: viewer")]
pub async fn list(State(state): State<ApiState>, who: Principal) -> ApiResult<Json<QueueList>> {
    who.require(Role::Viewer)?;
    let queues = state.front.queues().await?;
    Ok(Json(QueueList {
        queues: queues.into_iter().map(Into::into).collect(),
    }))
}

/// `GET /api/v1/queues/{queue}` (viewer).
#[utoipa::path(get, path = "/api/v1/queues/{queue}", tag = "queues", params(("queue" = String, Path)),
    responses((status = 200, body = QueueView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("api_key" = [])), description = "Role: viewer")]
pub async fn get(
    State(state): State<ApiState>,
    who: Principal,
    super::ApiPath(q): super::ApiPath<String>,
) -> ApiResult<Json<QueueView>> {
    who.require(Role::Viewer)?;
    let q = queue_name(&q)?;
    Ok(Json(state.front.queue(&q).await?.into()))
}

/// A queue's paused state after a pause or resume.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PausedState {
    pub queue: String,
    pub paused: bool,
}

async fn set_paused(
    state: &ApiState,
    who: &Principal,
    q: &str,
    paused: bool,
) -> ApiResult<Json<PausedState>> {
    who.require(Role::Operator)?;
    let q = queue_name(q)?;
    state.front.set_paused(&who.actor, &q, paused).await?;
    Ok(Json(PausedState {
        queue: q.to_string(),
        paused,
    }))
}

/// `POST /api/v1/queues/{queue}/pause` (operator).
#[utoipa::path(post, path = "/api/v1/queues/{queue}/pause", tag = "queues", params(("queue" = String, Path)),
    responses((status = 200, body = PausedState), (status = 422, body = ErrorBody)), security(("api_key" = [])), description = "Role: operator")]
pub async fn pause(
    State(state): State<ApiState>,
    who: Principal,
    super::ApiPath(q): super::ApiPath<String>,
) -> ApiResult<Json<PausedState>> {
    set_paused(&state, &who, &q, true).await
}

/// `POST /api/v1/queues/{queue}/resume` (operator).
#[utoipa::path(post, path = "/api/v1/queues/{queue}/resume", tag = "queues", params(("queue" = String, Path)),
    responses((status = 200, body = PausedState), (status = 422, body = ErrorBody)), security(("api_key" = [])), description = "Role: operator")]
pub async fn resume(
    State(state): State<ApiState>,
    who: Principal,
    super::ApiPath(q): super::ApiPath<String>,
) -> ApiResult<Json<PausedState>> {
    set_paused(&state, &who, &q, false).await
}

/// A queue's fleet-wide limits; absent fields remove that limit.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Most jobs of the queue running at once across every worker.
    pub concurrency_limit: Option<u32>,
    /// At most `rate_jobs` jobs start per `rate_period_ms`...
    pub rate_jobs: Option<u32>,
    pub rate_period_ms: Option<u64>,
    /// ...per job `rate_key` instead of for the whole queue.
    #[serde(default)]
    pub rate_by_key: bool,
}

/// `PUT /api/v1/queues/{queue}/limits` (operator): sets or removes the queue's fleet-wide
/// concurrency and rate limits.
#[utoipa::path(put, path = "/api/v1/queues/{queue}/limits", tag = "queues", params(("queue" = String, Path)), request_body = Limits,
    responses((status = 200, body = Limits), (status = 422, body = ErrorBody)), security(("api_key" = [])), description = "Role: operator")]
pub async fn set_limits(
    State(state): State<ApiState>,
    who: Principal,
    super::ApiPath(q): super::ApiPath<String>,
    body: crate::input::ApiJson<Limits>,
) -> ApiResult<Json<Limits>> {
    who.require(Role::Operator)?;
    let q = queue_name(&q)?;
    let crate::input::ApiJson(limits) = body;
    let rate = RateLimit::from_fields(limits.rate_jobs, limits.rate_period_ms, limits.rate_by_key)
        .map_err(StoreError::from)?;
    state
        .front
        .set_limits(&who.actor, &q, limits.concurrency_limit, rate)
        .await?;
    Ok(Json(limits))
}
