//! The audit log (admin only).

use axum::{
    Json,
    extract::{Query, State},
};
use chrono::{DateTime, Utc};
use cowans_core::Role;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    ApiState,
    auth::Principal,
    error::{ApiResult, ErrorBody},
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub before: Option<i64>,
    pub limit: Option<i64>,
}

/// One audited action.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditView {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// `key:<id>:<name>`, `jwt:<subject>`, `cli:<os user>`, `system:<component>`.
    pub actor: String,
    pub role: String,
    /// `job.submit`, `queue.pause`, `dead.purge`, ...
    pub action: String,
    /// `job:42`, `queue:shopify`, `batch:7`, ...
    pub target: Option<String>,
    pub client_addr: Option<String>,
    #[schema(value_type = Object)]
    pub details: Value,
}

/// Newest first; ask for older entries with `before=next_before`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditView>,
    pub next_before: Option<i64>,
}

/// `GET /api/v1/audit?before=&limit=` (admin), newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(("before" = Option<i64>, Query), ("limit" = Option<i64>, Query)),
    responses((status = 200, body = AuditPage), (status = 422, body = ErrorBody)), security(("api_key" = [])), description = "Role: admin")]
pub async fn list(
    State(state): State<ApiState>,
    who: Principal,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<AuditPage>> {
    who.require(Role::Admin)?;
    let Query(q) = query.map_err(super::query_error)?;
    let limit = super::page_limit(q.limit)?;
    let entries = state.front.audit_log(q.before, limit).await?;
    let next_before = super::next_key(&entries, limit, |e| e.id);
    Ok(Json(AuditPage {
        entries: entries
            .into_iter()
            .map(|e| AuditView {
                id: e.id,
                at: e.at,
                actor: e.actor,
                role: e.role,
                action: e.action,
                target: e.target,
                client_addr: e.client_addr,
                details: e.details,
            })
            .collect(),
        next_before,
    }))
}
