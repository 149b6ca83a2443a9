//! Reconciliation (`catalog.reconcile`, daily per shop and on demand): compares every product's
//! id and `updatedAt` in Shopify (a cheap bulk export of just those) with the catalog, and
//! repairs what webhooks and incremental pulls missed — products newer in Shopify or missing
//! here are read again (a few by id, many through a full pull), products Shopify no longer has
//! are marked deleted.

use std::{collections::HashMap, sync::Mutex};

use chrono::{DateTime, Utc};
use cowans_core::Actor;
use cowans_queue::JobMeta;
use cowans_shopify::{BulkItem, Client, Gid, ShopifyError};
use cowans_store::catalog::{self as store, PullRow, ShopRow};
use serde_json::{Value, json};

use super::{
    Progress, PullError, Tally,
    export::{PRODUCT_FIELDS, VARIANT_FIELDS, export},
    incremental::{PAGE_VARIANTS, split},
    writer::{Mode, Writer},
};
use crate::{Catalog, PullKind};

/// The export of every product's id and `updatedAt`.
const IDS_EXPORT: &str = "{ products { edges { node { id updatedAt } } } }";
/// Products read by id per request (their requested cost stays under the 1000-point cap).
const NODES_PER_REQUEST: usize = 10;

pub(super) async fn run<'a>(
    catalog: &'a Catalog,
    client: &Client,
    shop: &'a ShopRow,
    pull: &'a PullRow,
    job: &'a JobMeta,
    progress: &mut Progress<'a>,
) -> Result<Tally, PullError> {
    let op = export(client, catalog.pool(), pull, job, IDS_EXPORT, progress).await?;
    let shopify: Mutex<HashMap<i64, DateTime<Utc>>> = Mutex::default();
    let mut lines = 0i64;
    if let Some(url) = &op.url {
        let collect = |items: Vec<BulkItem>| {
            let mut map = shopify.lock().unwrap_or_else(|p| p.into_inner());
            let mut bad = None;
            for item in items {
                if let BulkItem::Parent(v) = item {
                    match (
                        crate::snapshot::gid_id(&v, "id"),
                        v["updatedAt"].as_str().map(DateTime::parse_from_rfc3339),
                    ) {
                        (Ok(id), Some(Ok(at))) => {
                            map.insert(id, at.with_timezone(&Utc));
                        }
                        _ => bad = Some(format!("an export line without an id or updatedAt: {v}")),
                    }
                }
            }
            async move { bad.map_or(Ok(()), |b| Err(ShopifyError::Decode(b))) }
        };
        lines = client
            .bulk_download_batches(url, 5000, collect)
            .await
            .map_err(PullError::of)?
            .lines as i64;
    }
    let shopify = shopify.into_inner().unwrap_or_else(|p| p.into_inner());
    // Compare.
    let local = store::product_versions(catalog.pool(), shop.id).await?;
    let mut stale: Vec<i64> = Vec::new();
    let mut gone: Vec<i64> = Vec::new();
    let mut known: HashMap<i64, ()> = HashMap::with_capacity(local.len());
    for (id, updated_at, deleted) in &local {
        known.insert(*id, ());
        match shopify.get(id) {
            Some(theirs) if *deleted || theirs > updated_at => stale.push(*id),
            Some(_) => {}
            None if !*deleted => gone.push(*id),
            None => {}
        }
    }
    stale.extend(shopify.keys().filter(|id| !known.contains_key(id)));
    tracing::info!(shop = %shop.name, pull = pull.id, shopify = shopify.len(), local = local.len(), stale = stale.len(), gone = gone.len(), "reconciliation compared");
    let mut tally = Tally {
        lines,
        ..Tally::default()
    };
    tally.deleted =
        store::mark_products_deleted(catalog.pool(), shop.id, &gone, Some(pull.started_at)).await?
            as i64;
    if stale.is_empty() {
        return Ok(tally);
    }
    if stale.len() > catalog.settings().incremental_page_max {
        // Many differences: a full pull repairs them all (and finds deletions again).
        let started = catalog
            .start_pull(&Actor::system("reconcile"), shop.id, PullKind::Full)
            .await;
        match started {
            Ok(p) => {
                tracing::info!(shop = %shop.name, pull = p.id, stale = stale.len(), "reconciliation started a full pull")
            }
            Err(cowans_store::StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        return Ok(tally);
    }
    let written = read_by_id(catalog, client, shop, pull, job, &stale, progress).await?;
    tally.products = written.products;
    tally.variants = written.variants;
    Ok(tally)
}

/// Reads products by id (`nodes`) and writes them.
async fn read_by_id<'a>(
    catalog: &'a Catalog,
    client: &Client,
    shop: &'a ShopRow,
    pull: &'a PullRow,
    job: &'a JobMeta,
    ids: &[i64],
    progress: &mut Progress<'a>,
) -> Result<Tally, PullError> {
    let query = format!(
        "query($ids: [ID!]!) {{ nodes(ids: $ids) {{ ... on Product {{ {PRODUCT_FIELDS} \
         variants(first: {PAGE_VARIANTS}) {{ nodes {{ {VARIANT_FIELDS} }} pageInfo {{ hasNextPage }} }} }} }} }}"
    );
    let writer = Writer::new(catalog, shop, pull, job, Mode::Repair, progress);
    for chunk in ids.chunks(NODES_PER_REQUEST) {
        let gids: Vec<String> = chunk
            .iter()
            .map(|id| Gid::new("Product", *id as u64).to_string())
            .collect();
        let answer = client
            .query::<Value>(&query, json!({ "ids": gids }))
            .await
            .map_err(PullError::of)?;
        let mut items = Vec::new();
        for node in answer.data["nodes"].as_array().into_iter().flatten() {
            // Deleted meanwhile: the next reconciliation marks it.
            if node.is_null() {
                continue;
            }
            match split(node.clone())? {
                Some(mut parts) => items.append(&mut parts),
                // More variants than a request reads: left for the next full pull.
                None => {
                    tracing::warn!(shop = %shop.name, product = %node["id"], "a product with more variants than reconciliation reads by id");
                }
            }
        }
        if writer.write(items).await.is_err() {
            return Err(writer.failure().await.unwrap_or(PullError::Cancelled));
        }
    }
    Ok(writer.finish().await?.tally)
}
