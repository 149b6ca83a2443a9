//! Bulk edits: preview (viewer), start (operator; `push: true` admin), follow (viewer). Progress
//! is also on the live stream as the batch's `batch.progress` events.

use axum::{
    Json,
    extract::{Query, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use cowans_catalog::{BulkEditRow, BulkEditSpec, BulkPreview};
use cowans_core::Role;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::shops::{catalog, shop};
use crate::{
    ApiState,
    auth::Principal,
    error::{ApiError, ApiResult, ErrorBody},
};

/// A bulk edit and how far it got.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BulkEditView {
    pub id: i64,
    pub shop_id: i64,
    pub author: String,
    /// The operations (and `push`) it runs.
    #[schema(value_type = Object)]
    pub spec: Value,
    /// running, completed or cancelled.
    pub state: String,
    /// Its batch (follow `batch.progress` events, or `/api/v1/batches/{batch_id}`).
    pub batch_id: Option<i64>,
    pub products: i64,
    pub processed: i64,
    /// Changes staged so far (review them with `source=bulk_edit&source_id=<id>`).
    pub changes: i64,
    /// Products an operation could not apply to, and the first reasons.
    pub skipped: i64,
    #[schema(value_type = Vec<Object>)]
    pub errors: Value,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<BulkEditRow> for BulkEditView {
    fn from(b: BulkEditRow) -> Self {
        Self {
            id: b.id,
            shop_id: b.shop_id,
            author: b.author,
            spec: b.spec,
            state: b.state,
            batch_id: b.batch_id,
            products: b.products,
            processed: b.processed,
            changes: b.changes,
            skipped: b.skipped,
            errors: b.errors,
            created_at: b.created_at,
            finished_at: b.finished_at,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewQuery {
    /// How many field diffs to show (default 20, at most 1000).
    pub sample: Option<usize>,
}

/// `POST /api/v1/shops/{shop}/bulk-edits/preview?sample=N` (viewer): what a bulk edit would do —
/// products selected and changed, changes, products skipped with reasons, the first N field
/// diffs. Stages nothing.
#[utoipa::path(post, path = "/api/v1/shops/{shop}/bulk-edits/preview", tag = "changes", params(("shop" = String, Path), ("sample" = Option<usize>, Query)),
    request_body = BulkEditSpec,
    responses((status = 200, body = BulkPreview), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])), description = "Role: viewer")]
pub async fn preview(
    State(state): State<ApiState>,
    who: Principal,
    super::ApiPath(key): super::ApiPath<String>,
    query: Result<Query<PreviewQuery>, axum::extract::rejection::QueryRejection>,
    body: crate::input::ApiJson<BulkEditSpec>,
) -> ApiResult<Json<BulkPreview>> {
    who.require(Role::Viewer)?;
    let cat = catalog(&state)?;
    let Query(q) = query.map_err(super::query_error)?;
    let crate::input::ApiJson(spec) = body;
    let sample = q.sample.unwrap_or(20);
    if sample > 1000 {
        return Err(ApiError::invalid("sample", "must be at most 1000"));
    }
    let s = shop(cat, &key).await?;
    Ok(Json(cat.preview_bulk_edit(s.id, &spec, sample).await?))
}

/// `POST /api/v1/shops/{shop}/bulk-edits` (operator; `push: true` admin): starts a bulk edit.
#[utoipa::path(post, path = "/api/v1/shops/{shop}/bulk-edits", tag = "changes", params(("shop" = String, Path)),
    request_body = BulkEditSpec,
    responses((status = 202, body = BulkEditView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])), description = "Role: operator (admin to push without review)")]
pub async fn start(
    State(state): State<ApiState>,
    who: Principal,
    super::ApiPath(key): super::ApiPath<String>,
    body: crate::input::ApiJson<BulkEditSpec>,
) -> ApiResult<(StatusCode, Json<BulkEditView>)> {
    who.require(Role::Operator)?;
    let cat = catalog(&state)?;
    let crate::input::ApiJson(spec) = body;
    if spec.push {
        who.require(Role::Admin)?;
    }
    let s = shop(cat, &key).await?;
    let row = cat.start_bulk_edit(&who.actor, s.id, &spec).await?;
    Ok((StatusCode::ACCEPTED, Json(row.into())))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BulkEditList {
    pub bulk_edits: Vec<BulkEditView>,
}

/// `GET /api/v1/shops/{shop}/bulk-edits?limit` (viewer): the latest bulk edits (default 50).
#[utoipa::path(get, path = "/api/v1/shops/{shop}/bulk-edits", tag = "changes", params(("shop" = String, Path), super::LatestQuery),
    responses((status = 200, body = BulkEditList), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])), description = "Role: viewer")]
pub async fn list(
    State(state): State<ApiState>,
    who: Principal,
    super::ApiPath(key): super::ApiPath<String>,
    query: Result<Query<super::LatestQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<BulkEditList>> {
    who.require(Role::Viewer)?;
    let limit = super::LatestQuery::limit(query)?;
    let cat = catalog(&state)?;
    let s = shop(cat, &key).await?;
    Ok(Json(BulkEditList {
        bulk_edits: cat
            .bulk_edits(s.id, limit)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    }))
}

/// `GET /api/v1/bulk-edits/{id}` (viewer).
#[utoipa::path(get, path = "/api/v1/bulk-edits/{id}", tag = "changes", params(("id" = i64, Path)),
    responses((status = 200, body = BulkEditView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])), description = "Role: viewer")]
pub async fn get(
    State(state): State<ApiState>,
    who: Principal,
    id: Result<axum::extract::Path<i64>, axum::extract::rejection::PathRejection>,
) -> ApiResult<Json<BulkEditView>> {
    who.require(Role::Viewer)?;
    let id = super::path_id(id)?;
    Ok(Json(catalog(&state)?.bulk_edit(id).await?.into()))
}
