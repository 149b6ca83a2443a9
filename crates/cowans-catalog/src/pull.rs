//! The pull job (`catalog.pull`): brings a shop's catalog down from Shopify.
//!
//! A full pull runs one bulk query export and streams it into the catalog in batches (one
//! transaction per batch, memory bounded by a batch), then marks deleted the products Shopify no
//! longer has. Everything it writes is idempotent and ordered by Shopify's `updatedAt`, so a
//! retry after a crash — which reuses the export when Shopify still has it — ends with the same
//! catalog: nothing twice, nothing missing, nothing newer overwritten.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use apalis_core::error::BoxDynError;
use chrono::{DateTime, Utc};
use cowans_core::{Event, JobError};
use cowans_queue::JobMeta;
use cowans_shopify::{BulkItem, BulkOperation, Client, Gid, ShopifyError};
use cowans_store::catalog::{self as store, ProductSnapshot, PullRow, ShopRow, VariantSnapshot};

use crate::{Catalog, PullArgs, snapshot};

/// The export of a full pull: every product with the fields the catalog keeps, and its
/// variants.
pub const FULL_EXPORT: &str = "{ products { edges { node { \
  id title handle descriptionHtml vendor productType status tags createdAt updatedAt \
  options { name position optionValues { name } } \
  variants { edges { node { id title position sku barcode price compareAtPrice inventoryQuantity \
    selectedOptions { name value } inventoryItem { id measurement { weight { unit value } } } } } } \
} } } }";

/// How a pull failed.
#[derive(Debug, thiserror::Error)]
enum PullError {
    #[error("Shopify refused the shop's access token (HTTP 401)")]
    Unauthorized,
    #[error("{0}")]
    Shopify(#[from] ShopifyError),
    #[error("the catalog database: {0}")]
    Store(#[from] cowans_store::StoreError),
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

impl PullError {
    fn of(e: ShopifyError) -> Self {
        match e {
            ShopifyError::Unauthorized => PullError::Unauthorized,
            ShopifyError::RetriesExhausted { last, .. }
                if matches!(*last, ShopifyError::Unauthorized) =>
            {
                PullError::Unauthorized
            }
            other => PullError::Shopify(other),
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

/// Runs the pull `args` names; the pull's row says what kind, and whether it still runs.
pub(crate) async fn run(catalog: Catalog, args: PullArgs, job: JobMeta) -> Result<(), BoxDynError> {
    let pool = catalog.pool();
    // The shop (and with it the pull) may have been deleted meanwhile: nothing left to do.
    let Some(pull) = store::get_pull(pool, args.pull_id).await? else {
        return Ok(());
    };
    if pull.state != "running" {
        return Ok(());
    }
    let Some(shop) = store::get_shop(pool, args.shop_id).await? else {
        return Ok(());
    };
    if shop.status == "unauthorized" {
        let why = "the shop is unauthorized (Shopify refused its token); replace the token and pull again";
        finish(&catalog, &pull, Tally::default(), Some(why)).await?;
        return Err(JobError::permanent(why).into());
    }
    let client = match catalog.client(&shop) {
        Ok(c) => c,
        Err(e) => {
            finish(&catalog, &pull, Tally::default(), Some(&e)).await?;
            return Err(JobError::permanent(e).into());
        }
    };
    let outcome = match pull.kind.as_str() {
        "full" => full(&catalog, &client, &shop, &pull, &job).await,
        other => {
            let why = format!("pulls of kind {other} are not supported by this version");
            finish(&catalog, &pull, Tally::default(), Some(&why)).await?;
            return Err(JobError::permanent(why).into());
        }
    };
    match outcome {
        Ok(tally) => {
            finish(&catalog, &pull, tally, None).await?;
            tracing::info!(shop = %shop.name, pull = pull.id, products = tally.products, variants = tally.variants, deleted = tally.deleted, "pull completed");
            Ok(())
        }
        Err(PullError::Unauthorized) => {
            let why = "Shopify refused the shop's access token (HTTP 401); shop marked unauthorized until the token is replaced";
            store::set_shop_status(
                pool,
                shop.id,
                "unauthorized",
                Some("Shopify answered 401 to its access token"),
            )
            .await?;
            finish(&catalog, &pull, Tally::default(), Some(why)).await?;
            Err(JobError::permanent(why).into())
        }
        Err(PullError::Cancelled) => {
            finish(&catalog, &pull, Tally::default(), Some("cancelled")).await?;
            Ok(())
        }
        Err(e) => {
            // The pull stays running for the next attempt, unless this was the last one.
            if job.attempt >= job.max_attempts {
                finish(&catalog, &pull, Tally::default(), Some(&e.to_string())).await?;
            }
            Err(JobError::retry(e).into())
        }
    }
}

/// Ends the pull and announces it (`sync.finished`), once.
async fn finish(
    catalog: &Catalog,
    pull: &PullRow,
    tally: Tally,
    failed: Option<&str>,
) -> Result<(), cowans_store::StoreError> {
    let mut tx = catalog.pool().begin().await?;
    if !store::finish_pull(&mut tx, pull.id, failed, tally.deleted).await? {
        return Ok(());
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
    Ok(())
}

/// Reports a running pull's progress (its row and a `sync.progress` event) at most every
/// `catalog.progress_every_ms`.
struct Progress<'a> {
    catalog: &'a Catalog,
    pull: &'a PullRow,
    every: Duration,
    last: Option<Instant>,
}

impl Progress<'_> {
    async fn report(&mut self, stage: &str, tally: Tally, force: bool) {
        if !force && self.last.is_some_and(|t| t.elapsed() < self.every) {
            return;
        }
        self.last = Some(Instant::now());
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

async fn full(
    catalog: &Catalog,
    client: &Client,
    shop: &ShopRow,
    pull: &PullRow,
    job: &JobMeta,
) -> Result<Tally, PullError> {
    let pool = catalog.pool();
    let mut progress = Progress {
        catalog,
        pull,
        every: Duration::from_millis(catalog.settings().progress_every_ms.max(100)),
        last: None,
    };
    let mut tally = Tally::default();
    let op = export(client, pool, pull, job, &mut progress).await?;
    let Some(url) = op.url.clone() else {
        // An empty shop exports nothing (Shopify gives no file).
        tally.deleted = sweep(catalog, shop, pull).await?;
        return Ok(tally);
    };
    progress.report("writing", tally, true).await;
    let writer = Writer {
        catalog,
        shop,
        pull,
        job,
        state: tokio::sync::Mutex::new(WriterState {
            seen: HashMap::new(),
            newest: None,
            tally,
            progress,
            failure: None,
        }),
    };
    let batch_size = catalog.settings().pull_batch.max(1);
    let writer = &writer;
    let downloaded = client
        .bulk_download_batches(&url, batch_size, move |items| writer.write(items))
        .await;
    let mut state = writer.state.lock().await;
    if let Some(e) = state.failure.take() {
        return Err(e);
    }
    if job.is_cancelled() {
        return Err(PullError::Cancelled);
    }
    let stats = downloaded.map_err(PullError::of)?;
    state.tally.lines = stats.lines as i64;
    state.tally.deleted = sweep(catalog, shop, pull).await?;
    if let Some(t) = state.newest {
        store::set_incremental_from(pool, shop.id, t).await?;
    }
    let tally = state.tally;
    state.progress.report("writing", tally, true).await;
    Ok(tally)
}

/// Writes the export's batches as they arrive.
struct Writer<'a> {
    catalog: &'a Catalog,
    shop: &'a ShopRow,
    pull: &'a PullRow,
    job: &'a JobMeta,
    state: tokio::sync::Mutex<WriterState<'a>>,
}

struct WriterState<'a> {
    /// Each product's updatedAt (for its variants, which may come in a later batch) and how
    /// many of its variants came so far.
    seen: HashMap<i64, (DateTime<Utc>, usize)>,
    newest: Option<DateTime<Utc>>,
    tally: Tally,
    progress: Progress<'a>,
    /// Why writing stopped (the download is then stopped with a stand-in error).
    failure: Option<PullError>,
}

impl Writer<'_> {
    async fn write(&self, items: Vec<BulkItem>) -> Result<(), ShopifyError> {
        let mut state = self.state.lock().await;
        let state = &mut *state;
        if self.job.is_cancelled() {
            return Err(ShopifyError::Decode("cancelled".into()));
        }
        state.tally.lines += items.len() as i64;
        match self.write_batch(items, state).await {
            Ok(()) => {
                let tally = state.tally;
                state.progress.report("writing", tally, false).await;
                Ok(())
            }
            Err(e) => {
                let stop = ShopifyError::Decode(e.to_string());
                state.failure = Some(e);
                Err(stop)
            }
        }
    }

    /// One batch of export objects, in one transaction.
    async fn write_batch(
        &self,
        items: Vec<BulkItem>,
        state: &mut WriterState<'_>,
    ) -> Result<(), PullError> {
        let mut products: Vec<ProductSnapshot> = Vec::new();
        let mut variants: Vec<VariantSnapshot> = Vec::new();
        for item in items {
            match item {
                BulkItem::Parent(v) => {
                    let p = snapshot::product(&v)?;
                    state.seen.insert(p.id, (p.updated_at, 0));
                    state.newest = Some(state.newest.map_or(p.updated_at, |n| n.max(p.updated_at)));
                    products.push(p);
                }
                BulkItem::Child { parent, value } => {
                    let product_id = i64::try_from(parent.id).unwrap_or_default();
                    let Some((updated_at, n)) = state.seen.get_mut(&product_id) else {
                        continue;
                    };
                    variants.push(snapshot::variant(&value, product_id, *updated_at, *n)?);
                    *n += 1;
                }
            }
        }
        let (shop, pull) = (self.shop, self.pull);
        let mut tx = self
            .catalog
            .pool()
            .begin()
            .await
            .map_err(cowans_store::StoreError::from)?;
        let written = store::upsert_products(
            &mut tx,
            shop.id,
            Some((pull.id, pull.started_at)),
            &products,
        )
        .await?;
        let variants_written =
            store::upsert_variants(&mut tx, shop.id, Some(pull.id), &variants).await?;
        tx.commit().await.map_err(cowans_store::StoreError::from)?;
        state.tally.products += written as i64;
        state.tally.variants += variants_written as i64;
        Ok(())
    }
}

/// The finished export of this pull: the one a previous attempt started, if Shopify still has
/// it, or a new one. Waits for it, reporting `exporting` progress.
async fn export(
    client: &Client,
    pool: &cowans_queue::PgPool,
    pull: &PullRow,
    job: &JobMeta,
    progress: &mut Progress<'_>,
) -> Result<BulkOperation, PullError> {
    let reusable = match pull
        .bulk_operation
        .as_deref()
        .and_then(|id| id.parse::<Gid>().ok())
    {
        Some(id) => match client.bulk_operation(&id).await {
            Ok(op)
                if op.status != "FAILED" && op.status != "CANCELED" && op.status != "EXPIRED" =>
            {
                Some(op)
            }
            Ok(_) => None,
            Err(ShopifyError::Unauthorized) => return Err(PullError::Unauthorized),
            Err(_) => None,
        },
        None => None,
    };
    let mut op = match reusable {
        Some(op) => op,
        None => {
            let op = client
                .bulk_query_start(FULL_EXPORT)
                .await
                .map_err(PullError::of)?;
            store::set_pull_bulk_operation(pool, pull.id, &op.id.to_string()).await?;
            op
        }
    };
    let mut poll = Duration::from_millis(200);
    while !op.is_finished() {
        if job.is_cancelled() {
            return Err(PullError::Cancelled);
        }
        let tally = Tally {
            lines: op.object_count.parse().unwrap_or(0),
            ..Tally::default()
        };
        progress.report("exporting", tally, false).await;
        tokio::time::sleep(poll).await;
        poll = (poll * 2).min(Duration::from_secs(2));
        op = client.bulk_operation(&op.id).await.map_err(PullError::of)?;
    }
    if op.status != "COMPLETED" {
        return Err(PullError::Export {
            status: op.status,
            code: op.error_code,
        });
    }
    Ok(op)
}

/// Marks deleted what the full pull did not see; returns how many products.
async fn sweep(catalog: &Catalog, shop: &ShopRow, pull: &PullRow) -> Result<i64, PullError> {
    let mut tx = catalog
        .pool()
        .begin()
        .await
        .map_err(cowans_store::StoreError::from)?;
    let deleted = store::sweep_after_full_pull(&mut tx, shop.id, pull.id, pull.started_at).await?;
    tx.commit().await.map_err(cowans_store::StoreError::from)?;
    Ok(deleted as i64)
}
