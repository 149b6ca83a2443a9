//! The push's large-set path: above `catalog.push_bulk_min` approved changes, a push reads the
//! shop's current state through one bulk query export (not `nodes()`, whose points would take
//! the restore rate minutes per thousand products) and writes through bulk mutations (a staged
//! upload of one line per product, results mapped back by line), which do not spend the shop's
//! bucket per line. The three-way check and the recording are the aliased path's.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use cowans_shopify::{BulkItem, Client, ShopifyError};
use serde_json::{Value, json};

/// How long a push waits for a bulk operation of its own (or one still running from a push
/// that died).
const BULK_TIMEOUT: Duration = Duration::from_secs(3600);

/// What Shopify has now of each of `gids`, from a bulk export of the products with ids from
/// `lo` to `hi` (a push's batch covers such a range; variants carry `product { id }` and their
/// levels as `inventoryItem.inventoryLevels.nodes`, like the aliased read's).
pub(super) async fn export_nodes(
    client: &Client,
    gids: &HashSet<String>,
    (lo, hi): (i64, i64),
) -> Result<HashMap<String, Value>, ShopifyError> {
    let search = format!("id:>={lo} id:<={hi}");
    let op = client
        .bulk_query_start(&crate::sync::export_query(Some(&search)))
        .await?;
    let op = client
        .bulk_wait(&op.id, Duration::from_millis(250), BULK_TIMEOUT)
        .await?;
    if op.status != "COMPLETED" {
        return Err(ShopifyError::Decode(format!(
            "the bulk export for the push ended {}",
            op.status
        )));
    }
    let mut out = HashMap::with_capacity(gids.len());
    let Some(url) = op.url else {
        return Ok(out);
    };
    client
        .bulk_download(&url, |item| match item {
            BulkItem::Parent(v) => {
                if let Some(id) = v["id"].as_str().filter(|id| gids.contains(*id)) {
                    out.insert(id.to_owned(), v);
                }
            }
            // A variant's inventory level: into its node, in the shape of the aliased read.
            BulkItem::Child { parent, value } if parent.kind == "ProductVariant" => {
                if let Some(variant) = out.get_mut(&parent.to_string()) {
                    let item = &mut variant["inventoryItem"];
                    if !item.is_object() {
                        *item = json!({});
                    }
                    let levels = &mut item["inventoryLevels"]["nodes"];
                    if !levels.is_array() {
                        *levels = json!([]);
                    }
                    if let Some(list) = levels.as_array_mut() {
                        list.push(value);
                    }
                }
            }
            BulkItem::Child { parent, mut value } => {
                if let Some(id) = value["id"]
                    .as_str()
                    .filter(|id| gids.contains(*id))
                    .map(str::to_owned)
                {
                    value["product"] = json!({ "id": parent.to_string() });
                    out.insert(id, value);
                }
            }
        })
        .await?;
    Ok(out)
}

/// Runs `mutation` (root field `field`) once per line of `inputs` as a bulk mutation; returns
/// each line's payload in input order (`null` for a line Shopify did not answer). Waits first
/// for a bulk mutation still running (one a dead push started).
pub(super) async fn mutate(
    client: &Client,
    mutation: &str,
    field: &str,
    inputs: Vec<Value>,
) -> Result<Vec<Value>, ShopifyError> {
    if inputs.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(running) = client.bulk_current_mutation().await?
        && !running.is_finished()
    {
        client
            .bulk_wait(&running.id, Duration::from_millis(500), BULK_TIMEOUT)
            .await?;
    }
    let n = inputs.len();
    let op = client.bulk_mutation_start(mutation, inputs).await?;
    let op = client
        .bulk_wait(&op.id, Duration::from_millis(250), BULK_TIMEOUT)
        .await?;
    if op.status != "COMPLETED" {
        return Err(ShopifyError::Decode(format!(
            "the bulk mutation ({field}) ended {}{}",
            op.status,
            op.error_code.map(|c| format!(" ({c})")).unwrap_or_default()
        )));
    }
    let mut out = vec![Value::Null; n];
    if let Some(url) = op.url {
        client
            .bulk_mutation_results(&url, |line, v| {
                if let Some(slot) = out.get_mut(line) {
                    *slot = v["data"][field].clone();
                }
            })
            .await?;
    }
    Ok(out)
}
