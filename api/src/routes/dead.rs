//! Dead letters of a queue: list, re-drive (ids or a filter), purge (a filter plus the count
//! the operator expects; refused if it differs).

use axum::{
    Json,
    extract::{Path, Query, State},
};
use cowans_core::JobId;
use cowans_store::DeadLetterFilter;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    ApiState,
    auth::{Principal, Role},
    error::{ApiError, ApiResult},
    routes::{jobs::JobView, queues::queue_name},
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadQuery {
    pub kind: Option<String>,
    pub after: Option<i64>,
    pub limit: Option<i64>,
}

/// `GET /api/v1/queues/{queue}/dead?kind=&after=&limit=` (viewer).
#[utoipa::path(get, path = "/api/v1/queues/{queue}/dead", tag = "dead letters", params(("queue" = String, Path), ("kind" = Option<String>, Query), ("after" = Option<i64>, Query), ("limit" = Option<i64>, Query)),
    responses((status = 200, description = "{jobs: [Job], next_after}")), security(("api_key" = [])), description = "Role: viewer")]
pub async fn list(
    State(state): State<ApiState>,
    who: Principal,
    Path(q): Path<String>,
    query: Result<Query<DeadQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    who.require(Role::Viewer)?;
    let q = queue_name(&q)?;
    let Query(query) = query.map_err(super::query_error)?;
    let limit = super::page_limit(query.limit)?;
    let filter = DeadLetterFilter {
        queue: Some(q.to_string()),
        kind: query.kind,
    };
    let jobs = cowans_store::list_dead(&state.pool, &filter, query.after.map(JobId), limit).await?;
    let next = super::next_key(&jobs, limit, |j| j.id.0);
    let jobs: Vec<JobView> = jobs.into_iter().map(Into::into).collect();
    Ok(Json(json!({ "jobs": jobs, "next_after": next })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Redrive {
    /// These dead letters...
    pub ids: Option<Vec<i64>>,
    /// ...or every dead letter of the queue (of this kind, if given).
    pub all: Option<bool>,
    pub kind: Option<String>,
}

/// `POST /api/v1/queues/{queue}/dead/redrive` (operator): `{"ids": [..]}` or `{"all": true, "kind"?}`.
#[utoipa::path(post, path = "/api/v1/queues/{queue}/dead/redrive", tag = "dead letters", params(("queue" = String, Path)), request_body = Redrive,
    responses((status = 200, description = "{queue, redriven}"), (status = 422, body = crate::openapi::ErrorBody)), security(("api_key" = [])), description = "Role: operator")]
pub async fn redrive(
    State(state): State<ApiState>,
    who: Principal,
    Path(q): Path<String>,
    body: Result<Json<Redrive>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<Value>> {
    who.require(Role::Operator)?;
    let q = queue_name(&q)?;
    let Json(body) = body.map_err(|e| crate::json_error(&e))?;
    let count = match (&body.ids, body.all.unwrap_or(false)) {
        (Some(ids), false) => {
            if ids.is_empty() || ids.len() > 10_000 {
                return Err(ApiError::invalid("ids", "must hold 1 to 10000 job ids"));
            }
            let ids: Vec<JobId> = ids.iter().copied().map(JobId).collect();
            cowans_store::redrive_ids_in(&state.pool, Some(q.as_str()), &ids)
                .await?
                .len() as u64
        }
        (None, true) => {
            let filter = DeadLetterFilter {
                queue: Some(q.to_string()),
                kind: body.kind.clone(),
            };
            cowans_store::redrive_matching(&state.pool, &filter).await?
        }
        _ => {
            return Err(ApiError::invalid(
                "ids",
                "give either ids or all: true (with an optional kind)",
            ));
        }
    };
    crate::audit(
        &state,
        &who,
        "dead.redrive",
        Some(&format!("queue:{q}")),
        json!({ "ids": body.ids, "kind": body.kind, "redriven": count }),
    )
    .await;
    Ok(Json(json!({ "queue": q, "redriven": count })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Purge {
    pub kind: Option<String>,
    /// How many dead letters the operator expects to delete; the purge is refused otherwise.
    pub expected: u64,
}

/// `POST /api/v1/queues/{queue}/dead/purge` (admin): `{"kind"?, "expected": n}`.
#[utoipa::path(post, path = "/api/v1/queues/{queue}/dead/purge", tag = "dead letters", params(("queue" = String, Path)), request_body = Purge,
    responses((status = 200, description = "{queue, purged}"), (status = 409, description = "The count differs; nothing purged", body = crate::openapi::ErrorBody)), security(("api_key" = [])), description = "Role: admin")]
pub async fn purge(
    State(state): State<ApiState>,
    who: Principal,
    Path(q): Path<String>,
    body: Result<Json<Purge>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<Value>> {
    who.require(Role::Admin)?;
    let q = queue_name(&q)?;
    let Json(body) = body.map_err(|e| crate::json_error(&e))?;
    let filter = DeadLetterFilter {
        queue: Some(q.to_string()),
        kind: body.kind.clone(),
    };
    let result = cowans_store::purge_dead_expected(&state.pool, &filter, body.expected).await?;
    crate::audit(
        &state,
        &who,
        "dead.purge",
        Some(&format!("queue:{q}")),
        json!({ "kind": body.kind, "expected": body.expected, "result": format!("{result:?}") }),
    )
    .await;
    match result {
        Ok(n) => Ok(Json(json!({ "queue": q, "purged": n }))),
        Err(actual) => Err(ApiError {
            details: json!({ "expected": body.expected, "actual": actual }),
            ..ApiError::conflict(format!(
                "{actual} dead letters match, not {}; nothing was purged",
                body.expected
            ))
        }),
    }
}
