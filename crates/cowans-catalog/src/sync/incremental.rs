//! Incremental pulls: the products Shopify updated since the newest one seen (less
//! `catalog.incremental_overlap_secs`, for Shopify's search index lag). It counts them first: up
//! to `catalog.incremental_page_max` are read through paginated queries (cheap, no export to
//! wait for), more through a bulk export filtered by the same search. Nothing is marked deleted
//! here (webhooks and the reconciliation see deletions); an older snapshot never overwrites a
//! newer one.

use chrono::SecondsFormat;
use cowans_queue::JobMeta;
use cowans_shopify::{BulkItem, Client, Gid};
use cowans_store::catalog::{self as store, PullRow, ShopRow};
use futures::StreamExt;
use serde_json::Value;

use super::{
    Progress, PullError, Tally,
    export::{self, PRODUCT_FIELDS, VARIANT_FIELDS},
    writer::{Mode, Writer, Written},
};
use crate::Catalog;

/// Variants read with each product of a page; a product with more sends the pull to the bulk
/// export, which has no such limit.
pub(super) const PAGE_VARIANTS: u32 = 25;

/// The search of products updated since `shop`'s newest one seen, less the overlap; `None`
/// (everything) before its first pull.
pub(super) fn search(shop: &ShopRow, overlap_secs: u64) -> Option<String> {
    shop.incremental_from.map(|t| {
        let since =
            t - chrono::Duration::seconds(i64::try_from(overlap_secs).unwrap_or(i64::MAX / 1000));
        format!(
            "updated_at:>='{}'",
            since.to_rfc3339_opts(SecondsFormat::Secs, true)
        )
    })
}

pub(super) async fn run<'a>(
    catalog: &'a Catalog,
    client: &Client,
    shop: &'a ShopRow,
    pull: &'a PullRow,
    job: &'a JobMeta,
    progress: &mut Progress<'a>,
) -> Result<Tally, PullError> {
    let settings = catalog.settings();
    let search = search(shop, settings.incremental_overlap_secs);
    let page_max = settings.incremental_page_max;
    let limit = u32::try_from(page_max.saturating_add(1)).unwrap_or(u32::MAX);
    let (count, exact) = client
        .products_count(search.as_deref(), Some(limit))
        .await
        .map_err(PullError::of)?;
    tracing::debug!(shop = %shop.name, pull = pull.id, ?search, count, exact, "incremental pull");
    let paged = if exact && count <= page_max as u64 {
        paged(
            catalog,
            client,
            shop,
            pull,
            job,
            search.as_deref(),
            progress,
        )
        .await?
    } else {
        None
    };
    let written = match paged {
        Some(w) => w,
        None => {
            let query = export::export_query(search.as_deref());
            export::exported(
                catalog,
                client,
                shop,
                pull,
                job,
                &query,
                Mode::Changes,
                progress,
            )
            .await?
        }
    };
    if let Some(t) = written.newest {
        store::set_incremental_from(catalog.pool(), shop.id, t).await?;
    }
    Ok(written.tally)
}

/// Reads the matching products page by page; `None` if one of them has more variants than a
/// page holds (the caller then exports instead).
async fn paged<'a>(
    catalog: &'a Catalog,
    client: &Client,
    shop: &'a ShopRow,
    pull: &'a PullRow,
    job: &'a JobMeta,
    search: Option<&str>,
    progress: &mut Progress<'a>,
) -> Result<Option<Written>, PullError> {
    let fields = format!(
        "{PRODUCT_FIELDS} variants(first: {PAGE_VARIANTS}) {{ nodes {{ {VARIANT_FIELDS} }} pageInfo {{ hasNextPage }} }}"
    );
    let writer = Writer::new(catalog, shop, pull, job, Mode::Changes, progress);
    let mut pages = client.product_pages_of(&fields, search.map(str::to_owned), 250);
    while let Some(page) = pages.next().await {
        let page = page.map_err(PullError::of)?;
        let mut items = Vec::with_capacity(page.len() * 4);
        for node in page {
            match split(node)? {
                Some(mut parts) => items.append(&mut parts),
                None => return Ok(None),
            }
        }
        if writer.write(items).await.is_err() {
            return Err(writer.failure().await.unwrap_or(PullError::Cancelled));
        }
    }
    writer.finish().await.map(Some)
}

/// A product node of a page as the export would give it: the product, then each variant as
/// its child. `None` if the product has more variants than the page read.
pub(super) fn split(mut node: Value) -> Result<Option<Vec<BulkItem>>, PullError> {
    let variants = node
        .as_object_mut()
        .and_then(|o| o.remove("variants"))
        .unwrap_or(Value::Null);
    if variants["pageInfo"]["hasNextPage"].as_bool() == Some(true) {
        return Ok(None);
    }
    let parent: Gid = node["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            PullError::Shopify(cowans_shopify::ShopifyError::Decode(format!(
                "a product without an id: {node}"
            )))
        })?;
    let mut items = vec![BulkItem::Parent(node)];
    for v in variants["nodes"].as_array().into_iter().flatten() {
        items.push(BulkItem::Child {
            parent: parent.clone(),
            value: v.clone(),
        });
    }
    Ok(Some(items))
}
