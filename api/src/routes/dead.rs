//! Dead letters of a queue: list, re-drive (ids or a filter), purge (a filter plus the count
//! the operator expects; refused if it differs).

use axum::{
    Json,
    extract::{Query, State},
};
use cowans_core::{JobId, Role};
use cowans_queue::{DeadLetterFilter, Redrive};
use serde::{Deserialize, Serialize};

use crate::{
    ApiState,
    auth::Principal,
    error::{ApiError, ApiResult, ErrorBody},
    routes::{jobs::JobPage, queues::queue_name},
};

/// Most ids one re-drive names.
const MAX_REDRIVE_IDS: usize = 10_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadQuery {
    pub kind: Option<String>,
    pub after: Option<i64>,
    pub limit: Option<i64>,
}

/// `GET /api/v1/queues/{queue}/dead?kind=&after=&limit=` (viewer).
#[utoipa::path(get, path = "/api/v1/queues/{queue}/dead", tag = "dead letters", params(("queue" = String, Path), ("kind" = Option<String>, Query), ("after" = Option<i64>, Query), ("limit" = Option<i64>, Query)),
    responses((status = 200, body = JobPage), (status = 422, body = ErrorBody)), security(("api_key" = [])), description = "Role: viewer")]
pub async fn list(
    State(state): State<ApiState>,
    who: Principal,
    super::ApiPath(q): super::ApiPath<String>,
    query: Result<Query<DeadQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<JobPage>> {
    who.require(Role::Viewer)?;
    let q = queue_name(&q)?;
    let Query(query) = query.map_err(super::query_error)?;
    let limit = super::page_limit(query.limit)?;
    let filter = DeadLetterFilter {
        queue: Some(q.to_string()),
        kind: query.kind,
    };
    let jobs = state
        .front
        .dead_letters(&filter, query.after.map(JobId), limit)
        .await?;
    Ok(Json(JobPage::of(jobs, limit)))
}

/// Which dead letters to re-drive: `{"ids": [..]}` or `{"all": true, "kind"?}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedriveRequest {
    /// These dead letters...
    pub ids: Option<Vec<i64>>,
    /// ...or every dead letter of the queue (of this kind, if given).
    pub all: Option<bool>,
    pub kind: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Redriven {
    pub queue: String,
    /// Dead letters made available again (those whose unique key a live job holds stay).
    pub redriven: u64,
}

/// `POST /api/v1/queues/{queue}/dead/redrive` (operator).
#[utoipa::path(post, path = "/api/v1/queues/{queue}/dead/redrive", tag = "dead letters", params(("queue" = String, Path)), request_body = RedriveRequest,
    responses((status = 200, body = Redriven), (status = 422, body = ErrorBody)), security(("api_key" = [])), description = "Role: operator")]
pub async fn redrive(
    State(state): State<ApiState>,
    who: Principal,
    super::ApiPath(q): super::ApiPath<String>,
    body: crate::input::ApiJson<RedriveRequest>,
) -> ApiResult<Json<Redriven>> {
    who.require(Role::Operator)?;
    let q = queue_name(&q)?;
    let crate::input::ApiJson(body) = body;
    let what = match (body.ids, body.all.unwrap_or(false)) {
        (Some(ids), false) => {
            if ids.is_empty() || ids.len() > MAX_REDRIVE_IDS {
                return Err(ApiError::invalid(
                    "ids",
                    format!("must hold 1 to {MAX_REDRIVE_IDS} job ids"),
                ));
            }
            Redrive::Ids(ids.into_iter().map(JobId).collect())
        }
        (None, true) => Redrive::All { kind: body.kind },
        _ => {
            return Err(ApiError::invalid(
                "ids",
                "give either ids or all: true (with an optional kind)",
            ));
        }
    };
    let redriven = state.front.redrive(&who.actor, &q, what).await?;
    Ok(Json(Redriven {
        queue: q.to_string(),
        redriven,
    }))
}

/// `{"kind"?, "expected": n}`: purge only if exactly `expected` dead letters match.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    pub kind: Option<String>,
    /// How many dead letters the operator expects to delete; the purge is refused otherwise.
    pub expected: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Purged {
    pub queue: String,
    pub purged: u64,
}

/// `POST /api/v1/queues/{queue}/dead/purge` (admin).
#[utoipa::path(post, path = "/api/v1/queues/{queue}/dead/purge", tag = "dead letters", params(("queue" = String, Path)), request_body = PurgeRequest,
    responses((status = 200, body = Purged), (status = 409, description = "The count differs (details: expected, actual); nothing purged", body = ErrorBody), (status = 422, body = ErrorBody)), security(("api_key" = [])), description = "Role: admin")]
pub async fn purge(
    State(state): State<ApiState>,
    who: Principal,
    super::ApiPath(q): super::ApiPath<String>,
    body: crate::input::ApiJson<PurgeRequest>,
) -> ApiResult<Json<Purged>> {
    who.require(Role::Admin)?;
    let q = queue_name(&q)?;
    let crate::input::ApiJson(body) = body;
    let purged = state
        .front
        .purge(&who.actor, &q, body.kind, body.expected)
        .await?;
    Ok(Json(Purged {
        queue: q.to_string(),
        purged,
    }))
}
