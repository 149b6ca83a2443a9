//! What a client saw of a shop, as Prometheus series labelled by `shop` (the shop's domain, so
//! one series per shop, however many clients and processes call it): requests by outcome, the
//! points its answers cost, the cost bucket as Shopify last reported it, the time callers waited
//! for budget, and bulk operations.

use metrics::{counter, gauge, histogram};

use crate::ThrottleStatus;

/// GraphQL requests by `outcome`: `ok`, `throttled` (refused by Shopify for want of points) or
/// `error` (any other failure: transport, 5xx, GraphQL errors).
pub const REQUESTS: &str = "cowans_shopify_requests_total";
/// Points the answered requests actually cost (`actualQueryCost`, else the requested cost).
pub const POINTS_USED: &str = "cowans_shopify_points_used_total";
/// The bucket as the last answer reported it: points available now, its size, its restore rate.
pub const POINTS_AVAILABLE: &str = "cowans_shopify_points_available";
pub const POINTS_MAXIMUM: &str = "cowans_shopify_points_maximum";
pub const RESTORE_RATE: &str = "cowans_shopify_restore_rate_points_per_second";
/// How long each request waited before it was sent for the shop's bucket to hold its points (a
/// histogram: `rate(_sum)` is the share of the time callers spend waiting for budget).
pub const BUDGET_WAIT: &str = "cowans_shopify_budget_wait_seconds";
/// Bulk operations started, by `type` (`query`, `mutation`).
pub const BULK_STARTED: &str = "cowans_shopify_bulk_operations_started_total";
/// Bulk operations seen finished, by `type` and `status` (`completed`, `failed`, `canceled`,
/// `expired`).
pub const BULK_FINISHED: &str = "cowans_shopify_bulk_operations_finished_total";

/// The outcomes of [`REQUESTS`].
pub const OUTCOMES: [&str; 3] = ["ok", "throttled", "error"];

/// Registers the shop's request series at zero, so a ratio of throttled requests exists (and is
/// 0) before the first throttle, and `increase()` sees the first one.
pub(crate) fn register(shop: &str) {
    for outcome in OUTCOMES {
        counter!(REQUESTS, "shop" => shop.to_owned(), "outcome" => outcome).increment(0);
    }
}

pub(crate) fn request(shop: &str, outcome: &'static str) {
    counter!(REQUESTS, "shop" => shop.to_owned(), "outcome" => outcome).increment(1);
}

pub(crate) fn points_used(shop: &str, points: f64) {
    // Counters are whole numbers in the `metrics` crate; points are (Shopify reports integers).
    counter!(POINTS_USED, "shop" => shop.to_owned()).increment(points.max(0.0).round() as u64);
}

pub(crate) fn bucket(shop: &str, t: ThrottleStatus) {
    gauge!(POINTS_AVAILABLE, "shop" => shop.to_owned()).set(t.currently_available);
    gauge!(POINTS_MAXIMUM, "shop" => shop.to_owned()).set(t.maximum_available);
    gauge!(RESTORE_RATE, "shop" => shop.to_owned()).set(t.restore_rate);
}

pub(crate) fn waited(shop: &str, secs: f64) {
    histogram!(BUDGET_WAIT, "shop" => shop.to_owned()).record(secs);
}

pub(crate) fn bulk_started(shop: &str, kind: &'static str) {
    counter!(BULK_STARTED, "shop" => shop.to_owned(), "type" => kind).increment(1);
}

pub(crate) fn bulk_finished(shop: &str, kind: &str, status: &str) {
    counter!(BULK_FINISHED, "shop" => shop.to_owned(), "type" => kind.to_lowercase(),
        "status" => status.to_lowercase())
    .increment(1);
}

/// Registers descriptions so `/metrics` explains each series.
pub fn describe() {
    metrics::describe_counter!(
        REQUESTS,
        "Shopify GraphQL requests by shop and outcome (ok, throttled, error)"
    );
    metrics::describe_counter!(POINTS_USED, "Shopify query cost points spent, by shop");
    metrics::describe_gauge!(
        POINTS_AVAILABLE,
        "Points in the shop's cost bucket at its last answer"
    );
    metrics::describe_gauge!(POINTS_MAXIMUM, "Size of the shop's cost bucket");
    metrics::describe_gauge!(RESTORE_RATE, "Points per second the shop's bucket restores");
    metrics::describe_histogram!(
        BUDGET_WAIT,
        "Seconds a Shopify request waited for its shop's budget before it was sent"
    );
    metrics::describe_counter!(
        BULK_STARTED,
        "Shopify bulk operations started, by shop and type"
    );
    metrics::describe_counter!(
        BULK_FINISHED,
        "Shopify bulk operations seen finished, by shop, type and status"
    );
}
