//! Imports of staged changes from a CSV or JSON Lines file in the export's shape (operator), and
//! their per-row reports (viewer).

use axum::{
    Json,
    body::Bytes,
    extract::{Query, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use cowans_catalog::{ImportResult, ImportRow, changes::import::ImportFormat};
use cowans_core::Role;
use serde::{Deserialize, Serialize};

use super::shops::{catalog, shop};
use crate::{
    ApiState,
    auth::Principal,
    error::{ApiError, ApiResult, ErrorBody},
};

/// The largest file an import takes.
pub const IMPORT_LIMIT: usize = 64 << 20;

/// One row's result.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RowResult {
    /// The row's number (1: the first row after the CSV header, or the first line).
    pub row: i32,
    pub product_id: Option<String>,
    pub variant_id: Option<String>,
    /// `staged` (in a dry run: would be), `unchanged` or `error`.
    pub status: String,
    pub error: Option<String>,
    /// The change staged from it.
    pub change_id: Option<i64>,
}

impl From<ImportResult> for RowResult {
    fn from(r: ImportResult) -> Self {
        Self {
            row: r.row,
            product_id: r.product_id.map(|p| p.to_string()),
            variant_id: r.variant_id.map(|v| v.to_string()),
            status: r.status,
            error: r.error,
            change_id: r.change_id,
        }
    }
}

/// An import and its counts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportView {
    pub id: i64,
    pub shop_id: i64,
    pub author: String,
    pub format: String,
    pub dry_run: bool,
    pub rows: i64,
    pub staged: i64,
    pub unchanged: i64,
    pub errors: i64,
    pub created_at: DateTime<Utc>,
}

impl From<ImportRow> for ImportView {
    fn from(i: ImportRow) -> Self {
        Self {
            id: i.id,
            shop_id: i.shop_id,
            author: i.author,
            format: i.format,
            dry_run: i.dry_run,
            rows: i.rows,
            staged: i.staged,
            unchanged: i.unchanged,
            errors: i.errors,
            created_at: i.created_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportDone {
    #[serde(flatten)]
    pub import: ImportView,
    /// The first 100 rows in error (the whole report: `GET …/imports/{id}`).
    pub first_errors: Vec<RowResult>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// csv (default) or jsonl.
    pub format: Option<String>,
    /// Only report; stage nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// `POST /api/v1/shops/{shop}/imports?format=csv|jsonl&dry_run=true` (operator): the body is
/// the file (at most 64 MiB, 200,000 rows). Rows in error are reported and skipped; the rest are
/// staged together (nothing in a dry run).
#[utoipa::path(post, path = "/api/v1/shops/{shop}/imports", tag = "changes",
    params(("shop" = String, Path), ("format" = Option<String>, Query), ("dry_run" = Option<bool>, Query)),
    request_body(content = String, content_type = "text/csv", description = "The file: the export's CSV columns, or JSON Lines of products"),
    responses((status = 201, body = ImportDone), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])), description = "Role: operator")]
pub async fn create(
    State(state): State<ApiState>,
    who: Principal,
    super::ApiPath(key): super::ApiPath<String>,
    query: Result<Query<ImportQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<(StatusCode, Json<ImportDone>)> {
    who.require(Role::Operator)?;
    let cat = catalog(&state)?;
    let Query(q) = query.map_err(super::query_error)?;
    let format = match q.format.as_deref() {
        None => ImportFormat::Csv,
        Some(f) => ImportFormat::parse(f)
            .ok_or_else(|| ApiError::invalid("format", "must be csv or jsonl"))?,
    };
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(format!("the file is larger than {IMPORT_LIMIT} bytes"))
        } else {
            ApiError::invalid("body", e.body_text())
        }
    })?;
    let s = shop(cat, &key).await?;
    let (import, errors) = cat
        .import(&who.actor, s.id, format, &body, q.dry_run)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ImportDone {
            import: import.into(),
            first_errors: errors.into_iter().map(Into::into).collect(),
        }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    #[serde(default)]
    pub errors_only: bool,
    pub after: Option<i32>,
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    pub import: ImportView,
    pub rows: Vec<RowResult>,
    /// The last row's number when more may follow (`after=`).
    pub next_after: Option<i32>,
}

/// `GET /api/v1/shops/{shop}/imports/{id}?errors_only&after&limit` (viewer): the import and a
/// page of its per-row report.
#[utoipa::path(get, path = "/api/v1/shops/{shop}/imports/{id}", tag = "changes",
    params(("shop" = String, Path), ("id" = i64, Path), ("errors_only" = Option<bool>, Query), ("after" = Option<i32>, Query), ("limit" = Option<i64>, Query)),
    responses((status = 200, body = ImportReport), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])), description = "Role: viewer")]
pub async fn report(
    State(state): State<ApiState>,
    who: Principal,
    super::ApiPath((key, id)): super::ApiPath<(String, i64)>,
    query: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<ImportReport>> {
    who.require(Role::Viewer)?;
    let cat = catalog(&state)?;
    let Query(q) = query.map_err(super::query_error)?;
    let limit = super::page_limit(q.limit)?;
    let s = shop(cat, &key).await?;
    let import = cat.import_record(s.id, id).await?;
    let rows = cat
        .import_results(s.id, id, q.errors_only, q.after.unwrap_or(0), limit)
        .await?;
    let next_after =
        super::next_key(&rows, limit, |r| i64::from(r.row)).and_then(|r| i32::try_from(r).ok());
    Ok(Json(ImportReport {
        import: import.into(),
        rows: rows.into_iter().map(Into::into).collect(),
        next_after,
    }))
}
