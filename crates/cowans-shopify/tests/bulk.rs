//! Bulk operations through the client: a 100,000-product export streamed with flat memory
//! (children after their parent), and a bulk mutation from a staged upload whose results map
//! back by line number.

// Test helpers may unwrap: a failure there is a test failure with its location.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use cowans_shopify::{Client, Gid};
use futures::StreamExt;
use serde_json::{Value, json};

use common::{client, sim};

/// Resident memory of this test process now, in KiB (nextest runs each test in its own process).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn a_hundred_thousand_product_bulk_export_streams_with_flat_memory() {
    let sim = sim(100_000, 2).await;
    let client = client(&sim);
    let query = "{ products { edges { node { id title updatedAt variants { edges { node { id sku price } } } } } } }";
    let t0 = Instant::now();
    let op = client.bulk_query_start(query).await.unwrap();
    let op = client
        .bulk_wait(&op.id, Duration::from_millis(100), Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(op.status, "COMPLETED", "{op:?}");
    assert_eq!(op.object_count, "300000");
    let ran = t0.elapsed();
    let before = rss_kib();
    let mut peak = before;
    let t1 = Instant::now();
    let (mut parents, mut children) = (0u64, 0u64);
    let mut seen = std::collections::HashSet::new();
    let mut child_before_parent = 0u64;
    let stats = client
        .bulk_download(op.url.as_deref().unwrap(), |item| match item {
            cowans_shopify::BulkItem::Parent(v) => {
                parents += 1;
                if parents % 5000 == 0 {
                    peak = peak.max(rss_kib());
                }
                seen.insert(v["id"].as_str().unwrap().parse::<Gid>().unwrap().id);
            }
            cowans_shopify::BulkItem::Child { parent, value } => {
                children += 1;
                assert!(value.get("__parentId").is_none() && parent.kind == "Product");
                if !seen.contains(&parent.id) {
                    child_before_parent += 1;
                }
            }
        })
        .await
        .unwrap();
    let download = t1.elapsed();
    let grew_kib = peak.saturating_sub(before);
    println!(
        "bulk export: 100000 products, {} lines, {} bytes; operation {:.2} s, download+parse {:.2} s; RSS {before} KiB before, peak {peak} KiB during (+{grew_kib}); max orphans held {}; longest line {} B",
        stats.lines,
        stats.bytes,
        ran.as_secs_f64(),
        download.as_secs_f64(),
        stats.max_orphans,
        stats.max_line
    );
    assert_eq!((parents, children), (100_000, 200_000));
    assert_eq!(
        child_before_parent, 0,
        "every child is handed out after its parent"
    );
    // Shopify writes children after their parent (not necessarily right after it), so none
    // has to wait; the client would hold one that came early until its parent arrived (see the
    // assembler's unit tests).
    assert_eq!(stats.max_orphans, 0, "children come after their parent");
    // The file is ~25 MB; holding it (or its parsed values) would show here.
    assert!(
        grew_kib < 12 * 1024,
        "peak memory grew {grew_kib} KiB while downloading"
    );
}

#[tokio::test]
async fn a_bulk_mutation_runs_from_a_staged_upload_and_results_map_back_by_line_number() {
    let sim = sim(300, 1).await;
    let client = client(&sim);
    let mut products: Vec<Gid> = Vec::new();
    let mut pages = client.product_pages(None, 250);
    while let Some(page) = pages.next().await {
        products.extend(page.unwrap().into_iter().map(|p| p.id));
    }
    drop(pages);
    assert_eq!(products.len(), 300);
    // Line 7 names a product that does not exist: its userErrors come back on line 7.
    let variables: Vec<Value> = products
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let id = if i == 7 {
                "gid://shopify/Product/1".to_owned()
            } else {
                id.to_string()
            };
            json!({"p": {"id": id, "title": format!("Bulk {i}")}})
        })
        .collect();
    let mutation = "mutation($p: ProductUpdateInput!) { productUpdate(product: $p) { product { id title } userErrors { field message } } }";
    let op = client
        .bulk_mutation_start(mutation, variables)
        .await
        .unwrap();
    let op = client
        .bulk_wait(&op.id, Duration::from_millis(50), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(op.status, "COMPLETED", "{op:?}");
    let mut by_line: Vec<Option<Value>> = vec![None; 300];
    let mut order = Vec::new();
    client
        .bulk_mutation_results(op.url.as_deref().unwrap(), |line, v| {
            order.push(line);
            by_line[line] = Some(v);
        })
        .await
        .unwrap();
    assert!(
        order.windows(2).any(|w| w[0] > w[1]),
        "results came back out of input order"
    );
    for (i, r) in by_line.iter().enumerate() {
        let r = r
            .as_ref()
            .unwrap_or_else(|| panic!("no result for line {i}"));
        let payload = &r["data"]["productUpdate"];
        if i == 7 {
            assert!(
                Client::check_user_errors(payload).is_err(),
                "line 7's error maps back to line 7"
            );
        } else {
            assert_eq!(payload["product"]["title"], format!("Bulk {i}"));
            assert_eq!(payload["product"]["id"], json!(products[i].to_string()));
        }
    }
}
