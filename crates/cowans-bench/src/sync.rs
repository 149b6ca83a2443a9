//! The catalog workloads, end to end with real processes: a `cowans-shopsim` seeded with
//! `--products` × `--variants`, one `cowans-worker` running the catalog's queue, and the
//! catalog's front door in this process to register the shop and start pulls.
//!
//! - `sync-pull`: a full pull timed from its start to its end, with the worker's resident
//!   memory growth over it; also timed, in the same run, a bare download of the same export by
//!   the client (no database), the floor the pull's writing adds to.
//! - `sync-incremental`: after a full pull, `--changed` products edited in the shop, then an
//!   incremental pull timed.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;
use cowans_catalog::{Catalog, CatalogSettings, PullKind, PullRow, ShopRequest};
use cowans_core::Actor;
use secrecy::SecretString;

use crate::{Args, Measurement, Workload, bench_db::BenchDb, procs::Proc};

pub const TOKEN: &str = "shpat_bench";

pub async fn run(args: &Args, db: &BenchDb) -> anyhow::Result<Vec<Measurement>> {
    let pool = db.pool(8).await?;
    cowans_store::migrate(&pool, &[&cowans_store::catalog::MIGRATOR], &[]).await?;
    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let settings = CatalogSettings {
        secret_keys: [("bench".to_owned(), SecretString::from(key.clone()))].into(),
        incremental_schedule: String::new(),
        // The change workloads start their pushes themselves.
        push_on_approve: false,
        ..CatalogSettings::default()
    };
    let catalog = Catalog::new(cowans_queue::FrontDoor::builder(pool).build(), &settings)?;
    // The webhook receiver needs a shop, not its catalog.
    let products = if args.workload == Workload::Webhooks {
        10
    } else {
        args.products
    };
    let t = Instant::now();
    let sim = Proc::spawn(
        "cowans-shopsim",
        &[
            "--listen",
            "127.0.0.1:0",
            "--products",
            &products.to_string(),
            "--variants",
            &args.variants.to_string(),
            "--token",
            TOKEN,
        ],
        &[],
        Duration::from_secs(600),
    )?;
    let sim_url = sim
        .ready_field("control")?
        .trim_end_matches("/__sim")
        .to_owned();
    eprintln!(
        "simulator seeded with {} products × {} in {:.1}s",
        products,
        args.variants,
        t.elapsed().as_secs_f64()
    );
    let actor = Actor::system("bench");
    let shop = catalog
        .add_shop(
            &actor,
            ShopRequest {
                name: "bench".to_owned(),
                domain: "bench.myshopify.com".to_owned(),
                api_version: "2026-10".to_owned(),
                admin_url: Some(sim_url.clone()),
                access_token: SecretString::from(TOKEN),
                webhook_secret: Some(SecretString::from(crate::catalog_api::WEBHOOK_SECRET)),
                incremental_schedule: Some(String::new()),
            },
        )
        .await?;
    if args.workload == Workload::Webhooks {
        let db_url = db.url()?;
        let m = crate::catalog_api::webhooks(args, &catalog, &db_url, &key, &shop.domain).await;
        return Ok(vec![m?]);
    }
    let db_url = db.url()?;
    let spawn_worker = || {
        Proc::spawn(
            "cowans-worker",
            &[
                "run",
                "--queues",
                "catalog",
                "--concurrency",
                "4",
                "--ops-listen",
                "127.0.0.1:0",
            ],
            &[
                ("COWANS__DATABASE__URL", db_url.clone()),
                ("COWANS__APPS", "catalog".to_owned()),
                ("COWANS__CATALOG__SECRET_KEYS__BENCH", key.clone()),
                ("COWANS__CATALOG__INCREMENTAL_SCHEDULE", String::new()),
                // `sync-push --mode aliased` measures the aliased path at any size.
                (
                    "COWANS__CATALOG__PUSH_BULK_MIN",
                    if args.mode == "aliased" {
                        u32::MAX.to_string()
                    } else {
                        "500".to_owned()
                    },
                ),
            ],
            Duration::from_secs(60),
        )
    };
    let worker = spawn_worker()?;
    let full = timed_pull(&catalog, &actor, shop.id, PullKind::Full, &worker).await?;
    let (products, variants) = catalog.counts(shop.id).await?;
    let expected = (args.products as i64, (args.products * args.variants) as i64);
    if (products, variants) != expected {
        bail!("the catalog holds {products} products and {variants} variants, not {expected:?}");
    }
    match args.workload {
        Workload::SyncPull => {
            let download = bare_download(&catalog, shop.id).await?;
            Ok(vec![Measurement::custom(
                "sync-pull",
                full.secs,
                format!(
                    "products={} variants={} secs={:.1} products_per_s={:.0} rss_growth_mb={:.1} worker_rss_mb={:.1} export_secs={:.1} bare_download_secs={:.1}",
                    args.products,
                    args.variants,
                    full.secs.as_secs_f64(),
                    args.products as f64 / full.secs.as_secs_f64(),
                    full.rss_growth_mib,
                    full.rss_max_mib,
                    full.export_secs,
                    download.as_secs_f64(),
                ),
            )])
        }
        Workload::SyncIncremental => {
            let edited = edit(&sim_url, args.changed).await?;
            let inc = timed_pull(&catalog, &actor, shop.id, PullKind::Incremental, &worker).await?;
            if inc.pull.products < edited as i64 {
                bail!(
                    "the incremental pull wrote {} products, fewer than the {edited} edited",
                    inc.pull.products
                );
            }
            Ok(vec![Measurement::custom(
                "sync-incremental",
                inc.secs,
                format!(
                    "products={} changed={edited} secs={:.2} written={} rss_growth_mb={:.1}",
                    args.products,
                    inc.secs.as_secs_f64(),
                    inc.pull.products,
                    inc.rss_growth_mib,
                ),
            )])
        }
        Workload::BulkEdit | Workload::ApproveAll | Workload::SyncPush => {
            let setup = crate::push::Setup {
                catalog: &catalog,
                actor: &actor,
                shop_id: shop.id,
                sim_url: &sim_url,
                worker: &worker,
                spawn_worker: &spawn_worker,
            };
            crate::push::run(args, &setup).await
        }
        Workload::Export => {
            drop(worker);
            let db_url = db.url()?;
            Ok(vec![
                crate::catalog_api::export(args, &catalog, &db_url, &key, &shop.name).await?,
            ])
        }
        other => bail!("{} is not a catalog workload", crate::name_of(other)),
    }
}

struct Timed {
    pull: PullRow,
    secs: Duration,
    /// Until the first line was written (Shopify preparing the export).
    export_secs: f64,
    rss_growth_mib: f64,
    rss_max_mib: f64,
}

/// Starts a pull and polls it (and the worker's memory) every 100 ms until it ends.
async fn timed_pull(
    catalog: &Catalog,
    actor: &Actor,
    shop: i64,
    kind: PullKind,
    worker: &Proc,
) -> anyhow::Result<Timed> {
    let rss0 = worker.rss_mib();
    let mut rss_max = rss0;
    let t = Instant::now();
    let mut export_secs = None;
    let pull = catalog.start_pull(actor, shop, kind).await?;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        rss_max = rss_max.max(worker.rss_mib());
        let p = catalog.pull(pull.id).await?;
        if export_secs.is_none() && p.lines > 0 {
            export_secs = Some(t.elapsed().as_secs_f64());
        }
        if p.state != "running" {
            if p.state != "completed" {
                bail!(
                    "the {} pull ended {}: {:?}",
                    kind.as_str(),
                    p.state,
                    p.error
                );
            }
            let secs = p
                .finished_at
                .and_then(|f| (f - p.started_at).to_std().ok())
                .unwrap_or_else(|| t.elapsed());
            return Ok(Timed {
                pull: p,
                secs,
                export_secs: export_secs.unwrap_or(0.0),
                rss_growth_mib: rss_max - rss0,
                rss_max_mib: rss_max,
            });
        }
        if t.elapsed() > Duration::from_secs(1800) {
            bail!("the {} pull did not end within 30 minutes", kind.as_str());
        }
    }
}

/// The same export downloaded and parsed by the client alone, nothing written.
async fn bare_download(catalog: &Catalog, shop: i64) -> anyhow::Result<Duration> {
    let client = catalog
        .client(&catalog.shop(shop).await?)
        .map_err(anyhow::Error::msg)?;
    let t = Instant::now();
    let op = client
        .bulk_query_start(&cowans_catalog::export_query(None))
        .await?;
    let op = client
        .bulk_wait(
            &op.id,
            Duration::from_millis(200),
            Duration::from_secs(1200),
        )
        .await?;
    let url = op.url.context("the export has no file")?;
    let mut lines = 0u64;
    client
        .bulk_download_batches(&url, 500, |items| {
            lines += items.len() as u64;
            async { Ok(()) }
        })
        .await?;
    Ok(t.elapsed())
}

/// Edits `n` products in the simulated shop (as a merchant would); returns how many.
async fn edit(sim: &str, n: usize) -> anyhow::Result<usize> {
    let http = reqwest::Client::new();
    let ids: Vec<u64> = {
        let mut ids = Vec::new();
        let mut after = None::<String>;
        // The product ids, from the GraphQL API (cheap: ids only).
        while ids.len() < n {
            let query = "query($after: String) { products(first: 250, after: $after) { nodes { id } pageInfo { hasNextPage endCursor } } }";
            let body = serde_json::json!({ "query": query, "variables": { "after": after } });
            let v: serde_json::Value = http
                .post(format!("{sim}/admin/api/2026-10/graphql.json"))
                .header("X-Shopify-Access-Token", TOKEN)
                .json(&body)
                .send()
                .await?
                .json()
                .await?;
            let page = &v["data"]["products"];
            for node in page["nodes"].as_array().context("products")? {
                let gid: cowans_shopify::Gid = node["id"].as_str().context("id")?.parse()?;
                ids.push(gid.id);
            }
            if page["pageInfo"]["hasNextPage"] != true {
                break;
            }
            after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
        ids.truncate(n);
        ids
    };
    for id in &ids {
        let r = http
            .post(format!("{sim}/__sim/products/{id}/edit"))
            .json(&serde_json::json!({ "title": "Edited for the benchmark" }))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("editing product {id}: {}", r.status());
        }
    }
    Ok(ids.len())
}
