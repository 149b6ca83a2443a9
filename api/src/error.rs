//! The API's errors: one enum, whose HTTP status and body come from one `impl`. Every error
//! body has the same shape, `{"error": {"code", "message", "details"}}`; unexpected failures are
//! logged with their cause and answered without it.

use std::time::Duration;

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use cowans_queue::StoreError;
use serde::Serialize;
use serde_json::{Value, json};

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// 422: bad input; `field` names it (`jobs[3].args.sku`, `line 7.kind`, `limit`).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409: not possible in the current state (details say more, e.g. expected vs actual).
    #[error("{message}")]
    Conflict { message: String, details: Value },
    /// 401, with `WWW-Authenticate: Bearer`.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: authenticated, but the role is too low.
    #[error("{0}")]
    Forbidden(String),
    /// 429, with `Retry-After`.
    #[error("too many requests for this caller; retry in {} s", retry_after.as_secs_f64().ceil())]
    RateLimited { retry_after: Duration },
    /// 413.
    #[error("{0}")]
    TooLarge(String),
    /// 414: the request's URI is longer than the API reads.
    #[error("{0}")]
    UriTooLong(String),
    /// 431: the request's headers are larger than the API reads.
    #[error("{0}")]
    HeadersTooLarge(String),
    /// 405: the route exists, not with this method.
    #[error("this route does not take this method")]
    MethodNotAllowed,
    /// 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 426: the route is a WebSocket and the request is not an upgrade.
    #[error("{0}")]
    NotWebSocket(String),
    /// 408: the client stopped sending its body.
    #[error("{0}")]
    RequestTimeout(String),
    /// 503: the request took too long, or a dependency is down or shutting down. Retry.
    #[error("{0}")]
    Unavailable(String),
    /// 500: an unexpected failure (its cause is in the server log, never in the answer).
    #[error("internal error; the server log has the details")]
    Internal,
}

/// Every error body: `{"error": {"code", "message", "details"}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// `invalid`, `not_found`, `conflict`, `unauthorized`, `forbidden`, `rate_limited`,
    /// `too_large`, `uri_too_long`, `headers_too_large`, `method_not_allowed`, `unsupported_media_type`, `not_websocket`,
    /// `request_timeout`, `unavailable`, `internal`.
    #[schema(example = "invalid")]
    pub code: &'static str,
    #[schema(example = "queue: must not be empty")]
    pub message: String,
    /// For `invalid`: `{field, problem}`; for `conflict`: what differs; otherwise null.
    #[schema(value_type = Option<Object>)]
    pub details: Value,
}

impl ApiError {
    /// 422 naming the field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            ApiError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotWebSocket(_) => StatusCode::UPGRADE_REQUIRED,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Invalid { .. } => "invalid",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict { .. } => "conflict",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::TooLarge(_) => "too_large",
            ApiError::UriTooLong(_) => "uri_too_long",
            ApiError::HeadersTooLarge(_) => "headers_too_large",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::NotWebSocket(_) => "not_websocket",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal => "internal",
        }
    }

    fn details(&self) -> Value {
        match self {
            ApiError::Invalid { field, message } => json!({ "field": field, "problem": message }),
            ApiError::Conflict { details, .. } => details.clone(),
            _ => Value::Null,
        }
    }

    /// The body, also used for one line of an NDJSON answer.
    pub fn body(&self) -> ErrorDetail {
        ErrorDetail {
            code: self.code(),
            message: self.to_string(),
            details: self.details(),
        }
    }

    /// The same error about an item of a list or a line of a stream: its field gets `at` in
    /// front (`jobs[3].kind`, `line 7.args.ms`).
    pub fn at(self, at: &str) -> Self {
        match self {
            ApiError::Invalid { field, message } => ApiError::Invalid {
                field: format!("{at}.{field}"),
                message,
            },
            other => other,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid { field, message } => ApiError::Invalid { field, message },
            StoreError::NotFound { what } => ApiError::NotFound(format!("{what} does not exist")),
            StoreError::Conflict { message, details } => ApiError::Conflict { message, details },
            e @ StoreError::StaleLease => ApiError::Conflict {
                message: e.to_string(),
                details: Value::Null,
            },
            StoreError::Unavailable { message } => {
                tracing::warn!(%message, "request refused: the database is unavailable");
                ApiError::Unavailable(format!("{message}; retry"))
            }
            other => {
                tracing::error!(error = %other, "request failed on the database");
                ApiError::Internal
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(ErrorBody { error: self.body() })).into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::RateLimited { retry_after } => {
                let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    headers.insert(header::RETRY_AFTER, v);
                }
            }
            ApiError::Unauthorized(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"cowans\""),
                );
            }
            _ => {}
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_their_status_and_keep_the_field() {
        let e = ApiError::from(StoreError::invalid("args.ms", "expected u64"));
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            e.clone().at("jobs[2]").body().details["field"],
            "jobs[2].args.ms"
        );
        assert_eq!(
            ApiError::from(StoreError::not_found("job 4")).to_string(),
            "job 4 does not exist"
        );
        assert_eq!(
            ApiError::from(StoreError::conflict("done")).status(),
            StatusCode::CONFLICT
        );
        let busy = ApiError::from(StoreError::Unavailable {
            message: "pool exhausted".into(),
        });
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(ApiError::Internal.body().details, Value::Null);
    }
}
