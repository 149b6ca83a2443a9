//! The catalog's HTTP workloads against a real `cowans-api` process (its memory measured):
//!
//! - `webhooks`: `--deliveries` signed `products/update` deliveries (3 variants each, unique
//!   webhook ids) posted by `--concurrency` senders to `/webhooks/shopify`; deliveries/s, the
//!   answer's p50/p99, and a check that every delivery became exactly one queued job.
//! - `export` (after a full pull of `--products` × `--variants`, see `sync`): the CSV export of
//!   the whole catalog downloaded over HTTP; seconds, rows, and the API's RSS growth.

use std::time::{Duration, Instant};

use anyhow::bail;
use cowans_catalog::Catalog;
use cowans_core::{Actor, JobState, QueueName, Role};
use futures::StreamExt;
use serde_json::json;

use crate::{Args, Measurement, percentiles, procs::Proc};

/// The shop's webhook secret in these workloads.
pub const WEBHOOK_SECRET: &str = "whsec_bench";

/// A `cowans-api` process serving the catalog over `db_url`, and its base URL.
pub fn spawn_api(db_url: &str, key: &str) -> anyhow::Result<(Proc, String)> {
    let api = Proc::spawn(
        "cowans-api",
        &["serve", "--listen", "127.0.0.1:0"],
        &[
            ("COWANS__DATABASE__URL", db_url.to_owned()),
            ("COWANS__APPS", "catalog".to_owned()),
            ("COWANS__CATALOG__SECRET_KEYS__BENCH", key.to_owned()),
            ("COWANS__CATALOG__INCREMENTAL_SCHEDULE", String::new()),
            ("COWANS__CATALOG__RECONCILE_SCHEDULE", String::new()),
        ],
        Duration::from_secs(60),
    )?;
    let base = api.base_url()?;
    Ok((api, base))
}

/// A delivery of `products/update` for product `id`.
fn delivery(id: u64, n: usize) -> Vec<u8> {
    let variants: Vec<_> = (0..3u64)
        .map(|v| {
            json!({
                "id": id * 10 + v, "product_id": id, "title": format!("Size {v}"),
                "price": "19.90", "sku": format!("SKU-{id}-{v}"), "position": v + 1,
                "inventory_quantity": 5, "compare_at_price": null, "barcode": null,
                "option1": format!("Size {v}"), "option2": null, "option3": null,
                "grams": 200, "weight": 0.2, "weight_unit": "kg", "inventory_item_id": id * 100 + v,
                "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-11-01T00:00:00Z",
                "admin_graphql_api_id": format!("gid://shopify/ProductVariant/{}", id * 10 + v),
            })
        })
        .collect();
    serde_json::to_vec(&json!({
        "id": id, "title": format!("Product {id} edit {n}"), "handle": format!("product-{id}"),
        "body_html": "<p>Soft cotton tee, machine washable.</p>", "vendor": "Acme",
        "product_type": "Shirt", "status": "active", "tags": "summer, cotton",
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": format!("2026-11-30T00:00:{:02}Z", n % 60),
        "admin_graphql_api_id": format!("gid://shopify/Product/{id}"),
        "options": [{"name": "Size", "position": 1, "values": ["Size 0", "Size 1", "Size 2"]}],
        "variants": variants,
    }))
    .unwrap_or_default()
}

pub async fn webhooks(
    args: &Args,
    catalog: &Catalog,
    db_url: &str,
    key: &str,
    domain: &str,
) -> anyhow::Result<Measurement> {
    let (api, base) = spawn_api(db_url, key)?;
    let url = format!("{base}/webhooks/shopify");
    let rss0 = api.rss_mib();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    // Warm the connections and the secret cache (not counted).
    let send = |n: usize| {
        let body = delivery(1_000_000 + (n % 5000) as u64, n);
        let hmac = cowans_shopify::webhook::sign(WEBHOOK_SECRET.as_bytes(), &body);
        http.post(&url)
            .header("X-Shopify-Hmac-Sha256", hmac)
            .header("X-Shopify-Shop-Domain", domain)
            .header("X-Shopify-Topic", "products/update")
            .header("X-Shopify-Webhook-Id", format!("bench-{n}"))
            .header("X-Shopify-API-Version", "2026-10")
            .header("content-type", "application/json")
            .body(body)
    };
    for n in 0..args.concurrency {
        let r = send(usize::MAX - n).send().await?;
        if !r.status().is_success() {
            bail!(
                "a warm-up delivery was refused: {} {}",
                r.status(),
                r.text().await?
            );
        }
    }
    let t = Instant::now();
    let deliveries = args.deliveries;
    let results: Vec<anyhow::Result<u64>> = futures::stream::iter(0..deliveries)
        .map(|n| {
            let req = send(n);
            async move {
                let t = Instant::now();
                let r = req.send().await?;
                let us = t.elapsed().as_micros() as u64;
                if !r.status().is_success() {
                    bail!("delivery {n} refused: {} {}", r.status(), r.text().await?);
                }
                Ok(us)
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let elapsed = t.elapsed();
    let rss = api.rss_mib();
    // The server's own view: mean time in the handler (the histogram's sum over its count).
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let series = |name: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(name) && l.contains("route=\"/webhooks/shopify\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let server_ms = 1000.0 * series("cowans_api_request_duration_seconds_sum")
        / series("cowans_api_request_duration_seconds_count").max(1.0);
    let waits: Vec<u64> = results.into_iter().collect::<anyhow::Result<_>>()?;
    let queue = QueueName::new(cowans_catalog::webhooks::WEBHOOK_QUEUE.to_owned())?;
    let queued: i64 = catalog
        .front()
        .count_by_state(&queue)
        .await?
        .into_iter()
        .filter(|(s, _)| *s == JobState::Available)
        .map(|(_, n)| n)
        .sum();
    let expected = (deliveries + args.concurrency) as i64;
    if queued != expected {
        bail!("{queued} webhook jobs queued for {expected} deliveries");
    }
    let (p50, p99) = percentiles(waits);
    Ok(Measurement::custom(
        "webhooks",
        elapsed,
        format!(
            "deliveries={deliveries} concurrency={} secs={:.2} deliveries_per_s={:.0} p50_ms={p50:.2} p99_ms={p99:.2} server_mean_ms={server_ms:.2} jobs_queued={queued} rss_growth_mb={:.1}",
            args.concurrency,
            elapsed.as_secs_f64(),
            deliveries as f64 / elapsed.as_secs_f64(),
            rss - rss0,
        ),
    ))
}

/// Downloads the whole catalog of `shop` as CSV from a `cowans-api` process.
pub async fn export(
    args: &Args,
    catalog: &Catalog,
    db_url: &str,
    key: &str,
    shop: &str,
) -> anyhow::Result<Measurement> {
    let (api, base) = spawn_api(db_url, key)?;
    let (token, _) = catalog
        .front()
        .create_api_key(&Actor::system("bench"), "bench-viewer", Role::Viewer)
        .await?;
    let http = reqwest::Client::new();
    let rss0 = api.rss_mib();
    let mut rss_max = rss0;
    let t = Instant::now();
    let mut r = http
        .get(format!(
            "{base}/api/v1/shops/{shop}/products/export?format=csv"
        ))
        .bearer_auth(&token)
        .send()
        .await?
        .error_for_status()?;
    let (mut bytes, mut rows) = (0u64, 0u64);
    let mut sampled = Instant::now();
    while let Some(chunk) = r.chunk().await? {
        bytes += chunk.len() as u64;
        rows += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        if sampled.elapsed() > Duration::from_millis(100) {
            rss_max = rss_max.max(api.rss_mib());
            sampled = Instant::now();
        }
    }
    let elapsed = t.elapsed();
    rss_max = rss_max.max(api.rss_mib());
    // Rows: one per variant plus the header (a quoted newline inside a field would count too;
    // the simulator's products have none).
    let expected = (args.products * args.variants) as u64 + 1;
    if rows != expected {
        bail!("the export had {rows} lines, not {expected}");
    }
    Ok(Measurement::custom(
        "export",
        elapsed,
        format!(
            "products={} variants={} format=csv secs={:.2} rows_per_s={:.0} mb={:.1} rss_growth_mb={:.1} api_rss_mb={:.1}",
            args.products,
            args.variants,
            elapsed.as_secs_f64(),
            (rows - 1) as f64 / elapsed.as_secs_f64(),
            bytes as f64 / 1_048_576.0,
            rss_max - rss0,
            rss_max,
        ),
    ))
}
