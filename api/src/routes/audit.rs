//! The audit log (admin only).

use axum::{
    Json,
    extract::{Query, State},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    ApiState,
    auth::{Principal, Role},
    error::ApiResult,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub before: Option<i64>,
    pub limit: Option<i64>,
}

/// `GET /api/v1/audit?before=&limit=` (admin), newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(("before" = Option<i64>, Query), ("limit" = Option<i64>, Query)),
    responses((status = 200, description = "{entries, next_before}, newest first")), security(("api_key" = [])), description = "Role: admin")]
pub async fn list(
    State(state): State<ApiState>,
    who: Principal,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    who.require(Role::Admin)?;
    let Query(q) = query.map_err(super::query_error)?;
    let limit = super::page_limit(q.limit)?;
    let entries = cowans_store::list_audit(&state.pool, q.before, limit).await?;
    let next = super::next_key(&entries, limit, |e| e.id);
    Ok(Json(json!({ "entries": entries, "next_before": next })))
}
