//! The `/api/v1` routes, one module per resource.

pub mod audit;
pub mod batches;
pub mod bulk_edits;
pub mod changes;
pub mod dead;
pub mod errors;
pub mod exports;
pub mod imports;
pub mod jobs;
pub mod kinds;
pub mod queues;
pub mod shops;
pub mod webhooks;

use crate::error::ApiError;

pub const DEFAULT_PAGE: i64 = 100;
pub const MAX_PAGE: i64 = 1000;

/// The `limit` of a keyset-paginated list (`?after=<id>&limit=<n>`): default 100, 1 to 1000.
pub fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::invalid(
            "limit",
            format!("is {n}; it must be 1 to {MAX_PAGE}"),
        )),
    }
}

/// `?limit=<n>` of a "latest first" list: default 50, 1 to 1000; any other parameter refused.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LatestQuery {
    /// How many, newest first (1 to 1000, default 50).
    pub limit: Option<i64>,
}

impl LatestQuery {
    /// The checked limit, or a 422 naming the query or `limit`.
    pub fn limit(
        query: Result<axum::extract::Query<LatestQuery>, axum::extract::rejection::QueryRejection>,
    ) -> Result<i64, ApiError> {
        let axum::extract::Query(q) = query.map_err(query_error)?;
        match q.limit {
            None => Ok(50),
            Some(n) => page_limit(Some(n)),
        }
    }
}

/// The keyset to ask for the next page with: the last item's key when the page is full, `None`
/// when this was the last page.
pub fn next_key<T>(items: &[T], limit: i64, key: impl Fn(&T) -> i64) -> Option<i64> {
    cowans_queue::export::next_cursor(items, limit, key)
}

/// A route's path parameters (`/queues/{queue}`, `/shops/{shop}`); ones that do not decode
/// (e.g. not UTF-8) are refused in the one error shape, a 422 naming `path`.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> axum::extract::FromRequestParts<S>
    for ApiPath<T>
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(t)| ApiPath(t))
            .map_err(|e| ApiError::invalid("path", e.body_text()))
    }
}

/// A numeric id from the path (`/jobs/{id}`), or a 422 naming it.
pub(crate) fn path_id(
    id: Result<axum::extract::Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<i64, ApiError> {
    id.map(|axum::extract::Path(id)| id)
        .map_err(|e| ApiError::invalid("id", format!("must be an integer id ({})", e.body_text())))
}

/// A query string that could not be read, as a 422 naming it.
pub(crate) fn query_error(e: axum::extract::rejection::QueryRejection) -> ApiError {
    ApiError::invalid("query", e.body_text())
}
