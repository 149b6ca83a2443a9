//! The catalog-sync application: shops (their secrets sealed at rest), the local catalog of
//! products and variants (the last-synced Shopify snapshot of each, the base of the three-way
//! check of staged changes), and pulling it down from Shopify. Enabled with
//! `apps = ["catalog"]`; its tables are created only where it is.
//!
//! - [`Catalog`]: the application's front door (shops, pulls, reading the catalog), used by the
//!   API and the command line alike.
//! - `catalog.pull_full`, `catalog.pull_incremental` (queue `catalog`): pulls of one shop; see
//!   `sync`.
//! - Staged changes, their review, and `catalog.push` (queue `catalog`), which sends approved
//!   ones to Shopify with a three-way check; see [`changes`].
//!
//! **Architecture Invariant:** no SQL here (it is in `cowans_store::catalog`); a shop's secrets
//! exist in clear only in memory, for the request that needs them.

mod budget;
mod catalog;
pub mod changes;
pub mod export;
pub mod metrics;
pub mod notify;
mod pulls;
pub mod secrets;
mod settings;
mod shops;
pub mod snapshot;
mod sync;
mod views;
pub mod webhooks;

use std::time::Duration;

use apalis_core::task::task_fn::task_fn;
use cowans_core::RetryPolicy;
use cowans_queue::{App, AppContext, FrontDoor, JobKind, JobMeta};

pub use catalog::{Catalog, ConfigError};
pub use changes::{
    BulkEditSpec, BulkPreview, BulkSelection, ChangeState, ChangeView, Decision, Edit, FIELDS,
    FieldChange, Operation, PreviewDiff, Resolution, Selection, Source, Staged,
};
/// The catalog's vocabulary, for front ends that should not depend on the store.
pub use cowans_store::catalog::{
    BulkEditRow, ChangeFilter, ChangeRow, ImportResult, ImportRow, ProductFilter, ProductRow,
    PullRow, ShopRow, VariantRow,
};
pub use pulls::{PullArgs, PullKind};
pub use settings::{BudgetStore, CatalogSettings};
pub use shops::{ShopRequest, ShopUpdate};
pub use sync::export_query;
pub use views::{ProductView, VariantView};

/// The queue the catalog's jobs run on.
pub const QUEUE: &str = "catalog";
/// The job kind of full pulls.
pub const PULL_FULL: &str = "catalog.pull_full";
/// The job kind of incremental pulls (also run periodically per shop).
pub const PULL_INCREMENTAL: &str = "catalog.pull_incremental";
/// The job kind of reconciliations (also run periodically per shop).
pub const RECONCILE: &str = "catalog.reconcile";

/// The catalog application.
pub const APP: App = App {
    name: "catalog",
    description: "shops, the local catalog, pulls from Shopify",
    migrations: Some(&cowans_store::catalog::MIGRATOR),
    kinds,
};

/// A retry policy with a quarter of jitter.
fn retry(max_attempts: i32, base_secs: u64, max_secs: u64) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_secs(base_secs),
        max_delay: Duration::from_secs(max_secs),
        jitter: 0.25,
    }
}

/// A job kind of the catalog: `handler(catalog, args, job)` on `queue`.
macro_rules! kind {
    ($catalog:expr, $name:expr, $description:expr, $queue:expr, $timeout_secs:expr, $retry:expr,
     |$cat:ident, $args:ident : $ty:ty, $job:ident| $body:expr) => {{
        let c = $catalog.clone();
        JobKind::new(
            $name,
            $description,
            task_fn(move |$args: $ty, $job: JobMeta| {
                let $cat = c.clone();
                async move { $body.await }
            }),
        )
        .queue($queue)
        .timeout(Duration::from_secs($timeout_secs))
        .retry($retry)
    }};
}

fn kinds(ctx: &AppContext) -> Result<Vec<JobKind>, String> {
    let settings = ctx.get::<CatalogSettings>().cloned().unwrap_or_default();
    let catalog = Catalog::new(FrontDoor::builder(ctx.pool.clone()).build(), &settings)
        .map_err(|e| e.to_string())?;
    if let Some(b) = ctx.get::<cowans_redis::CostBuckets>() {
        catalog.use_redis_budgets(b.clone());
    }
    let pull = |kind: PullKind, description: &'static str, retry: RetryPolicy| {
        kind!(
            catalog,
            kind.job_kind(),
            description,
            QUEUE,
            3600,
            retry,
            |cat, args: PullArgs, job| sync::run(cat, kind, args, job)
        )
    };
    Ok(vec![
        kind!(
            catalog,
            webhooks::WEBHOOK_KIND,
            "applies a Shopify webhook delivery to the catalog",
            webhooks::WEBHOOK_QUEUE,
            60,
            retry(8, 1, 300),
            |cat, args: webhooks::WebhookArgs, _job| webhooks::apply(cat, args)
        ),
        kind!(
            catalog,
            webhooks::SUBSCRIBE_KIND,
            "subscribes a shop's product webhooks to catalog.webhook_url",
            QUEUE,
            120,
            retry(10, 5, 600),
            |cat, args: webhooks::SubscribeArgs, _job| webhooks::subscribe(cat, args)
        ),
        kind!(
            catalog,
            changes::push::PUSH,
            "pushes a shop's approved changes to Shopify (three-way checked, conflicts back to review)",
            QUEUE,
            3600,
            retry(10, 5, 600),
            |cat, args: changes::PushArgs, job| changes::push::run(cat, args, job)
        ),
        kind!(
            catalog,
            changes::bulk_edit::BULK_EDIT,
            "stages a bulk edit's changes for a chunk of its products",
            QUEUE,
            600,
            retry(10, 2, 300),
            |cat, args: changes::bulk_edit::BulkChunkArgs, job| changes::bulk_edit::run_chunk(
                cat, args, job
            )
        ),
        kind!(
            catalog,
            changes::bulk_edit::BULK_EDIT_DONE,
            "ends a bulk edit when its chunks have run",
            QUEUE,
            60,
            retry(10, 2, 300),
            |cat, args: changes::bulk_edit::BulkDoneArgs, _job| changes::bulk_edit::run_done(
                cat, args
            )
        ),
        kind!(
            catalog,
            notify::WATCH_DEAD,
            "counts every queue's dead letters and notifies a rise",
            QUEUE,
            60,
            retry(3, 5, 60),
            |cat, _args: notify::WatchDeadArgs, _job| notify::watch_dead(cat)
        ),
        kind!(
            catalog,
            notify::NOTIFY,
            "sends one notification (email or signed webhook) of a push or bulk edit",
            QUEUE,
            120,
            retry(12, 5, 1800),
            |cat, args: notify::NotifyArgs, _job| notify::send(cat, args)
        ),
        pull(
            PullKind::Full,
            "pulls a shop's whole catalog (a bulk export streamed into the catalog; deletions marked)",
            retry(10, 5, 600),
        ),
        pull(
            PullKind::Reconcile,
            "compares a shop's product ids and updatedAt with Shopify and repairs the differences",
            retry(5, 30, 1800),
        ),
        pull(
            PullKind::Incremental,
            "pulls the products of a shop updated since its newest one seen",
            retry(5, 5, 120),
        ),
    ])
}
