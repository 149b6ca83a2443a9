//! Jobs: submit one or many, get, list, cancel, retry.

use axum::{
    Json,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use cowans_core::{JobId, JobState, Role};
use cowans_queue::{BulkSource, FrontDoor, JobFilter, JobRecord, NewJob, Submission};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    ApiState,
    auth::Principal,
    error::{ApiError, ApiResult, ErrorBody},
};

/// Most jobs in one JSON-array submit.
pub const MAX_BULK: usize = 10_000;

/// A job to submit.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitJob {
    /// The queue; when left out, the kind's default queue (see `GET /api/v1/kinds`).
    pub queue: Option<String>,
    pub kind: String,
    /// The payload; `{}` when left out. Checked against the kind's schema.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub args: Value,
    /// Higher runs first; default 0.
    #[serde(default)]
    pub priority: i16,
    /// Not before this time.
    pub run_at: Option<DateTime<Utc>>,
    /// Default: the kind's retry policy (25 attempts unless it says otherwise).
    pub max_attempts: Option<i32>,
    /// While a job of the queue with this key is waiting or running, another submit answers
    /// with that job's id (`duplicate: true`, status 200).
    pub unique_key: Option<String>,
    /// The key of a queue rate-limited per key (e.g. a shop).
    pub rate_key: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

impl SubmitJob {
    /// The job, with the kind's defaults, every field checked; errors name the field.
    pub(crate) fn into_job(self, front: &FrontDoor) -> ApiResult<NewJob> {
        Ok(front.prepare(Submission {
            queue: self.queue,
            kind: self.kind,
            args: self.args,
            priority: self.priority,
            run_at: self.run_at,
            max_attempts: self.max_attempts,
            unique_key: self.unique_key,
            rate_key: self.rate_key,
        })?)
    }
}

/// Converts a list of submitted jobs, naming the item of the first bad one (`jobs[3].kind`).
pub(crate) fn into_jobs(items: Vec<SubmitJob>, front: &FrontDoor) -> ApiResult<Vec<NewJob>> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, j)| j.into_job(front).map_err(|e| e.at(&format!("jobs[{i}]"))))
        .collect()
}

/// What a submit did with one job.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Submitted {
    pub id: i64,
    /// The job was not inserted: `id` is the job holding its unique key.
    pub duplicate: bool,
}

impl From<cowans_queue::Enqueued> for Submitted {
    fn from(e: cowans_queue::Enqueued) -> Self {
        Self {
            id: e.id.0,
            duplicate: e.duplicate,
        }
    }
}

/// A JSON-array submit's answer: one result per job, in order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubmittedMany {
    pub results: Vec<Submitted>,
}

/// One line of an NDJSON submit's answer: `{line, id, duplicate}` or `{line, error}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NdjsonResult {
    /// The input line, 0-based (blank lines are not counted).
    pub line: usize,
    /// With `duplicate`, for a line that was accepted...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<bool>,
    /// ...or why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::error::ErrorDetail>,
}

/// One failed attempt.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttemptView {
    pub attempt: i32,
    pub at: DateTime<Utc>,
    /// The worker process that ran it.
    pub worker: Option<String>,
    pub error: String,
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
    #[schema(value_type = String, example = "available")]
    pub state: JobState,
    pub priority: i16,
    pub attempt: i32,
    pub max_attempts: i32,
    pub run_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub attempted_at: Option<DateTime<Utc>>,
    pub finalized_at: Option<DateTime<Utc>>,
    /// Every failed attempt, oldest first.
    pub errors: Vec<AttemptView>,
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
            errors: j
                .errors
                .into_iter()
                .map(|e| AttemptView {
                    attempt: e.attempt,
                    at: e.at,
                    worker: e.worker,
                    error: e.error,
                })
                .collect(),
            unique_key: j.unique_key,
            batch_id: j.batch_id,
        }
    }
}

/// A page of jobs; ask for the next with `after=next_after` (absent on the last page).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobPage {
    pub jobs: Vec<JobView>,
    pub next_after: Option<i64>,
}

impl JobPage {
    pub(crate) fn of(jobs: Vec<JobRecord>, limit: i64) -> Self {
        let next_after = super::next_key(&jobs, limit, |j| j.id.0);
        Self {
            jobs: jobs.into_iter().map(Into::into).collect(),
            next_after,
        }
    }
}

/// `POST /api/v1/jobs` (operator). Concurrent submits share one insert and commit
/// (`api.submit_group_max`); the answer comes after the commit.
#[utoipa::path(post, path = "/api/v1/jobs", tag = "jobs", request_body = SubmitJob,
    responses((status = 201, description = "Inserted", body = Submitted), (status = 200, description = "Duplicate of a job holding the unique key", body = Submitted),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, description = "Bad input; the message names the field", body = ErrorBody)),
    security(("api_key" = [])), description = "Role: operator")]
pub async fn submit(
    State(state): State<ApiState>,
    who: Principal,
    body: crate::input::ApiJson<SubmitJob>,
) -> ApiResult<(StatusCode, Json<Submitted>)> {
    who.require(Role::Operator)?;
    let crate::input::ApiJson(body) = body;
    let job = body.into_job(&state.front)?;
    let done = state.front.submit(&who.actor, job).await?;
    let status = if done.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(done.into())))
}

/// `POST /api/v1/jobs/bulk` (operator). `Content-Type: application/json`: an array of up to
/// 10,000 jobs, inserted in one statement, all or nothing (422 names the item). `Content-Type:
/// application/x-ndjson`: one job per line, up to 100,000, inserted while the body streams in
/// (5,000 per statement, memory bounded by that), answered with one NDJSON result line per input
/// line.
#[utoipa::path(post, path = "/api/v1/jobs/bulk", tag = "jobs",
    request_body(content(
        (Vec<SubmitJob> = "application/json"),
        (SubmitJob = "application/x-ndjson")
    ), description = "A JSON array (≤ 10,000, all or nothing) or NDJSON, one job per line (≤ 100,000, a result line per input line)"),
    responses((status = 201, description = "JSON array: one result per job", body = SubmittedMany),
        (status = 200, description = "NDJSON: one result line per input line", content_type = "application/x-ndjson", body = NdjsonResult),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])), description = "Role: operator")]
pub async fn submit_many(
    State(state): State<ApiState>,
    who: Principal,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> ApiResult<Response> {
    who.require(Role::Operator)?;
    let mime = crate::input::media_type(&headers);
    crate::input::refuse_declared_over(&headers, crate::BODY_LIMIT)?;
    match mime.as_str() {
        "application/x-ndjson" => return crate::ndjson::submit(&state, &who, body).await,
        "application/json" => {}
        _ => {
            return Err(ApiError::UnsupportedMediaType(
                "send Content-Type: application/json (an array) or application/x-ndjson (a job per line)".into(),
            ));
        }
    }
    let bytes = crate::input::read_body(body, crate::BODY_LIMIT).await?;
    crate::input::refuse_nul(&bytes, "jobs")?;
    let items: Vec<Value> =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid("body", e.to_string()))?;
    if items.len() > MAX_BULK {
        return Err(ApiError::invalid(
            "jobs",
            format!("has {} items; at most {MAX_BULK} per request", items.len()),
        ));
    }
    let items = items
        .into_iter()
        .enumerate()
        .map(|(i, mut v)| {
            cowans_core::whole_numbers::from_value::<SubmitJob>(&mut v).map_err(|e| {
                ApiError::invalid(
                    crate::input::name(&format!("jobs[{i}]"), &e.path),
                    e.message,
                )
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let jobs = into_jobs(items, &state.front)?;
    let done = state
        .front
        .submit_many(&who.actor, BulkSource::Array, &jobs)
        .await?;
    let results = done.into_iter().map(Into::into).collect();
    Ok((StatusCode::CREATED, Json(SubmittedMany { results })).into_response())
}

/// `GET /api/v1/jobs/{id}` (viewer).
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", params(("id" = i64, Path, description = "Job id")),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody), (status = 422, description = "The id is not an integer", body = ErrorBody)), security(("api_key" = [])), description = "Role: viewer")]
pub async fn get(
    State(state): State<ApiState>,
    who: Principal,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> ApiResult<Json<JobView>> {
    who.require(Role::Viewer)?;
    let id = super::path_id(id)?;
    Ok(Json(state.front.job(JobId(id)).await?.into()))
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

/// Which jobs a listing or export shows, the state checked.
pub(crate) fn job_filter(
    queue: Option<String>,
    state: Option<String>,
    kind: Option<String>,
) -> ApiResult<JobFilter> {
    let state = match state.as_deref() {
        None => None,
        Some(s) => Some(JobState::parse(s).ok_or_else(|| {
            ApiError::invalid("state", format!("is {s:?}; it must be one of available, scheduled, running, completed, cancelled, dead"))
        })?),
    };
    Ok(JobFilter {
        queue,
        state,
        kind,
        batch: None,
    })
}

/// `GET /api/v1/jobs?queue=&state=&kind=&after=&limit=` (viewer), id order.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs",
    params(("queue" = Option<String>, Query), ("state" = Option<String>, Query), ("kind" = Option<String>, Query), ("after" = Option<i64>, Query, description = "Keyset: ids after this"), ("limit" = Option<i64>, Query, description = "1..1000, default 100")),
    responses((status = 200, body = JobPage), (status = 422, body = ErrorBody)), security(("api_key" = [])), description = "Role: viewer")]
pub async fn list(
    State(state): State<ApiState>,
    who: Principal,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<JobPage>> {
    who.require(Role::Viewer)?;
    let Query(q) = query.map_err(super::query_error)?;
    let limit = super::page_limit(q.limit)?;
    let filter = job_filter(q.queue, q.state, q.kind)?;
    let jobs = state.front.jobs(&filter, q.after.map(JobId), limit).await?;
    Ok(Json(JobPage::of(jobs, limit)))
}

/// A job an operator cancelled.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CancelledJob {
    pub id: i64,
    pub cancelled: bool,
    /// The state it was in; `running` means its handler was told to stop.
    #[schema(value_type = String, example = "running")]
    pub was: JobState,
}

/// `POST /api/v1/jobs/{id}/cancel` (operator).
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs", params(("id" = i64, Path)),
    responses((status = 200, body = CancelledJob), (status = 404, body = ErrorBody), (status = 422, description = "The id is not an integer", body = ErrorBody), (status = 409, description = "The job has already finished", body = ErrorBody)), security(("api_key" = [])), description = "Role: operator")]
pub async fn cancel(
    State(state): State<ApiState>,
    who: Principal,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> ApiResult<Json<CancelledJob>> {
    who.require(Role::Operator)?;
    let id = super::path_id(id)?;
    let c = state.front.cancel(&who.actor, JobId(id)).await?;
    Ok(Json(CancelledJob {
        id,
        cancelled: true,
        was: c.was,
    }))
}

/// A job that will run again.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RetriedJob {
    pub id: i64,
    #[schema(value_type = String, example = "available")]
    pub state: JobState,
}

/// `POST /api/v1/jobs/{id}/retry` (operator): a dead or cancelled job runs again.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/retry", tag = "jobs", params(("id" = i64, Path)),
    responses((status = 200, body = RetriedJob), (status = 404, body = ErrorBody), (status = 422, description = "The id is not an integer", body = ErrorBody), (status = 409, description = "Not dead or cancelled, or a live job holds its unique key", body = ErrorBody)), security(("api_key" = [])), description = "Role: operator")]
pub async fn retry(
    State(state): State<ApiState>,
    who: Principal,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> ApiResult<Json<RetriedJob>> {
    who.require(Role::Operator)?;
    let id = super::path_id(id)?;
    state.front.retry(&who.actor, JobId(id)).await?;
    Ok(Json(RetriedJob {
        id,
        state: JobState::Available,
    }))
}
