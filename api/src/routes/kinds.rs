//! The registered job kinds and their payload schemas.

use axum::{Json, extract::State};
use cowans_core::Role;
use serde::Serialize;
use serde_json::Value;

use crate::{ApiState, auth::Principal, error::ApiResult};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KindView {
    pub kind: String,
    pub description: String,
    /// Where a submit that names no queue sends the job.
    pub queue: Option<String>,
    /// JSON Schema (draft 2020-12) the job's `args` must fit.
    #[schema(value_type = Object)]
    pub schema: Value,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KindList {
    pub kinds: Vec<KindView>,
    /// Whether submits of kinds not listed are refused.
    pub reject_unknown: bool,
}

/// `GET /api/v1/kinds` (viewer): every registered kind with the JSON Schema its `args` must fit,
/// and whether unregistered kinds are refused.
#[utoipa::path(get, path = "/api/v1/kinds", tag = "jobs",
    responses((status = 200, body = KindList)), security(("api_key" = [])), description = "Role: viewer")]
pub async fn list(State(state): State<ApiState>, who: Principal) -> ApiResult<Json<KindList>> {
    who.require(Role::Viewer)?;
    let registry = state.front.kinds();
    let kinds = registry
        .kinds()
        .map(|k| KindView {
            kind: k.kind.to_owned(),
            description: k.description.to_owned(),
            queue: k.queue.map(str::to_owned),
            schema: k.schema.clone(),
        })
        .collect();
    Ok(Json(KindList {
        kinds,
        reject_unknown: registry.rejects_unknown(),
    }))
}
