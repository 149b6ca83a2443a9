//! Pulls through a bulk query export: every product (a full pull, then a sweep of what it did
//! not see), or those a search matches (a large incremental pull).

use std::time::Duration;

use cowans_queue::JobMeta;
use cowans_shopify::{BulkOperation, Client, Gid, ShopifyError};
use cowans_store::catalog::{self as store, PullRow, ShopRow};

use super::{
    Progress, PullError, Tally,
    writer::{Mode, Writer, Written},
};
use crate::Catalog;

/// What a pull reads of each product (its variants apart).
pub(super) const PRODUCT_FIELDS: &str = "id title handle descriptionHtml vendor productType status tags \
  createdAt updatedAt options { name position optionValues { name } }";

/// What a pull reads of each variant.
pub(super) const VARIANT_FIELDS: &str = "id title position sku barcode price compareAtPrice inventoryQuantity \
  selectedOptions { name value } inventoryItem { id measurement { weight { unit value } } }";

/// What an export reads of each variant's inventory levels (lines of their own, each with its
/// variant as parent). Paged reads leave them out: nested in every variant of a page they would
/// multiply its cost.
const LEVEL_FIELDS: &str = "inventoryItem { inventoryLevels { edges { node { location { id } \
  quantities(names: [\"available\"]) { name quantity } } } } }";

/// The bulk export of the products `search` matches (all without one), with the fields the
/// catalog keeps, their variants and the variants' inventory levels.
pub fn export_query(search: Option<&str>) -> String {
    let args = search
        .map(|s| format!("(query: {})", serde_json::Value::from(s)))
        .unwrap_or_default();
    format!(
        "{{ products{args} {{ edges {{ node {{ {PRODUCT_FIELDS} variants {{ edges {{ node {{ {VARIANT_FIELDS} {LEVEL_FIELDS} }} }} }} }} }} }} }}"
    )
}

/// A full pull: the whole catalog, then what it did not see is marked deleted, and incremental
/// pulls start from the newest product it saw.
pub(super) async fn full<'a>(
    catalog: &'a Catalog,
    client: &Client,
    shop: &'a ShopRow,
    pull: &'a PullRow,
    job: &'a JobMeta,
    progress: &mut Progress<'a>,
) -> Result<Tally, PullError> {
    let written = exported(
        catalog,
        client,
        shop,
        pull,
        job,
        &export_query(None),
        Mode::Full,
        progress,
    )
    .await?;
    let mut tally = written.tally;
    tally.deleted = sweep(catalog, shop, pull).await?;
    if let Some(t) = written.newest {
        store::set_incremental_from(catalog.pool(), shop.id, t).await?;
    }
    Ok(tally)
}

/// Runs the bulk export `query` (or reuses the one this pull started before) and writes what
/// it returns, in batches of `catalog.pull_batch`, written as `mode` says.
#[allow(clippy::too_many_arguments)]
pub(super) async fn exported<'a>(
    catalog: &'a Catalog,
    client: &Client,
    shop: &'a ShopRow,
    pull: &'a PullRow,
    job: &'a JobMeta,
    query: &str,
    mode: Mode,
    progress: &mut Progress<'a>,
) -> Result<Written, PullError> {
    let op = export(client, catalog.pool(), pull, job, query, progress).await?;
    let writer = Writer::new(catalog, shop, pull, job, mode, progress).levels_as_lines();
    // An export of nothing has no file.
    if let Some(url) = op.url.clone() {
        writer.report("writing", None).await;
        let batch_size = catalog.settings().pull_batch.max(1);
        let w = &writer;
        let downloaded = client
            .bulk_download_batches(&url, batch_size, move |items| w.write(items))
            .await;
        let lines = match downloaded {
            Ok(stats) => stats.lines as i64,
            // A writing failure stopped the download: it is the one to report.
            Err(e) => return Err(writer.failure().await.unwrap_or_else(|| PullError::of(e))),
        };
        writer.report("writing", Some(lines)).await;
    }
    writer.finish().await
}

/// The finished export of this pull: the one a previous attempt started, if Shopify still has
/// it, or a new one. Waits for it, reporting `exporting` progress.
pub(super) async fn export(
    client: &Client,
    pool: &cowans_queue::PgPool,
    pull: &PullRow,
    job: &JobMeta,
    query: &str,
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
            // Shopify no longer has it (expired): start another.
            Err(ShopifyError::Decode(_)) => None,
            // Anything else (a 5xx, a reset) leaves the export where it is: retry later rather
            // than abandon an export that may be nearly done.
            Err(e) => return Err(PullError::of(e)),
        },
        None => None,
    };
    let mut op = match reusable {
        Some(op) => op,
        None => {
            let op = client
                .bulk_query_start(query)
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
    let mut tx = catalog.pool().begin().await?;
    let deleted = store::sweep_after_full_pull(&mut tx, shop.id, pull.id, pull.started_at).await?;
    tx.commit().await?;
    Ok(deleted as i64)
}
