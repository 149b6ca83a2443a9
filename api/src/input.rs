//! Input Postgres cannot store, refused at the door with the field named: a NUL character in the
//! path, in a query parameter or in any string (or key) of a JSON body, and query parameters
//! that are not UTF-8. Without this, such input reached a statement and came back as a
//! field-less refusal (or, for an export, a stream cut short after its 200).

use std::time::Duration;

use axum::{
    body::{Body, Bytes},
    extract::{FromRequest, Request},
    http::{HeaderMap, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use cowans_core::unstorable::nul_at;
use futures::StreamExt;
use percent_encoding::percent_decode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{BODY_LIMIT, error::ApiError};

const NUL: &str = "contains a \\u0000 character, which cannot be stored";

/// The longest request URI read (414 beyond), and the most header bytes (431 beyond). Hyper
/// itself refuses a request head over its buffer (~400 KB) with an empty 431; below that, these
/// answer in the one error shape.
pub const MAX_URI: usize = 8 * 1024;
pub const MAX_HEADERS: usize = 64 * 1024;

/// Middleware: a request head larger than the API reads is refused before anything else.
pub async fn refuse_oversized_head(req: Request, next: Next) -> Response {
    // The request target as sent (origin form: path and query), measured without copying it.
    let uri = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri > MAX_URI {
        return ApiError::UriTooLong(format!(
            "the URI is {uri} bytes long; at most {MAX_URI} are read"
        ))
        .into_response();
    }
    let headers: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if headers > MAX_HEADERS {
        return ApiError::HeadersTooLarge(format!(
            "the headers are {headers} bytes; at most {MAX_HEADERS} are read"
        ))
        .into_response();
    }
    next.run(req).await
}

/// Middleware: the path and every query parameter decoded, checked for NUL and for UTF-8.
pub async fn refuse_unstorable_uri(req: Request, next: Next) -> Response {
    match check_uri(req.uri()) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

fn check_uri(uri: &axum::http::Uri) -> Result<(), ApiError> {
    let path: Vec<u8> = percent_decode(uri.path().as_bytes()).collect();
    if path.contains(&0) {
        return Err(ApiError::invalid("path", NUL));
    }
    let Some(query) = uri.query() else {
        return Ok(());
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode(name);
        let shown = String::from_utf8_lossy(&name).into_owned();
        let value = decode(value);
        if name.contains(&0) {
            return Err(ApiError::invalid(
                "query",
                format!("a parameter name {NUL}"),
            ));
        }
        if value.contains(&0) {
            return Err(ApiError::invalid(shown, NUL));
        }
        if std::str::from_utf8(&name).is_err() || std::str::from_utf8(&value).is_err() {
            return Err(ApiError::invalid(
                shown,
                "is not UTF-8 once percent-decoded",
            ));
        }
    }
    Ok(())
}

/// A query component as bytes: `+` is a space, `%XX` a byte.
fn decode(s: &str) -> Vec<u8> {
    let spaced = s.replace('+', " ");
    percent_decode(spaced.as_bytes()).collect()
}

/// A JSON request body (`Content-Type: application/json`), refused in the one error shape: 415
/// without the content type, 413 above the body limit, 422 naming the field for a NUL character
/// or a value of the wrong shape.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(&req) {
            return Err(ApiError::UnsupportedMediaType(
                "send Content-Type: application/json".into(),
            ));
        }
        refuse_declared_over(req.headers(), BODY_LIMIT)?;
        let bytes = read_body(req.into_body(), BODY_LIMIT).await?;
        refuse_nul(&bytes, "body")?;
        parse_json(&bytes, "").map(ApiJson)
    }
}

/// A JSON document as `T`; a refusal names the field (`run_at`, `jobs[2].priority`) under
/// `root` (`line 7`), or `root` (else `body`) for the document itself. Whole numbers written
/// with a fraction are taken where integers belong ([`cowans_core::whole_numbers`]).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8], root: &str) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let first = serde_path_to_error::deserialize::<_, T>(&mut de);
    let refused = match first {
        Ok(value) => {
            return de
                .end()
                .map(|()| value)
                .map_err(|e| ApiError::invalid(name(root, "."), e.to_string()));
        }
        Err(e) => e,
    };
    // The slow path, only for a refusal: a number like `5.0` may be the only problem.
    match serde_json::from_slice::<Value>(bytes) {
        Ok(mut value) if refused.inner().to_string().contains("floating point") => {
            cowans_core::whole_numbers::from_value(&mut value)
                .map_err(|e| ApiError::invalid(name(root, &e.path), e.message))
        }
        _ => Err(ApiError::invalid(
            name(root, &refused.path().to_string()),
            refused.into_inner().to_string(),
        )),
    }
}

/// A field's name under `root` (`line 3.kind`); the document itself is `root`, or `body`.
pub fn name(root: &str, path: &str) -> String {
    match (root, path) {
        ("", ".") => "body".to_owned(),
        (root, ".") => root.to_owned(),
        ("", path) => path.to_owned(),
        (root, path) => format!("{root}.{path}"),
    }
}

/// How long a body may go without a byte arriving before the request is answered 408.
pub const BODY_IDLE: Duration = Duration::from_secs(10);

/// 413 at once when the declared `Content-Length` already exceeds `limit`.
pub fn refuse_declared_over(headers: &HeaderMap, limit: usize) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::TooLarge(format!(
            "the body is larger than {limit} bytes"
        )));
    }
    Ok(())
}

/// A request body read chunk by chunk: 413 once more than `limit` bytes have arrived, 408 when
/// the client stops sending for [`BODY_IDLE`]. `refused` is added to those messages (e.g. "none
/// of it was inserted").
pub struct BodyReader {
    stream: axum::body::BodyDataStream,
    limit: usize,
    received: usize,
    refused: &'static str,
}

impl BodyReader {
    pub fn new(body: Body, limit: usize, refused: &'static str) -> Self {
        Self {
            stream: body.into_data_stream(),
            limit,
            received: 0,
            refused,
        }
    }

    /// The next chunk, `None` at the end of the body.
    pub async fn next(&mut self) -> Result<Option<Bytes>, ApiError> {
        let chunk = match tokio::time::timeout(BODY_IDLE, self.stream.next()).await {
            Err(_) => {
                return Err(ApiError::RequestTimeout(format!(
                    "no part of the body arrived for {} s{}",
                    BODY_IDLE.as_secs(),
                    self.refused
                )));
            }
            Ok(None) => return Ok(None),
            Ok(Some(chunk)) => chunk.map_err(|e| {
                ApiError::invalid("body", format!("the body could not be read: {e}"))
            })?,
        };
        self.received += chunk.len();
        if self.received > self.limit {
            return Err(ApiError::TooLarge(format!(
                "the body is larger than {} bytes{}",
                self.limit, self.refused
            )));
        }
        Ok(Some(chunk))
    }
}

/// The whole body, at most `limit` bytes (413 beyond), 408 when the client stops sending for
/// [`BODY_IDLE`].
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let mut reader = BodyReader::new(body, limit, "");
    let mut buf: Vec<u8> = Vec::new();
    while let Some(chunk) = reader.next().await? {
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// 422 naming the first string or key of a JSON document that holds a NUL character; `root`
/// names a top-level array (`jobs[3].unique_key`). JSON can carry NUL only escaped, so the
/// document is parsed only when the escape occurs.
pub fn refuse_nul(bytes: &[u8], root: &str) -> Result<(), ApiError> {
    if bytes.windows(6).any(|w| w == b"\\u0000")
        && let Ok(value) = serde_json::from_slice::<Value>(bytes)
        && let Some(field) = nul_at(&value, if value.is_array() { root } else { "" })
    {
        return Err(ApiError::invalid(
            if field.is_empty() {
                root.to_owned()
            } else {
                field
            },
            NUL,
        ));
    }
    Ok(())
}

/// The request's media type, lower-case, without parameters (`application/json`).
pub fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

fn is_json(req: &Request) -> bool {
    let mime = media_type(req.headers());
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_checked_once_decoded() {
        let ok: axum::http::Uri = "/api/v1/jobs?kind=a+b&queue=x%20y".parse().unwrap();
        assert!(check_uri(&ok).is_ok());
        let nul: axum::http::Uri = "/api/v1/jobs?queue=q&kind=a%00b".parse().unwrap();
        let e = check_uri(&nul).unwrap_err();
        assert_eq!(e.body().details["field"], "kind");
        let latin1: axum::http::Uri = "/api/v1/jobs?kind=%ff%fe".parse().unwrap();
        assert_eq!(
            check_uri(&latin1).unwrap_err().body().details["field"],
            "kind"
        );
        let path: axum::http::Uri = "/api/v1/shops/a%00b".parse().unwrap();
        assert_eq!(
            check_uri(&path).unwrap_err().body().details["field"],
            "path"
        );
    }
}
