//! The registered job kinds and their payload schemas.

use axum::{Json, extract::State};
use serde_json::{Value, json};

use crate::{
    ApiState,
    auth::{Principal, Role},
    error::ApiResult,
};

/// `GET /api/v1/kinds` (viewer): every registered kind with the JSON Schema its `args` must fit,
/// and whether unregistered kinds are refused.
#[utoipa::path(get, path = "/api/v1/kinds", tag = "jobs",
    responses((status = 200, description = "{kinds: [{kind, description, schema}], reject_unknown}")), security(("api_key" = [])), description = "Role: viewer")]
pub async fn list(State(state): State<ApiState>, who: Principal) -> ApiResult<Json<Value>> {
    who.require(Role::Viewer)?;
    let kinds: Vec<_> = state.kinds.kinds().collect();
    Ok(Json(
        json!({ "kinds": kinds, "reject_unknown": state.kinds.rejects_unknown() }),
    ))
}
