//! The catalog-sync application: shops (their secrets sealed at rest), the local catalog of
//! products and variants (the last-synced Shopify snapshot of each, the base of the three-way
//! check of staged changes), and pulling it down from Shopify. Enabled with
//! `apps = ["catalog"]`; its tables are created only where it is.
//!
//! - [`Catalog`]: the application's front door (shops, pulls, reading the catalog), used by the
//!   API and the command line alike.
//! - `catalog.pull` (queue `catalog`): a full pull (bulk export) of one shop; see [`pull`].
//!
//! **Architecture Invariant:** no SQL here (it is in `cowans_store::catalog`); a shop's secrets
//! exist in clear only in memory, for the request that needs them.

mod catalog;
mod pull;
pub mod secrets;
mod settings;
pub mod snapshot;

use std::time::Duration;

use apalis_core::task::task_fn::task_fn;
use cowans_core::RetryPolicy;
use cowans_queue::{App, AppContext, FrontDoor, JobKind, JobMeta};

pub use catalog::{Catalog, PullArgs, PullKind, ShopRequest, ShopUpdate};
pub use pull::FULL_EXPORT;
pub use settings::CatalogSettings;

/// The queue the catalog's jobs run on.
pub const QUEUE: &str = "catalog";
/// The kind of the pull job.
pub const PULL_KIND: &str = "catalog.pull";

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
    Ok(vec![
        JobKind::new(
            PULL_KIND,
            "pulls a shop's catalog from Shopify (full: a bulk export streamed into the catalog)",
            task_fn(move |args: PullArgs, job: JobMeta| {
                let catalog = catalog.clone();
                async move { pull::run(catalog, args, job).await }
            }),
        )
        .queue(QUEUE)
        .timeout(Duration::from_secs(3600))
        .retry(RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(600),
            jitter: 0.25,
        }),
    ])
}
