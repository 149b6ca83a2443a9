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
    BulkEditSpec, BulkPreview, BulkSelection, ChangeState, ChangeView, Decision, Edit, FieldChange,
    Operation, PreviewDiff, Resolution, Selection, Source, Staged,
};
/// The catalog's vocabulary, for front ends that should not depend on the store.
pub use cowans_store::catalog::{
    BulkEditRow, ChangeFilter, ChangeRow, ImportResult, ImportRow, ProductFilter, ProductRow,
    PullRow, ShopRow, VariantRow,
};
pub use pulls::{PullArgs, PullKind};
pub use settings::CatalogSettings;
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

fn kinds(ctx: &AppContext) -> Result<Vec<JobKind>, String> {
    let settings = ctx.get::<CatalogSettings>().cloned().unwrap_or_default();
    let catalog = Catalog::new(FrontDoor::builder(ctx.pool.clone()).build(), &settings)
        .map_err(|e| e.to_string())?;
    let pull = |kind: PullKind, description: &'static str, retry: RetryPolicy| {
        let catalog = catalog.clone();
        JobKind::new(
            kind.job_kind(),
            description,
            task_fn(move |args: PullArgs, job: JobMeta| {
                let catalog = catalog.clone();
                async move { sync::run(catalog, kind, args, job).await }
            }),
        )
        .queue(QUEUE)
        .timeout(Duration::from_secs(3600))
        .retry(retry)
    };
    let c = catalog.clone();
    let webhook = JobKind::new(
        webhooks::WEBHOOK_KIND,
        "applies a Shopify webhook delivery to the catalog",
        task_fn(move |args: webhooks::WebhookArgs| {
            let catalog = c.clone();
            async move { webhooks::apply(catalog, args).await }
        }),
    )
    .queue(webhooks::WEBHOOK_QUEUE)
    .timeout(Duration::from_secs(60))
    .retry(RetryPolicy {
        max_attempts: 8,
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(300),
        jitter: 0.25,
    });
    let c = catalog.clone();
    let push = JobKind::new(
        changes::push::PUSH,
        "pushes a shop's approved changes to Shopify (three-way checked, conflicts back to review)",
        task_fn(move |args: changes::PushArgs, job: JobMeta| {
            let catalog = c.clone();
            async move { changes::push::run(catalog, args, job).await }
        }),
    )
    .queue(QUEUE)
    .timeout(Duration::from_secs(3600))
    .retry(RetryPolicy {
        max_attempts: 10,
        base_delay: Duration::from_secs(5),
        max_delay: Duration::from_secs(600),
        jitter: 0.25,
    });
    let c = catalog.clone();
    let bulk_chunk = JobKind::new(
        changes::bulk_edit::BULK_EDIT,
        "stages a bulk edit's changes for a chunk of its products",
        task_fn(
            move |args: changes::bulk_edit::BulkChunkArgs, job: JobMeta| {
                let catalog = c.clone();
                async move { changes::bulk_edit::run_chunk(catalog, args, job).await }
            },
        ),
    )
    .queue(QUEUE)
    .timeout(Duration::from_secs(600))
    .retry(RetryPolicy {
        max_attempts: 10,
        base_delay: Duration::from_secs(2),
        max_delay: Duration::from_secs(300),
        jitter: 0.25,
    });
    let c = catalog.clone();
    let bulk_done = JobKind::new(
        changes::bulk_edit::BULK_EDIT_DONE,
        "ends a bulk edit when its chunks have run",
        task_fn(move |args: changes::bulk_edit::BulkDoneArgs| {
            let catalog = c.clone();
            async move { changes::bulk_edit::run_done(catalog, args).await }
        }),
    )
    .queue(QUEUE)
    .timeout(Duration::from_secs(60))
    .retry(RetryPolicy {
        max_attempts: 10,
        base_delay: Duration::from_secs(2),
        max_delay: Duration::from_secs(300),
        jitter: 0.25,
    });
    let c = catalog.clone();
    let notify = JobKind::new(
        notify::NOTIFY,
        "sends one notification (email or signed webhook) of a push or bulk edit",
        task_fn(move |args: notify::NotifyArgs| {
            let catalog = c.clone();
            async move { notify::send(catalog, args).await }
        }),
    )
    .queue(QUEUE)
    .timeout(Duration::from_secs(120))
    .retry(RetryPolicy {
        max_attempts: 12,
        base_delay: Duration::from_secs(5),
        max_delay: Duration::from_secs(1800),
        jitter: 0.25,
    });
    let c = catalog.clone();
    let subscribe = JobKind::new(
        webhooks::SUBSCRIBE_KIND,
        "subscribes a shop's product webhooks to catalog.webhook_url",
        task_fn(move |args: webhooks::SubscribeArgs| {
            let catalog = c.clone();
            async move { webhooks::subscribe(catalog, args).await }
        }),
    )
    .queue(QUEUE)
    .timeout(Duration::from_secs(120))
    .retry(RetryPolicy {
        max_attempts: 10,
        base_delay: Duration::from_secs(5),
        max_delay: Duration::from_secs(600),
        jitter: 0.25,
    });
    Ok(vec![
        webhook,
        subscribe,
        push,
        bulk_chunk,
        bulk_done,
        notify,
        pull(
            PullKind::Full,
            "pulls a shop's whole catalog (a bulk export streamed into the catalog; deletions marked)",
            RetryPolicy {
                max_attempts: 10,
                base_delay: Duration::from_secs(5),
                max_delay: Duration::from_secs(600),
                jitter: 0.25,
            },
        ),
        pull(
            PullKind::Reconcile,
            "compares a shop's product ids and updatedAt with Shopify and repairs the differences",
            RetryPolicy {
                max_attempts: 5,
                base_delay: Duration::from_secs(30),
                max_delay: Duration::from_secs(1800),
                jitter: 0.25,
            },
        ),
        pull(
            PullKind::Incremental,
            "pulls the products of a shop updated since its newest one seen",
            RetryPolicy {
                max_attempts: 5,
                base_delay: Duration::from_secs(5),
                max_delay: Duration::from_secs(120),
                jitter: 0.25,
            },
        ),
    ])
}
