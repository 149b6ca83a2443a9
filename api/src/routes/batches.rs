//! Batches: create with their jobs, progress, cancel.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use cowans_store::BatchCallback;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    ApiState,
    auth::{Principal, Role},
    error::{ApiError, ApiResult},
    routes::jobs::{MAX_BULK, SubmitJob, into_new_jobs},
};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBatch {
    #[serde(default)]
    pub description: String,
    pub jobs: Vec<SubmitJob>,
    /// {queue, kind, args}: enqueued once when every job has finished.
    #[schema(value_type = Option<Object>)]
    pub callback: Option<BatchCallback>,
}

/// `POST /api/v1/batches` (operator).
#[utoipa::path(post, path = "/api/v1/batches", tag = "batches", request_body = CreateBatch,
    responses((status = 201, description = "{id, results}"), (status = 422, body = crate::openapi::ErrorBody)), security(("api_key" = [])), description = "Role: operator")]
pub async fn create(
    State(state): State<ApiState>,
    who: Principal,
    body: Result<Json<CreateBatch>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    who.require(Role::Operator)?;
    let Json(body) = body.map_err(|e| crate::json_error(&e))?;
    if body.jobs.is_empty() || body.jobs.len() > MAX_BULK {
        return Err(ApiError::invalid(
            "jobs",
            format!(
                "has {} items; a batch needs 1 to {MAX_BULK}",
                body.jobs.len()
            ),
        ));
    }
    let jobs = into_new_jobs(body.jobs, &state.kinds)?;
    let (id, results) = cowans_store::create_batch(
        &state.pool,
        &body.description,
        &jobs,
        body.callback.as_ref(),
    )
    .await?;
    crate::audit(
        &state,
        &who,
        "batch.create",
        Some(&format!("batch:{id}")),
        json!({ "jobs": results.len() }),
    )
    .await;
    let results: Vec<Value> = results
        .iter()
        .map(|r| json!({ "id": r.id.0, "duplicate": r.duplicate }))
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "results": results })),
    ))
}

fn view(p: &cowans_store::BatchProgress) -> Value {
    json!({
        "id": p.id,
        "description": p.description,
        "total": p.total,
        "counts": p.counts,
        "finished_jobs": p.finished_jobs(),
        "created_at": p.created_at,
        "cancelled_at": p.cancelled_at,
        "finished_at": p.finished_at,
        "callback_job_id": p.callback_job_id.map(|j| j.0),
    })
}

/// `GET /api/v1/batches/{id}` (viewer).
#[utoipa::path(get, path = "/api/v1/batches/{id}", tag = "batches", params(("id" = i64, Path)),
    responses((status = 200, description = "Progress: total, counts by state, finished_at, callback_job_id"), (status = 404, body = crate::openapi::ErrorBody)), security(("api_key" = [])), description = "Role: viewer")]
pub async fn get(
    State(state): State<ApiState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    who.require(Role::Viewer)?;
    let p = cowans_store::batch_progress(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("batch {id} does not exist")))?;
    Ok(Json(view(&p)))
}

/// `POST /api/v1/batches/{id}/cancel` (operator).
#[utoipa::path(post, path = "/api/v1/batches/{id}/cancel", tag = "batches", params(("id" = i64, Path)),
    responses((status = 200, description = "{id, cancelled_jobs}"), (status = 404, body = crate::openapi::ErrorBody)), security(("api_key" = [])), description = "Role: operator")]
pub async fn cancel(
    State(state): State<ApiState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    who.require(Role::Operator)?;
    let cancelled = match cowans_store::cancel_batch(&state.pool, id).await {
        Ok(c) => c,
        Err(cowans_store::StoreError::Invalid { .. }) => {
            return Err(ApiError::not_found(format!("batch {id} does not exist")));
        }
        Err(e) => return Err(e.into()),
    };
    crate::audit(
        &state,
        &who,
        "batch.cancel",
        Some(&format!("batch:{id}")),
        json!({ "cancelled": cancelled.len() }),
    )
    .await;
    Ok(Json(json!({ "id": id, "cancelled_jobs": cancelled.len() })))
}
