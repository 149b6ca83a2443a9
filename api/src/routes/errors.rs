//! Error tracking: jobs' failed attempts grouped by kind and error pattern (viewer).

use axum::{
    Json,
    extract::{Query, State},
};
use chrono::{DateTime, Utc};
use cowans_core::{Role, error_groups::CLASSES};
use serde::{Deserialize, Serialize};

use crate::{
    ApiState,
    auth::Principal,
    error::{ApiError, ApiResult, ErrorBody},
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorsQuery {
    pub kind: Option<String>,
    pub class: Option<String>,
    pub limit: Option<i64>,
}

/// Failed attempts of one kind whose errors share a pattern.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorGroupView {
    pub id: i64,
    pub kind: String,
    /// The error message with numbers (`<n>`), ids (`<uuid>`, `<hex>`) and quoted values
    /// (`"…"`) replaced: what the group's failures have in common.
    pub pattern: String,
    /// One of `lease_expired`, `timeout`, `panic`, `payload`, `throttled`, `network`,
    /// `database`, `cancelled`, `other` (the `class` label of `cowans_job_errors_total`).
    pub class: String,
    /// Failed attempts in the group.
    pub count: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// The latest failure: its job, queue and message (cut to 1,000 characters).
    pub last_job_id: i64,
    pub last_queue: String,
    pub last_error: String,
}

/// Groups seen most recently first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorGroups {
    pub groups: Vec<ErrorGroupView>,
}

/// `GET /api/v1/errors?kind=&class=&limit=` (viewer): failed attempts grouped by kind and error
/// pattern, most recently seen first.
#[utoipa::path(get, path = "/api/v1/errors", tag = "errors",
    params(("kind" = Option<String>, Query), ("class" = Option<String>, Query), ("limit" = Option<i64>, Query, description = "1..1000, default 100")),
    responses((status = 200, body = ErrorGroups), (status = 422, body = ErrorBody)), security(("api_key" = [])), description = "Role: viewer")]
pub async fn list(
    State(state): State<ApiState>,
    who: Principal,
    query: Result<Query<ErrorsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<ErrorGroups>> {
    who.require(Role::Viewer)?;
    let Query(mut q) = query.map_err(super::query_error)?;
    let limit = super::page_limit(q.limit)?;
    // `?kind=` (empty) filters nothing.
    q.kind = q.kind.filter(|k| !k.is_empty());
    if let Some(class) = &q.class
        && !CLASSES.contains(&class.as_str())
    {
        return Err(ApiError::invalid(
            "class",
            format!("is {class:?}; it must be one of {}", CLASSES.join(", ")),
        ));
    }
    let groups = state
        .front
        .error_groups(q.kind.as_deref(), q.class.as_deref(), limit)
        .await?;
    Ok(Json(ErrorGroups {
        groups: groups
            .into_iter()
            .map(|g| ErrorGroupView {
                id: g.id,
                kind: g.kind,
                pattern: g.pattern,
                class: g.class,
                count: g.count,
                first_seen: g.first_seen,
                last_seen: g.last_seen,
                last_job_id: g.last_job_id.0,
                last_queue: g.last_queue,
                last_error: g.last_error,
            })
            .collect(),
    }))
}
