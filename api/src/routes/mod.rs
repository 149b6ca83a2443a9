//! The `/api/v1` routes, one module per resource.

pub mod audit;
pub mod batches;
pub mod dead;
pub mod jobs;
pub mod kinds;
pub mod queues;

use serde::Deserialize;

use crate::error::ApiError;

pub const DEFAULT_PAGE: i64 = 100;
pub const MAX_PAGE: i64 = 1000;

/// Keyset pagination: `?after=<id>&limit=<n>`.
#[derive(Debug, Deserialize, Default)]
pub struct Page {
    pub after: Option<i64>,
    pub limit: Option<i64>,
}

impl Page {
    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_PAGE),
            Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            Some(n) => Err(ApiError::invalid(
                "limit",
                format!("is {n}; it must be 1 to {MAX_PAGE}"),
            )),
        }
    }
}
