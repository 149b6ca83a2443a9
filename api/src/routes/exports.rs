//! Streamed exports as CSV or JSON Lines: a shop's products (one row per variant), jobs, dead
//! letters and the audit log. Each reads a page at a time, so memory stays flat however much is
//! exported; a failure after the first bytes cuts the transfer short (never a short file that
//! looks complete).

use axum::{
    body::Body,
    extract::{Query, State},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use cowans_core::Role;
use cowans_queue::{DeadLetterFilter, ExportStream, export::ExportFormat};
use futures::TryStreamExt;
use serde::Deserialize;

use crate::{
    ApiState,
    auth::Principal,
    error::{ApiError, ApiResult, ErrorBody},
    routes::{
        jobs::job_filter,
        queues::queue_name,
        shops::{ProductQuery, catalog, product_filter, shop},
    },
};

/// `format` (default csv), or a 422 naming it.
fn format_of(format: Option<&str>) -> ApiResult<ExportFormat> {
    format.map_or(Ok(ExportFormat::Csv), |f| {
        ExportFormat::parse(f).map_err(|e| ApiError::invalid("format", e))
    })
}

/// The streamed answer, offered as a download named `name`.
fn download(name: &str, format: ExportFormat, body: ExportStream) -> Response {
    let body = Body::from_stream(body.inspect_err(|e| {
        tracing::warn!(error = %e, "an export failed part-way; the transfer is cut short");
    }));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{name}.{}\"",
        format.extension()
    )) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

/// `GET /api/v1/shops/{shop}/products/export?format=csv|jsonl&status&vendor&product_type&tag&sku&q&include_deleted`
/// (viewer): every matching product, id order.
#[utoipa::path(get, path = "/api/v1/shops/{shop}/products/export", tag = "catalog",
    params(("shop" = String, Path), ("format" = Option<String>, Query, description = "csv (default; one row per variant, Shopify's column names) or jsonl (one product per line)"),
        ("status" = Option<String>, Query), ("vendor" = Option<String>, Query), ("product_type" = Option<String>, Query),
        ("tag" = Option<String>, Query), ("sku" = Option<String>, Query), ("q" = Option<String>, Query, description = "Words in the title or handle"),
        ("include_deleted" = Option<bool>, Query)),
    responses((status = 200, description = "CSV or JSON Lines, streamed", content_type = "text/csv", body = String), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])), description = "Role: viewer")]
pub async fn products(
    State(state): State<ApiState>,
    who: Principal,
    super::ApiPath(key): super::ApiPath<String>,
    query: Result<Query<ProductQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    who.require(Role::Viewer)?;
    let cat = catalog(&state)?;
    let Query(q) = query.map_err(super::query_error)?;
    if q.after.is_some() || q.limit.is_some() {
        let field = if q.after.is_some() { "after" } else { "limit" };
        return Err(ApiError::invalid(
            field,
            "an export has everything that matches; page with /products instead",
        ));
    }
    let format = format_of(q.format.as_deref())?;
    let filter = product_filter(q);
    let s = shop(cat, &key).await?;
    Ok(download(
        &format!("{}-products", s.name),
        format,
        cat.export(s.id, filter, format)?,
    ))
}

/// `GET /api/v1/shops/{shop}/changes/export?format=csv|jsonl&` + the listing's filters
/// (viewer): every matching staged change, newest first; CSV has a row per field (base, current,
/// proposed, outcome), JSON Lines a change per line as the API shows it.
#[utoipa::path(get, path = "/api/v1/shops/{shop}/changes/export", tag = "changes",
    params(("shop" = String, Path), ("format" = Option<String>, Query, description = "csv (default; a row per field) or jsonl (a change per line)"),
        ("state" = Option<String>, Query), ("source" = Option<String>, Query), ("source_id" = Option<i64>, Query), ("author" = Option<String>, Query),
        ("vendor" = Option<String>, Query), ("field" = Option<String>, Query), ("product" = Option<String>, Query)),
    responses((status = 200, description = "CSV or JSON Lines, streamed", content_type = "text/csv", body = String), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])), description = "Role: viewer")]
pub async fn changes(
    State(state): State<ApiState>,
    who: Principal,
    super::ApiPath(key): super::ApiPath<String>,
    query: Result<Query<super::changes::ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    who.require(Role::Viewer)?;
    let cat = catalog(&state)?;
    let Query(q) = query.map_err(super::query_error)?;
    let format = format_of(q.format.as_deref())?;
    let (filter, before, limit) = q.split();
    if before.is_some() || limit.is_some() {
        let field = if before.is_some() { "before" } else { "limit" };
        return Err(ApiError::invalid(
            field,
            "an export has everything that matches; page with /changes instead",
        ));
    }
    let filter = filter.filter()?;
    let s = shop(cat, &key).await?;
    Ok(download(
        &format!("{}-changes", s.name),
        format,
        cat.export_changes(s.id, filter, format)?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobExportQuery {
    pub format: Option<String>,
    pub queue: Option<String>,
    pub state: Option<String>,
    pub kind: Option<String>,
}

/// `GET /api/v1/jobs/export?format=csv|jsonl&queue=&state=&kind=` (viewer), id order.
#[utoipa::path(get, path = "/api/v1/jobs/export", tag = "jobs",
    params(("format" = Option<String>, Query, description = "csv (default) or jsonl"), ("queue" = Option<String>, Query), ("state" = Option<String>, Query), ("kind" = Option<String>, Query)),
    responses((status = 200, description = "CSV or JSON Lines, streamed", content_type = "text/csv", body = String), (status = 422, body = ErrorBody)),
    security(("api_key" = [])), description = "Role: viewer")]
pub async fn jobs(
    State(state): State<ApiState>,
    who: Principal,
    query: Result<Query<JobExportQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    who.require(Role::Viewer)?;
    let Query(q) = query.map_err(super::query_error)?;
    let format = format_of(q.format.as_deref())?;
    let filter = job_filter(q.queue, q.state, q.kind)?;
    Ok(download(
        "jobs",
        format,
        state.front.export_jobs(filter, format),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadExportQuery {
    pub format: Option<String>,
    pub kind: Option<String>,
}

/// `GET /api/v1/queues/{queue}/dead/export?format=csv|jsonl&kind=` (viewer), oldest first.
#[utoipa::path(get, path = "/api/v1/queues/{queue}/dead/export", tag = "dead letters",
    params(("queue" = String, Path), ("format" = Option<String>, Query, description = "csv (default) or jsonl"), ("kind" = Option<String>, Query)),
    responses((status = 200, description = "CSV or JSON Lines, streamed", content_type = "text/csv", body = String), (status = 422, body = ErrorBody)),
    security(("api_key" = [])), description = "Role: viewer")]
pub async fn dead(
    State(state): State<ApiState>,
    who: Principal,
    super::ApiPath(queue): super::ApiPath<String>,
    query: Result<Query<DeadExportQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    who.require(Role::Viewer)?;
    let queue = queue_name(&queue)?;
    let Query(q) = query.map_err(super::query_error)?;
    let format = format_of(q.format.as_deref())?;
    let filter = DeadLetterFilter {
        queue: Some(queue.to_string()),
        kind: q.kind,
    };
    Ok(download(
        &format!("{queue}-dead"),
        format,
        state.front.export_dead(filter, format),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditExportQuery {
    pub format: Option<String>,
}

/// `GET /api/v1/audit/export?format=csv|jsonl` (admin), newest first.
#[utoipa::path(get, path = "/api/v1/audit/export", tag = "audit",
    params(("format" = Option<String>, Query, description = "csv (default) or jsonl")),
    responses((status = 200, description = "CSV or JSON Lines, streamed", content_type = "text/csv", body = String), (status = 422, body = ErrorBody)),
    security(("api_key" = [])), description = "Role: admin")]
pub async fn audit(
    State(state): State<ApiState>,
    who: Principal,
    query: Result<Query<AuditExportQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    who.require(Role::Admin)?;
    let Query(q) = query.map_err(super::query_error)?;
    let format = format_of(q.format.as_deref())?;
    Ok(download("audit", format, state.front.export_audit(format)))
}
