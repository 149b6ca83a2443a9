//! Jobs: submit one or many, get, list, cancel, retry.

use axum::{
    Json,
    extract::{Path, Query, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use cowans_core::{JobId, JobState, KindCheck, KindRegistry, QueueName};
use cowans_store::{JobFilter, JobRecord, NewJob, Unique};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{
    ApiState,
    auth::{Principal, Role},
    error::{ApiError, ApiResult},
};

/// Most jobs in one JSON-array submit.
pub const MAX_BULK: usize = 10_000;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitJob {
    pub queue: String,
    pub kind: String,
    /// The payload; `{}` when left out.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub args: Value,
    #[serde(default)]
    pub priority: i16,
    pub run_at: Option<DateTime<Utc>>,
    pub max_attempts: Option<i32>,
    pub unique_key: Option<String>,
    pub rate_key: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

impl SubmitJob {
    /// Validates every field, the payload against its kind's registered type included, naming
    /// the field (prefixed by `at`, e.g. `jobs[3]`) of the first problem.
    pub(crate) fn into_new_job(self, at: &str, kinds: &KindRegistry) -> ApiResult<NewJob> {
        let field = |f: &str| {
            if at.is_empty() {
                f.to_owned()
            } else {
                format!("{at}.{f}")
            }
        };
        let queue = QueueName::new(self.queue)
            .map_err(|e| ApiError::invalid(&field("queue"), e.to_string()))?;
        let mut job = NewJob::new(queue, self.kind, self.args).priority(self.priority);
        if let Some(t) = self.run_at {
            job = job.run_at(t);
        }
        if let Some(m) = self.max_attempts {
            job = job.max_attempts(m);
        }
        if let Some(k) = self.unique_key {
            job = job.unique(Unique::key(k));
        }
        if let Some(k) = self.rate_key {
            job = job.rate_key(k);
        }
        // What the store would refuse first (kind format, attempts, key, storable payload), then
        // the payload against its kind's type.
        job.check().map_err(|e| match e {
            cowans_store::StoreError::Invalid { field: f, message } => {
                ApiError::invalid(&field(&f), message)
            }
            other => other.into(),
        })?;
        match kinds.check(&job.kind, &job.args) {
            KindCheck::Valid | KindCheck::Unchecked => {}
            KindCheck::Unknown => {
                let known: Vec<&str> = kinds.names().collect();
                return Err(ApiError::invalid(
                    &field("kind"),
                    format!(
                        "is {:?}, which no worker registers; known kinds: {}",
                        job.kind,
                        known.join(", ")
                    ),
                ));
            }
            KindCheck::Invalid(e) => {
                let at = if e.path.is_empty() {
                    field("args")
                } else {
                    field(&format!("args.{}", e.path))
                };
                return Err(ApiError::invalid(&at, e.message));
            }
        }
        Ok(job)
    }
}

/// Converts a list of submitted jobs, naming the item of the first bad one (`jobs[3].kind`).
pub(crate) fn into_new_jobs(items: Vec<SubmitJob>, kinds: &KindRegistry) -> ApiResult<Vec<NewJob>> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, j)| j.into_new_job(&format!("jobs[{i}]"), kinds))
        .collect()
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Submitted {
    pub id: i64,
    pub duplicate: bool,
}

/// A job as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: i64,
    pub queue: String,
    pub kind: String,
    #[schema(value_type = Object)]
    pub args: Value,
    /// available, scheduled, running, completed, cancelled or dead.
    #[schema(value_type = String)]
    pub state: JobState,
    pub priority: i16,
    pub attempt: i32,
    pub max_attempts: i32,
    pub run_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub attempted_at: Option<DateTime<Utc>>,
    pub finalized_at: Option<DateTime<Utc>>,
    /// Every failed attempt: {attempt, at, worker, error}.
    #[schema(value_type = Vec<Object>)]
    pub errors: Vec<cowans_core::AttemptError>,
    pub unique_key: Option<String>,
    pub batch_id: Option<i64>,
}

impl From<JobRecord> for JobView {
    fn from(j: JobRecord) -> Self {
        Self {
            id: j.id.0,
            queue: j.queue,
            kind: j.kind,
            args: j.args,
            state: j.state,
            priority: j.priority,
            attempt: j.attempt,
            max_attempts: j.max_attempts,
            run_at: j.run_at,
            created_at: j.created_at,
            attempted_at: j.attempted_at,
            finalized_at: j.finalized_at,
            errors: j.errors,
            unique_key: j.unique_key,
            batch_id: j.batch_id,
        }
    }
}

/// `POST /api/v1/jobs` (operator). Concurrent submits share one insert and commit
/// (`api.submit_group_max`); the answer comes after the commit.
#[utoipa::path(post, path = "/api/v1/jobs", tag = "jobs", request_body = SubmitJob,
    responses((status = 201, description = "Inserted", body = Submitted), (status = 200, description = "Duplicate of a job holding the unique key", body = Submitted),
        (status = 401, body = crate::openapi::ErrorBody), (status = 403, body = crate::openapi::ErrorBody), (status = 422, description = "Bad input; the message names the field", body = crate::openapi::ErrorBody)),
    security(("api_key" = [])), description = "Role: operator")]
pub async fn submit(
    State(state): State<ApiState>,
    who: Principal,
    body: Result<Json<SubmitJob>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<Submitted>)> {
    who.require(Role::Operator)?;
    let Json(body) = body.map_err(|e| crate::json_error(&e))?;
    let job = body.into_new_job("", &state.kinds)?;
    let done = state.submits.submit(job, &who).await?;
    let status = if done.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(Submitted {
            id: done.id.0,
            duplicate: done.duplicate,
        }),
    ))
}

/// `POST /api/v1/jobs/bulk` (operator). `Content-Type: application/json`: an array of up to
/// 10,000 jobs, inserted in one statement, all or nothing (422 names the item). `Content-Type:
/// application/x-ndjson`: one job per line, up to 100,000, inserted while the body streams in
/// (5,000 per statement, memory bounded by that), answered with one NDJSON result line per input
/// line (`{"line", "id", "duplicate"}` or `{"line", "error"}`).
#[utoipa::path(post, path = "/api/v1/jobs/bulk", tag = "jobs", request_body(content = Vec<SubmitJob>, description = "A JSON array (≤ 10,000, all or nothing) or application/x-ndjson (≤ 100,000, a result line per input line)"),
    responses((status = 201, description = "JSON array: {results: [{id, duplicate}]}"), (status = 200, description = "NDJSON: one {line, id, duplicate} or {line, error} per input line"),
        (status = 413, body = crate::openapi::ErrorBody), (status = 415, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody)),
    security(("api_key" = [])), description = "Role: operator")]
pub async fn submit_many(
    State(state): State<ApiState>,
    who: Principal,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    who.require(Role::Operator)?;
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/x-ndjson") {
        return crate::ndjson::submit(&state, &who, body).await;
    }
    if !content_type.starts_with("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send Content-Type: application/json (an array) or application/x-ndjson (a job per line)",
        ));
    }
    let bytes = axum::body::to_bytes(body, crate::BODY_LIMIT)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "the body is larger than {} bytes; use application/x-ndjson for big submits",
                    crate::BODY_LIMIT
                ),
            )
        })?;
    let items: Vec<SubmitJob> =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid("body", e.to_string()))?;
    let count = items.len();
    let (status, json) = submit_array(&state, items).await?;
    crate::audit(&state, &who, "jobs.submit", None, json!({ "jobs": count })).await;
    Ok((status, json).into_response())
}

async fn submit_array(
    state: &ApiState,
    items: Vec<SubmitJob>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if items.len() > MAX_BULK {
        return Err(ApiError::invalid(
            "jobs",
            format!("has {} items; at most {MAX_BULK} per request", items.len()),
        ));
    }
    let jobs = into_new_jobs(items, &state.kinds)?;
    let done = cowans_store::enqueue_autocommit(&state.pool, &jobs).await?;
    let results: Vec<Submitted> = done
        .iter()
        .map(|d| Submitted {
            id: d.id.0,
            duplicate: d.duplicate,
        })
        .collect();
    Ok((StatusCode::CREATED, Json(json!({ "results": results }))))
}

/// `GET /api/v1/jobs/{id}` (viewer).
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", params(("id" = i64, Path, description = "Job id")),
    responses((status = 200, body = JobView), (status = 404, body = crate::openapi::ErrorBody)), security(("api_key" = [])), description = "Role: viewer")]
pub async fn get(
    State(state): State<ApiState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<JobView>> {
    who.require(Role::Viewer)?;
    let job = cowans_store::get_job(&state.pool, JobId(id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id} does not exist")))?;
    Ok(Json(job.into()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub queue: Option<String>,
    pub state: Option<String>,
    pub kind: Option<String>,
    pub after: Option<i64>,
    pub limit: Option<i64>,
}

/// `GET /api/v1/jobs?queue=&state=&kind=&after=&limit=` (viewer), id order.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs",
    params(("queue" = Option<String>, Query), ("state" = Option<String>, Query), ("kind" = Option<String>, Query), ("after" = Option<i64>, Query, description = "Keyset: ids after this"), ("limit" = Option<i64>, Query, description = "1..1000, default 100")),
    responses((status = 200, description = "{jobs: [Job], next_after}"), (status = 422, body = crate::openapi::ErrorBody)), security(("api_key" = [])), description = "Role: viewer")]
pub async fn list(
    State(state): State<ApiState>,
    who: Principal,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    who.require(Role::Viewer)?;
    let Query(q) = query.map_err(super::query_error)?;
    let limit = super::page_limit(q.limit)?;
    let job_state = match q.state.as_deref() {
        None => None,
        Some(s) => Some(JobState::parse(s).ok_or_else(|| {
            ApiError::invalid("state", format!("is {s:?}; it must be one of available, scheduled, running, completed, cancelled, dead"))
        })?),
    };
    let filter = JobFilter {
        queue: q.queue,
        state: job_state,
        kind: q.kind,
    };
    let jobs = cowans_store::list_jobs(&state.pool, &filter, q.after.map(JobId), limit).await?;
    let next = super::next_key(&jobs, limit, |j| j.id.0);
    let jobs: Vec<JobView> = jobs.into_iter().map(Into::into).collect();
    Ok(Json(json!({ "jobs": jobs, "next_after": next })))
}

/// `POST /api/v1/jobs/{id}/cancel` (operator).
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs", params(("id" = i64, Path)),
    responses((status = 200, description = "{id, cancelled, was}"), (status = 404, body = crate::openapi::ErrorBody), (status = 409, body = crate::openapi::ErrorBody)), security(("api_key" = [])), description = "Role: operator")]
pub async fn cancel(
    State(state): State<ApiState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    who.require(Role::Operator)?;
    let done = cowans_store::cancel_jobs(&state.pool, &[JobId(id)]).await?;
    crate::audit(
        &state,
        &who,
        "job.cancel",
        Some(&format!("job:{id}")),
        json!({ "cancelled": !done.is_empty() }),
    )
    .await;
    match done.first() {
        Some(c) => Ok(Json(json!({ "id": id, "cancelled": true, "was": c.was }))),
        None => match cowans_store::get_job(&state.pool, JobId(id)).await? {
            Some(j) => Err(ApiError::conflict(format!(
                "job {id} is {} and cannot be cancelled",
                j.state
            ))),
            None => Err(ApiError::not_found(format!("job {id} does not exist"))),
        },
    }
}

/// `POST /api/v1/jobs/{id}/retry` (operator): a dead or cancelled job runs again.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/retry", tag = "jobs", params(("id" = i64, Path)),
    responses((status = 200, description = "{id, state}"), (status = 404, body = crate::openapi::ErrorBody), (status = 409, body = crate::openapi::ErrorBody)), security(("api_key" = [])), description = "Role: operator")]
pub async fn retry(
    State(state): State<ApiState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    who.require(Role::Operator)?;
    let retried = cowans_store::retry_job(&state.pool, JobId(id)).await;
    crate::audit(
        &state,
        &who,
        "job.retry",
        Some(&format!("job:{id}")),
        json!({ "ok": matches!(retried, Ok(true)) }),
    )
    .await;
    if retried? {
        return Ok(Json(json!({ "id": id, "state": "available" })));
    }
    match cowans_store::get_job(&state.pool, JobId(id)).await? {
        Some(j) => Err(ApiError::conflict(format!(
            "job {id} is {}; only dead or cancelled jobs can be retried",
            j.state
        ))),
        None => Err(ApiError::not_found(format!("job {id} does not exist"))),
    }
}
