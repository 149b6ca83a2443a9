//! A Shopify Admin GraphQL client that survives the real API: it paces itself from each
//! response's `throttleStatus` (sharing the bucket through [`CostBucket`]), never sends a query
//! over 1000 points, retries throttles, 5xx, `INTERNAL_SERVER_ERROR` and connection failures with
//! backoff for idempotent operations only, surfaces `userErrors` to the caller, pages with
//! cursors as a stream, and verifies webhooks. Tokens and secrets never appear in logs or errors.
//!
//! `cost` is shared with the simulator (`cowans-shopsim`), which charges requests with it.

mod batch;
mod bulk;
pub mod cost;
mod error;
mod gid;
mod http;
pub mod metrics;
mod pacing;
mod products;
pub mod search;
pub mod webhook;

pub use batch::AliasedMutation;
pub use bulk::{BulkItem, BulkOperation, BulkStats};
pub use error::{GraphqlError, ShopifyError, UserError};
pub use gid::Gid;
pub use http::{Answer, Client, ClientConfig, Cost, RetryPolicy, ThrottleStatus};
pub use pacing::{CostBucket, LocalBucket};
pub use products::{
    PRODUCT_SEARCH_FIELDS, ProductNode, VariantNode, check_product_search, is_product_search_field,
};
