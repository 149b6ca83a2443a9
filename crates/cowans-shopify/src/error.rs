//! What can go wrong talking to Shopify, typed so callers can decide: retry, surface, or stop.

use serde::Deserialize;

/// One entry of a mutation's `userErrors`: a business error to show the user, never retried.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UserError {
    #[serde(default)]
    pub field: Option<Vec<String>>,
    pub message: String,
    #[serde(default)]
    pub code: Option<String>,
}

/// A top-level GraphQL error.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct GraphqlError {
    pub message: String,
    #[serde(default)]
    pub extensions: Option<serde_json::Value>,
}

impl GraphqlError {
    pub fn code(&self) -> Option<&str> {
        self.extensions.as_ref()?.get("code")?.as_str()
    }
}

/// Errors never contain the access token.
#[derive(Debug, thiserror::Error)]
pub enum ShopifyError {
    #[error("throttled by Shopify (requested {requested} points, {available} available)")]
    Throttled { requested: f64, available: f64 },
    #[error("query costs {cost} points, over the single-query maximum of {max}")]
    MaxCostExceeded { cost: f64, max: f64 },
    #[error("access token rejected (HTTP 401): check the shop's token")]
    Unauthorized,
    #[error("Shopify internal error (INTERNAL_SERVER_ERROR){}", request_id.as_ref().map(|r| format!(", request {r}")).unwrap_or_default())]
    Internal { request_id: Option<String> },
    #[error("Shopify answered HTTP {status}")]
    Server { status: u16 },
    #[error("could not reach Shopify: {0}")]
    Transport(String),
    #[error("GraphQL error: {}", .0.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; "))]
    Graphql(Vec<GraphqlError>),
    #[error("mutation refused: {}", .0.iter().map(|e| format!("{} ({})", e.message, e.field.as_ref().map(|f| f.join(".")).unwrap_or_default())).collect::<Vec<_>>().join("; "))]
    UserErrors(Vec<UserError>),
    #[error("unexpected answer from Shopify: {0}")]
    Decode(String),
    #[error("gave up after {attempts} attempts; last error: {last}")]
    RetriesExhausted {
        attempts: u32,
        last: Box<ShopifyError>,
    },
}

impl ShopifyError {
    /// Shopify refused the access token (HTTP 401), directly or on the last of some retries:
    /// nothing will work until the token is replaced.
    pub fn is_unauthorized(&self) -> bool {
        match self {
            ShopifyError::Unauthorized => true,
            ShopifyError::RetriesExhausted { last, .. } => last.is_unauthorized(),
            _ => false,
        }
    }

    /// Worth sending again (for an idempotent operation).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ShopifyError::Throttled { .. }
                | ShopifyError::Internal { .. }
                | ShopifyError::Server { .. }
                | ShopifyError::Transport(_)
        )
    }
}
