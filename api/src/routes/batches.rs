//! Batches: create with their jobs, progress, cancel.

use std::collections::BTreeMap;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use cowans_core::Role;
use cowans_queue::{BatchCallback, BatchProgress};
use serde::{Deserialize, Serialize};

use crate::{
    ApiState,
    auth::Principal,
    error::{ApiError, ApiResult, ErrorBody},
    routes::jobs::{MAX_BULK, SubmitJob, Submitted, into_jobs},
};

/// A job enqueued once when every job of the batch has finished; its args become
/// `{"batch_id", "counts", "args"}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Callback {
    pub queue: String,
    pub kind: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub args: serde_json::Value,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBatch {
    #[serde(default)]
    pub description: String,
    pub jobs: Vec<SubmitJob>,
    pub callback: Option<Callback>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchCreated {
    pub id: i64,
    /// One result per job, in order (duplicates of unique jobs are not part of the batch).
    pub results: Vec<Submitted>,
}

/// `POST /api/v1/batches` (operator).
#[utoipa::path(post, path = "/api/v1/batches", tag = "batches", request_body = CreateBatch,
    responses((status = 201, body = BatchCreated), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)), security(("api_key" = [])), description = "Role: operator")]
pub async fn create(
    State(state): State<ApiState>,
    who: Principal,
    body: crate::input::ApiJson<CreateBatch>,
) -> ApiResult<(StatusCode, Json<BatchCreated>)> {
    who.require(Role::Operator)?;
    let crate::input::ApiJson(body) = body;
    if body.jobs.is_empty() || body.jobs.len() > MAX_BULK {
        return Err(ApiError::invalid(
            "jobs",
            format!(
                "has {} items; a batch needs 1 to {MAX_BULK}",
                body.jobs.len()
            ),
        ));
    }
    let jobs = into_jobs(body.jobs, &state.front)?;
    let callback = body
        .callback
        .map(|c| {
            Ok::<_, ApiError>(BatchCallback {
                queue: super::queues::queue_name(&c.queue).map_err(|e| e.at("callback"))?,
                kind: c.kind,
                args: c.args,
            })
        })
        .transpose()?;
    let (id, results) = state
        .front
        .create_batch(&who.actor, &body.description, &jobs, callback.as_ref())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(BatchCreated {
            id,
            results: results.into_iter().map(Into::into).collect(),
        }),
    ))
}

/// A batch and where its jobs are.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchView {
    pub id: i64,
    pub description: String,
    pub total: i64,
    /// Jobs by state, plus `failed`: waiting for a retry after a failed attempt.
    pub counts: BTreeMap<String, i64>,
    /// Jobs in a final state (completed, cancelled, dead).
    pub finished_jobs: i64,
    pub created_at: DateTime<Utc>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub callback_job_id: Option<i64>,
}

impl From<BatchProgress> for BatchView {
    fn from(p: BatchProgress) -> Self {
        Self {
            finished_jobs: p.finished_jobs(),
            id: p.id,
            description: p.description,
            total: p.total,
            counts: p.counts,
            created_at: p.created_at,
            cancelled_at: p.cancelled_at,
            finished_at: p.finished_at,
            callback_job_id: p.callback_job_id.map(|j| j.0),
        }
    }
}

/// `GET /api/v1/batches/{id}` (viewer).
#[utoipa::path(get, path = "/api/v1/batches/{id}", tag = "batches", params(("id" = i64, Path)),
    responses((status = 200, body = BatchView), (status = 404, body = ErrorBody), (status = 422, description = "The id is not an integer", body = ErrorBody)), security(("api_key" = [])), description = "Role: viewer")]
pub async fn get(
    State(state): State<ApiState>,
    who: Principal,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> ApiResult<Json<BatchView>> {
    who.require(Role::Viewer)?;
    let id = super::path_id(id)?;
    Ok(Json(state.front.batch(id).await?.into()))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchCancelled {
    pub id: i64,
    /// Unfinished jobs that were cancelled.
    pub cancelled_jobs: u64,
}

/// `POST /api/v1/batches/{id}/cancel` (operator).
#[utoipa::path(post, path = "/api/v1/batches/{id}/cancel", tag = "batches", params(("id" = i64, Path)),
    responses((status = 200, body = BatchCancelled), (status = 404, body = ErrorBody), (status = 422, description = "The id is not an integer", body = ErrorBody)), security(("api_key" = [])), description = "Role: operator")]
pub async fn cancel(
    State(state): State<ApiState>,
    who: Principal,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> ApiResult<Json<BatchCancelled>> {
    who.require(Role::Operator)?;
    let id = super::path_id(id)?;
    let cancelled_jobs = state.front.cancel_batch(&who.actor, id).await?;
    Ok(Json(BatchCancelled { id, cancelled_jobs }))
}
