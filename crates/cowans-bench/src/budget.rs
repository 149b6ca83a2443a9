//! `shop-budget`: `--processes` processes, each with `--concurrency` callers, hammer one
//! simulated Standard-plan shop (restore 100 points/s, bucket 2,000) with product reads for
//! `--seconds`, through the catalog's Shopify client — the client every worker process uses.
//! Run twice in one invocation, each against a fresh bucket of the shop (one access token
//! each): first with a bucket per process (how each process paced before the fleet bucket,
//! the baseline), then with the shop's one bucket in Postgres. Figures from the simulator's
//! request log: the share of answers that were THROTTLED, and how much of the restore rate
//! was used (points charged beyond the initial bucket, over restore rate × duration).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;
use cowans_catalog::{Catalog, CatalogSettings, ShopRequest};
use cowans_core::Actor;
use cowans_shopify::{Client, ClientConfig};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::{Args, Measurement, bench_db::BenchDb, procs::Proc};

const LOCAL_TOKEN: &str = "shpat_bench_local";
const FLEET_TOKEN: &str = "shpat_bench_fleet";
/// Costs 52 requested points; the simulator charges what it returns.
const QUERY: &str = "query { products(first: 50) { nodes { id title } } }";

fn settings(key: &str) -> CatalogSettings {
    CatalogSettings {
        secret_keys: [("bench".to_owned(), SecretString::from(key.to_owned()))].into(),
        incremental_schedule: String::new(),
        reconcile_schedule: String::new(),
        ..CatalogSettings::default()
    }
}

pub async fn run(args: &Args, db: &BenchDb) -> anyhow::Result<Vec<Measurement>> {
    let pool = db.pool(4).await?;
    cowans_store::migrate(&pool, &[&cowans_store::catalog::MIGRATOR], &[]).await?;
    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let catalog = Catalog::new(
        cowans_queue::FrontDoor::builder(pool).build(),
        &settings(&key),
    )?;
    let sim = Proc::spawn(
        "cowans-shopsim",
        &[
            "--listen",
            "127.0.0.1:0",
            "--products",
            "100",
            "--variants",
            "1",
            "--plan",
            "standard",
            "--token",
            LOCAL_TOKEN,
            "--token",
            FLEET_TOKEN,
        ],
        &[],
        Duration::from_secs(60),
    )?;
    let sim_url = sim
        .ready_field("control")?
        .trim_end_matches("/__sim")
        .to_owned();
    let shop = catalog
        .add_shop(
            &Actor::system("bench"),
            ShopRequest {
                name: "bench".to_owned(),
                domain: "bench.myshopify.com".to_owned(),
                api_version: "2026-10".to_owned(),
                admin_url: Some(sim_url.clone()),
                access_token: SecretString::from(FLEET_TOKEN),
                webhook_secret: None,
                incremental_schedule: Some(String::new()),
            },
        )
        .await?;
    let url = db.url()?;
    let mut results = Vec::new();
    for (name, local) in [("per-process", true), ("fleet", false)] {
        let http = reqwest::Client::new();
        http.delete(format!("{sim_url}/__sim/requests"))
            .send()
            .await?
            .error_for_status()?;
        let t = Instant::now();
        let mut children = Vec::new();
        for _ in 0..args.processes {
            let mut child_args = vec![
                "shop-budget-client".to_owned(),
                "--child-db".to_owned(),
                url.clone(),
                "--child-shop".to_owned(),
                shop.id.to_string(),
                "--child-sim".to_owned(),
                sim_url.clone(),
                "--seconds".to_owned(),
                args.seconds.to_string(),
                "--concurrency".to_owned(),
                args.concurrency.to_string(),
            ];
            if local {
                child_args.push("--local-bucket".to_owned());
            }
            let child_args: Vec<&str> = child_args.iter().map(String::as_str).collect();
            children.push(Proc::spawn(
                "cowans-bench",
                &child_args,
                &[("COWANS_BENCH_KEY", key.clone())],
                Duration::from_secs(60),
            )?);
        }
        for mut c in children {
            let status = tokio::task::spawn_blocking(move || c.child.wait()).await??;
            if !status.success() {
                bail!("a shop-budget client failed: {status}");
            }
        }
        let elapsed = t.elapsed();
        let log: Vec<Value> = http
            .get(format!("{sim_url}/__sim/requests"))
            .send()
            .await?
            .json()
            .await?;
        let bucket: Value = http
            .get(format!(
                "{sim_url}/__sim/bucket?token={}",
                if local { LOCAL_TOKEN } else { FLEET_TOKEN }
            ))
            .send()
            .await?
            .json()
            .await?;
        let (max, restore) = (
            bucket["maximum_available"]
                .as_f64()
                .context("maximum_available")?,
            bucket["restore_rate"].as_f64().context("restore_rate")?,
        );
        let total = log.len();
        let throttled = log.iter().filter(|r| r["outcome"] == "throttled").count();
        let ok: Vec<&Value> = log.iter().filter(|r| r["outcome"] == "ok").collect();
        let spent: f64 = ok.iter().filter_map(|r| r["actual_cost"].as_f64()).sum();
        let times: Vec<chrono::DateTime<chrono::Utc>> = log
            .iter()
            .filter_map(|r| r["at"].as_str()?.parse().ok())
            .collect();
        let window = match (times.iter().min(), times.iter().max()) {
            (Some(a), Some(b)) => (*b - *a).to_std().unwrap_or_default().as_secs_f64(),
            _ => 0.0,
        };
        if total == 0 || window <= 0.0 {
            bail!("the {name} run made no requests");
        }
        let use_of_restore = (spent - max).max(0.0) / (restore * window);
        results.push(Measurement::custom(
            "shop-budget",
            elapsed,
            format!(
                "bucket={name} processes={} callers={} secs={:.1} requests={total} ok={} throttled={throttled} throttled_pct={:.2} points={spent:.0} restore_use_pct={:.1} rss_growth_mb=0",
                args.processes,
                args.processes * args.concurrency,
                window,
                ok.len(),
                100.0 * throttled as f64 / total as f64,
                100.0 * use_of_restore,
            ),
        ));
    }
    Ok(results)
}

/// One hammering process (`shop-budget-client`, started by `shop-budget`): prints a ready line,
/// then reads products as fast as its bucket lets it for `--seconds`.
pub async fn client(args: &Args) -> anyhow::Result<()> {
    let seconds = Duration::from_secs(args.seconds);
    let client = if args.local_bucket {
        Client::new(ClientConfig::new(
            args.child_sim.clone().context("--child-sim")?,
            "2026-10",
            LOCAL_TOKEN,
        ))?
    } else {
        let key = std::env::var("COWANS_BENCH_KEY").context("COWANS_BENCH_KEY")?;
        let pool = cowans_store::pool_options()
            .max_connections(args.concurrency as u32 + 1)
            .connect(args.child_db.as_deref().context("--child-db")?)
            .await?;
        let catalog = Catalog::new(
            cowans_queue::FrontDoor::builder(pool).build(),
            &settings(&key),
        )?;
        let shop = catalog
            .shop(args.child_shop.context("--child-shop")?)
            .await?;
        catalog.client(&shop).map_err(anyhow::Error::msg)?
    };
    println!("ready");
    let t = Instant::now();
    let mut callers = Vec::new();
    for _ in 0..args.concurrency {
        let client = client.clone();
        callers.push(tokio::spawn(async move {
            while t.elapsed() < seconds {
                if let Err(e) = client.query::<Value>(QUERY, json!({})).await {
                    eprintln!("shop-budget-client: {e}");
                }
            }
        }));
    }
    for c in callers {
        c.await?;
    }
    Ok(())
}
