//! A console form's fields as posted (`application/x-www-form-urlencoded`), keeping repeated
//! names (the checkboxes of a selection), which `axum::Form` cannot.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::StatusCode,
    response::Response,
};

use super::layout::{Refusal, problem};
use crate::ApiState;

/// The posted fields, in order.
#[derive(Debug, Default)]
pub struct FormFields(Vec<(String, String)>);

impl FormFields {
    /// The first value of `name`, trimmed; `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The CSRF token the form carries.
    pub fn csrf(&self) -> &str {
        self.get("_csrf").unwrap_or_default()
    }

    /// Every value of `name` as ids; the first that is not one is named in the error.
    pub fn ids(&self, name: &str) -> Result<Vec<i64>, Refusal> {
        self.all(name)
            .map(|v| {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| Refusal::invalid(format!("{name}: {v:?} is not an id.")))
            })
            .collect()
    }
}

impl FromRequest<ApiState> for FormFields {
    type Rejection = Response;

    async fn from_request(req: Request, state: &ApiState) -> Result<Self, Response> {
        let form = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
        if !form {
            return Err(problem(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Send the console's form.",
            ));
        }
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|_| problem(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large."))?;
        Ok(Self(
            form_urlencoded::parse(&body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }
}
