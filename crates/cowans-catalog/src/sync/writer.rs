//! Writes what a pull reads — bulk export lines or pages of products, as [`BulkItem`]s — into
//! the catalog, a batch per transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use cowans_queue::JobMeta;
use cowans_shopify::{BulkItem, ShopifyError};
use cowans_store::catalog::{self as store, ProductSnapshot, PullRow, ShopRow, VariantSnapshot};
use serde_json::Value;

use super::{Progress, PullError, Tally};
use crate::{Catalog, snapshot};

/// How a pull's writes relate to the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// A full pull: what it writes is tagged with its id (its sweep marks deleted what it did
    /// not see, and removes the variants it did not list), and a deletion recorded after it
    /// started wins over its view.
    Full,
    /// Changes (an incremental pull): untagged; a product marked deleted stays so; at the end,
    /// the variants Shopify no longer lists of the products rewritten are removed.
    Changes,
    /// A reconciliation's repairs: like `Changes`, except that Shopify listing a product
    /// marked deleted before the reconciliation started brings it back.
    Repair,
}

/// Writes batches for one pull (see [`Mode`]).
pub(super) struct Writer<'a, 'p> {
    catalog: &'a Catalog,
    shop: &'a ShopRow,
    pull: &'a PullRow,
    job: &'a JobMeta,
    mode: Mode,
    /// The read is a bulk export, whose variants' inventory levels come as lines of their own.
    levels_as_lines: bool,
    state: tokio::sync::Mutex<State<'a, 'p>>,
}

struct State<'a, 'p> {
    /// Each product read, by id.
    seen: HashMap<i64, Seen>,
    newest: Option<DateTime<Utc>>,
    tally: Tally,
    progress: &'p mut Progress<'a>,
    /// Why writing stopped (the download is then stopped with a stand-in error).
    failure: Option<PullError>,
    /// Products written when the tables' statistics were last refreshed.
    analyzed_at: i64,
}

/// A product read: its updatedAt (for its variants, which may come in a later batch) and the
/// ids of its variants so far.
struct Seen {
    updated_at: DateTime<Utc>,
    variants: Vec<i64>,
}

/// What a writer wrote.
pub(super) struct Written {
    pub tally: Tally,
    /// Shopify's newest `updatedAt` among the products read.
    pub newest: Option<DateTime<Utc>>,
}

impl<'a, 'p> Writer<'a, 'p> {
    pub fn new(
        catalog: &'a Catalog,
        shop: &'a ShopRow,
        pull: &'a PullRow,
        job: &'a JobMeta,
        mode: Mode,
        progress: &'p mut Progress<'a>,
    ) -> Self {
        Self {
            catalog,
            shop,
            pull,
            job,
            mode,
            levels_as_lines: false,
            state: tokio::sync::Mutex::new(State {
                seen: HashMap::new(),
                newest: None,
                tally: Tally::default(),
                progress,
                failure: None,
                analyzed_at: 0,
            }),
        }
    }

    /// The read is a bulk export: its variants' levels come as lines of their own (see
    /// [`export_query`](super::export_query)).
    pub fn levels_as_lines(mut self) -> Self {
        self.levels_as_lines = true;
        self
    }

    /// Writes one batch, reporting progress now and then. A failure is kept (see
    /// [`Writer::finish`]) and answered with a stand-in error that stops a download.
    pub async fn write(&self, items: Vec<BulkItem>) -> Result<(), ShopifyError> {
        let mut state = self.state.lock().await;
        let state = &mut *state;
        if self.job.is_cancelled() {
            state.failure.get_or_insert(PullError::Cancelled);
            return Err(ShopifyError::Decode("cancelled".into()));
        }
        state.tally.lines += items.len() as i64;
        match self.write_batch(items, state).await {
            Ok(()) => {
                let tally = state.tally;
                // Fresh statistics each time the pull has doubled what it wrote, so plans
                // follow the tables' growth (see `analyze_catalog`).
                if tally.products >= (2 * state.analyzed_at).max(1000) {
                    state.analyzed_at = tally.products;
                    if let Err(e) = store::analyze_catalog(self.catalog.pool()).await {
                        tracing::warn!(error = %e, "could not analyze the catalog's tables");
                    }
                }
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

    /// Why writing stopped, if it did.
    pub async fn failure(&self) -> Option<PullError> {
        self.state.lock().await.failure.take()
    }

    /// After the last batch of a complete read: the first failure, if any; else (for pulls other than full ones)
    /// removes the variants Shopify no longer lists of the products written, and says what was
    /// written.
    pub async fn finish(self) -> Result<Written, PullError> {
        let mut state = self.state.into_inner();
        if let Some(e) = state.failure.take() {
            return Err(e);
        }
        if self.job.is_cancelled() {
            return Err(PullError::Cancelled);
        }
        if self.mode != Mode::Full {
            let pool = self.catalog.pool();
            let seen: Vec<(i64, Seen)> = state.seen.into_iter().collect();
            for chunk in seen.chunks(1000) {
                let products: Vec<(i64, DateTime<Utc>)> =
                    chunk.iter().map(|(id, s)| (*id, s.updated_at)).collect();
                let kept: Vec<i64> = chunk
                    .iter()
                    .flat_map(|(_, s)| s.variants.iter().copied())
                    .collect();
                let mut conn = pool.acquire().await?;
                store::prune_variants(&mut conn, self.shop.id, &products, &kept).await?;
            }
        }
        Ok(Written {
            tally: state.tally,
            newest: state.newest,
        })
    }

    /// Reports progress now (with the lines a download counted, when given).
    pub async fn report(&self, stage: &str, lines: Option<i64>) {
        let mut state = self.state.lock().await;
        if let Some(l) = lines {
            state.tally.lines = l;
        }
        let tally = state.tally;
        state.progress.report(stage, tally, true).await;
    }

    /// One batch of products and variants, in one transaction.
    async fn write_batch(
        &self,
        items: Vec<BulkItem>,
        state: &mut State<'_, '_>,
    ) -> Result<(), PullError> {
        let mut products: Vec<ProductSnapshot> = Vec::new();
        let mut variants: Vec<VariantSnapshot> = Vec::new();
        // An export's level lines: into their variant's snapshot when it is in this batch (the
        // usual case: they follow it), else merged into the stored variant after the upsert.
        let mut levels: Vec<(i64, i64, i64)> = Vec::new();
        let mut at: HashMap<i64, usize> = HashMap::new();
        for item in items {
            match item {
                BulkItem::Child { parent, value } if parent.kind == "ProductVariant" => {
                    let (Ok(variant), Some((location, available))) =
                        (i64::try_from(parent.id), snapshot::level(&value))
                    else {
                        continue;
                    };
                    match at
                        .get(&variant)
                        .and_then(|i| variants[*i].inventory.as_mut())
                        .and_then(Value::as_object_mut)
                    {
                        Some(inventory) => {
                            inventory.insert(location.to_string(), Value::from(available));
                        }
                        None => levels.push((variant, location, available)),
                    }
                }
                BulkItem::Parent(v) => {
                    let p = snapshot::product(&v)?;
                    let seen = Seen {
                        updated_at: p.updated_at,
                        variants: Vec::new(),
                    };
                    state.seen.insert(p.id, seen);
                    state.newest = Some(state.newest.map_or(p.updated_at, |n| n.max(p.updated_at)));
                    products.push(p);
                }
                BulkItem::Child { parent, value } => {
                    let product_id = i64::try_from(parent.id).unwrap_or_default();
                    let Some(seen) = state.seen.get_mut(&product_id) else {
                        continue;
                    };
                    let mut v = snapshot::variant(
                        &value,
                        product_id,
                        seen.updated_at,
                        seen.variants.len(),
                    )?;
                    if self.levels_as_lines && v.inventory.is_none() {
                        // Its levels follow as lines of their own: none but those.
                        v.inventory = Some(serde_json::json!({}));
                    }
                    seen.variants.push(v.id);
                    at.insert(v.id, variants.len());
                    variants.push(v);
                }
            }
        }
        let (shop, pull) = (self.shop, self.pull);
        let tag = (self.mode == Mode::Full).then_some(pull.id);
        let since = (self.mode != Mode::Changes).then_some(pull.started_at);
        let mut tx = self.catalog.pool().begin().await?;
        let written = store::upsert_products(&mut tx, shop.id, tag, since, &products).await?;
        let variants_written =
            store::upsert_variants(&mut tx, shop.id, tag, &variants, false).await?;
        store::merge_inventory_levels(&mut tx, shop.id, &levels).await?;
        tx.commit().await?;
        state.tally.products += written as i64;
        state.tally.variants += variants_written as i64;
        Ok(())
    }
}
