//! The pull jobs (`catalog.pull_full`, `catalog.pull_incremental`): bring a shop's catalog
//! down from Shopify.
//!
//! - A full pull runs one bulk query export and streams it into the catalog in batches (one
//!   transaction per batch, memory bounded by a batch), then marks deleted the products Shopify
//!   no longer has (see [`export`]).
//! - An incremental pull asks for the products updated since the newest one seen, less an
//!   overlap: it counts them first, reads a few through paginated queries and many through a
//!   filtered bulk export (see [`incremental`]).
//! - A reconciliation compares ids and `updatedAt` with Shopify and repairs the differences
//!   (see [`reconcile`]).
//!
//! Everything a pull writes is idempotent and ordered by Shopify's `updatedAt`, so a retry after
//! a crash — which reuses the export when Shopify still has it — ends with the same catalog:
//! nothing twice, nothing missing, nothing newer overwritten.

mod export;
mod incremental;
mod reconcile;
mod writer;

use std::time::{Duration, Instant};

use apalis_core::error::BoxDynError;
use cowans_core::{Event, JobError};
use cowans_queue::JobMeta;
use cowans_shopify::ShopifyError;
use cowans_store::{
    StoreError,
    catalog::{self as store, PullRow},
};

use crate::{Catalog, PullArgs, PullKind, snapshot};

pub use export::export_query;

/// How a pull failed.
#[derive(Debug, thiserror::Error)]
enum PullError {
    #[error("Shopify refused the shop's access token (HTTP 401)")]
    Unauthorized,
    #[error("{0}")]
    Shopify(#[from] ShopifyError),
    #[error("the catalog database: {0}")]
    Store(#[from] StoreError),
    #[error("the export's bulk operation ended {status}{}", code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Export {
        status: String,
        code: Option<String>,
    },
    #[error("an export line: {0}")]
    Line(#[from] snapshot::SnapshotError),
    #[error("cancelled")]
    Cancelled,
}

impl From<sqlx::Error> for PullError {
    fn from(e: sqlx::Error) -> Self {
        PullError::Store(e.into())
    }
}

impl PullError {
    fn of(e: ShopifyError) -> Self {
        if e.is_unauthorized() {
            PullError::Unauthorized
        } else {
            PullError::Shopify(e)
        }
    }
}

/// What a pull did.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    lines: i64,
    products: i64,
    variants: i64,
    deleted: i64,
}

/// Runs a pull of `kind`: the one `args` names, or (a periodic job) a new one unless a pull of
/// that kind is running for the shop already.
pub(crate) async fn run(
    catalog: Catalog,
    kind: PullKind,
    args: PullArgs,
    job: JobMeta,
) -> Result<(), BoxDynError> {
    let pool = catalog.pool();
    // The shop (and with it the pull) may have been deleted meanwhile: nothing left to do.
    let Some(shop) = store::get_shop(pool, args.shop_id).await? else {
        return Ok(());
    };
    let pull = match args.pull_id {
        Some(id) => store::get_pull(pool, id).await?,
        None if shop.status == "unauthorized" => {
            // A periodic pull of a shop whose token Shopify refused: nothing to try until an
            // operator replaces the token (the shop's status says so).
            return Ok(());
        }
        None => match start_own(&catalog, shop.id, kind, &job).await? {
            Some(p) => Some(p),
            None => return Ok(()),
        },
    };
    let Some(pull) = pull.filter(|p| p.state == "running") else {
        return Ok(());
    };
    let running = crate::metrics::RunningPull::start(&shop.domain, &pull.kind);
    if shop.status == "unauthorized" {
        let why = "the shop is unauthorized (Shopify refused its token); replace the token and pull again";
        if finish(&catalog, &pull, Tally::default(), Some(why)).await? {
            running.finished("failed");
        }
        return Err(JobError::permanent(why).into());
    }
    let client = match catalog.client(&shop) {
        Ok(c) => c,
        Err(e) => {
            if finish(&catalog, &pull, Tally::default(), Some(&e)).await? {
                running.finished("failed");
            }
            return Err(JobError::permanent(e).into());
        }
    };
    let mut progress = Progress {
        catalog: &catalog,
        pull: &pull,
        every: Duration::from_millis(catalog.settings().progress_every_ms.max(100)),
        last: None,
        // A resumed pull's tally goes on from what its row says was written.
        counted: (pull.products, pull.variants),
        running: &running,
    };
    let outcome = match kind {
        PullKind::Full => export::full(&catalog, &client, &shop, &pull, &job, &mut progress).await,
        PullKind::Incremental => {
            incremental::run(&catalog, &client, &shop, &pull, &job, &mut progress).await
        }
        PullKind::Reconcile => {
            reconcile::run(&catalog, &client, &shop, &pull, &job, &mut progress).await
        }
    };
    match outcome {
        Ok(tally) => {
            progress.report("done", tally, true).await;
            if finish(&catalog, &pull, tally, None).await? {
                running.finished("completed");
            }
            tracing::info!(shop = %shop.name, pull = pull.id, kind = kind.as_str(), products = tally.products, variants = tally.variants, deleted = tally.deleted, "pull completed");
            Ok(())
        }
        Err(PullError::Unauthorized) => {
            let why = catalog.token_refused(shop.id).await?;
            if finish(&catalog, &pull, Tally::default(), Some(why)).await? {
                running.finished("failed");
            }
            Err(JobError::permanent(why).into())
        }
        Err(PullError::Cancelled) => {
            if finish(&catalog, &pull, Tally::default(), Some("cancelled")).await? {
                running.finished("failed");
            }
            Ok(())
        }
        Err(e) => {
            // The pull stays running for the next attempt, unless this was the last one.
            if job.attempt >= job.max_attempts
                && finish(&catalog, &pull, Tally::default(), Some(&e.to_string())).await?
            {
                running.finished("failed");
            }
            Err(JobError::retry(e).into())
        }
    }
}

/// A periodic job's own pull: its row, tied to this job; `None` when a pull of that kind runs.
async fn start_own(
    catalog: &Catalog,
    shop_id: i64,
    kind: PullKind,
    job: &JobMeta,
) -> Result<Option<PullRow>, StoreError> {
    let mut tx = catalog.pool().begin().await?;
    match store::start_pull(&mut tx, shop_id, kind.as_str()).await {
        Ok(mut pull) => {
            store::set_pull_job(&mut tx, pull.id, job.id.0).await?;
            tx.commit().await?;
            pull.job_id = Some(job.id.0);
            Ok(Some(pull))
        }
        Err(StoreError::Conflict { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Ends the pull and announces it (`sync.finished`), once: false if it had ended already.
async fn finish(
    catalog: &Catalog,
    pull: &PullRow,
    tally: Tally,
    failed: Option<&str>,
) -> Result<bool, cowans_store::StoreError> {
    let mut tx = catalog.pool().begin().await?;
    if !store::finish_pull(&mut tx, pull.id, failed, tally.deleted).await? {
        return Ok(false);
    }
    let done = store::get_pull_in(&mut tx, pull.id).await?;
    let event = Event::SyncFinished {
        shop_id: pull.shop_id,
        pull_id: pull.id,
        kind: pull.kind.clone(),
        state: if failed.is_some() {
            "failed"
        } else {
            "completed"
        }
        .to_owned(),
        products: done.as_ref().map_or(tally.products, |p| p.products),
        variants: done.as_ref().map_or(tally.variants, |p| p.variants),
        deleted: tally.deleted,
        error: failed.map(Event::short_error),
    };
    cowans_store::announce(&mut tx, &[], &[event]).await?;
    tx.commit().await?;
    Ok(true)
}

/// Reports a running pull's progress (its row and a `sync.progress` event) at most every
/// `catalog.progress_every_ms`.
struct Progress<'a> {
    catalog: &'a Catalog,
    pull: &'a PullRow,
    every: Duration,
    last: Option<Instant>,
    /// Products and variants already counted in the pull metrics.
    counted: (i64, i64),
    running: &'a crate::metrics::RunningPull,
}

impl Progress<'_> {
    async fn report(&mut self, stage: &str, tally: Tally, force: bool) {
        if !force && self.last.is_some_and(|t| t.elapsed() < self.every) {
            return;
        }
        self.last = Some(Instant::now());
        // A retried attempt that writes rows again counts only what goes beyond the last count.
        let (products, variants) = self.counted;
        self.running.wrote(
            (tally.products - products).max(0) as u64,
            (tally.variants - variants).max(0) as u64,
        );
        self.counted = (products.max(tally.products), variants.max(tally.variants));
        let pool = self.catalog.pool();
        let event = Event::SyncProgress {
            shop_id: self.pull.shop_id,
            pull_id: self.pull.id,
            kind: self.pull.kind.clone(),
            stage: stage.to_owned(),
            lines: tally.lines,
            products: tally.products,
            variants: tally.variants,
        };
        let reported = async {
            store::record_pull_progress(
                pool,
                self.pull.id,
                tally.lines,
                tally.products,
                tally.variants,
            )
            .await?;
            let mut conn = pool.acquire().await?;
            cowans_store::announce(&mut conn, &[], &[event]).await
        };
        // Progress is informative: a failure to report it must not fail the pull.
        if let Err(e) = reported.await {
            tracing::warn!(pull = self.pull.id, error = %e, "could not report pull progress");
        }
    }
}
