//! The catalog's change workloads, after the full pull of `sync` (same simulator, worker and
//! catalog):
//!
//! - `bulk-edit`: a bulk price edit (−10 %, rounded to .99) over every product, timed from its
//!   start to its end (staged by the worker's chunk jobs), with the worker's memory growth.
//! - `approve-all`: `--changes` pending changes (one price change per variant, staged by a
//!   bulk edit) approved by one "approve all matching" with the expected count, timed.
//! - `sync-push`: price and tags changed on every product, approved, and pushed to the
//!   Standard-plan shop through aliased mutations by `--processes` worker processes (one push
//!   job each, sharing the shop's one budget); the simulator's request log gives the points
//!   spent, the share of THROTTLED answers and the restore rate used. The same push with one
//!   mutation per request follows in the same run, for points per product and requests.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cowans_catalog::{BulkEditSpec, Catalog, ChangeFilter, Decision, Selection};
use cowans_core::{Actor, QueueName};
use cowans_queue::NewJob;
use serde_json::{Value, json};

use crate::{Args, Measurement, Workload, procs::Proc};

/// What the change workloads share with the pull's setup.
pub struct Setup<'a> {
    pub catalog: &'a Catalog,
    pub actor: &'a Actor,
    pub shop_id: i64,
    pub sim_url: &'a str,
    pub worker: &'a Proc,
    /// Starts another worker process like the first.
    pub spawn_worker: &'a dyn Fn() -> anyhow::Result<Proc>,
}

pub async fn run(args: &Args, s: &Setup<'_>) -> anyhow::Result<Vec<Measurement>> {
    match args.workload {
        Workload::BulkEdit => bulk_edit(args, s).await.map(|m| vec![m]),
        Workload::ApproveAll => approve_all(args, s).await.map(|m| vec![m]),
        Workload::SyncPush => sync_push(args, s).await,
        other => bail!("{} is not a change workload", crate::name_of(other)),
    }
}

fn spec(ops: Value) -> anyhow::Result<BulkEditSpec> {
    Ok(serde_json::from_value(json!({ "operations": ops }))?)
}

/// Runs a bulk edit to its end; its row, seconds, and the worker's memory growth.
async fn run_bulk_edit(
    s: &Setup<'_>,
    ops: Value,
) -> anyhow::Result<(cowans_catalog::BulkEditRow, Duration, f64)> {
    let rss0 = s.worker.rss_mib();
    let mut rss_max = rss0;
    let t = Instant::now();
    let edit = s
        .catalog
        .start_bulk_edit(s.actor, s.shop_id, &spec(ops)?)
        .await?;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        rss_max = rss_max.max(s.worker.rss_mib());
        let e = s.catalog.bulk_edit(edit.id).await?;
        if e.state != "running" {
            let secs = e
                .finished_at
                .and_then(|f| (f - e.created_at).to_std().ok())
                .unwrap_or_else(|| t.elapsed());
            return Ok((e, secs, rss_max - rss0));
        }
        if t.elapsed() > Duration::from_secs(1800) {
            bail!("the bulk edit did not end within 30 minutes");
        }
    }
}

async fn bulk_edit(args: &Args, s: &Setup<'_>) -> anyhow::Result<Measurement> {
    let (e, secs, rss) = run_bulk_edit(
        s,
        json!([{"field": "price", "op": "percent", "value": "-10", "rounding": "99"}]),
    )
    .await?;
    if e.processed != args.products as i64 {
        bail!(
            "the bulk edit processed {} products, not {}",
            e.processed,
            args.products
        );
    }
    Ok(Measurement::custom(
        "bulk-edit",
        secs,
        format!(
            "products={} variants={} changes={} secs={:.2} changes_per_s={:.0} rss_growth_mb={rss:.1}",
            args.products,
            args.variants,
            e.changes,
            secs.as_secs_f64(),
            e.changes as f64 / secs.as_secs_f64(),
        ),
    ))
}

/// "Approve all matching" of the shop's `expected` pending changes.
async fn approve_pending(s: &Setup<'_>, expected: i64) -> anyhow::Result<Vec<i64>> {
    Ok(s.catalog
        .decide(
            s.actor,
            s.shop_id,
            &Selection::Matching {
                filter: ChangeFilter {
                    state: Some("pending".into()),
                    ..Default::default()
                },
                expected,
            },
            Decision::Approve,
            Some("benchmark"),
        )
        .await?)
}

async fn approve_all(args: &Args, s: &Setup<'_>) -> anyhow::Result<Measurement> {
    let (e, _, _) =
        run_bulk_edit(s, json!([{"field": "price", "op": "add", "value": "1"}])).await?;
    if e.changes != args.changes as i64 {
        bail!(
            "{} changes staged, not {} (use --products {} --variants 1)",
            e.changes,
            args.changes,
            args.changes
        );
    }
    let t = Instant::now();
    let ids = approve_pending(s, e.changes).await?;
    let secs = t.elapsed();
    Ok(Measurement::custom(
        "approve-all",
        secs,
        format!(
            "changes={} secs={:.2} changes_per_s={:.0}",
            ids.len(),
            secs.as_secs_f64(),
            ids.len() as f64 / secs.as_secs_f64()
        ),
    ))
}

/// Stages `ops` on every product, approves them, and has `jobs` push jobs push them; the
/// figures from the simulator's request log.
async fn push_once(
    s: &Setup<'_>,
    ops: Value,
    jobs: usize,
    max_aliases: Option<usize>,
    http: &reqwest::Client,
) -> anyhow::Result<(i64, f64, Vec<Value>, f64, f64, f64)> {
    let (e, _, _) = run_bulk_edit(s, ops).await?;
    let rss0 = s.worker.rss_mib();
    let mut rss_max = rss0;
    let products = e.processed;
    http.delete(format!("{}/__sim/requests", s.sim_url))
        .send()
        .await?
        .error_for_status()?;
    let t = Instant::now();
    approve_pending(s, e.changes).await?;
    // The push jobs (approving starts none here): they share the approved changes and the
    // shop's one budget.
    let queue = QueueName::new(cowans_catalog::QUEUE.to_owned())?;
    for _ in 0..jobs {
        s.catalog
            .front()
            .enqueue(&NewJob::new(
                queue.clone(),
                "catalog.push",
                json!({ "shop_id": s.shop_id, "max_aliases": max_aliases }),
            ))
            .await?;
    }
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        rss_max = rss_max.max(s.worker.rss_mib());
        let counts = s.catalog.change_counts(s.shop_id).await?;
        let open: i64 = counts
            .iter()
            .filter(|(st, _)| st == "approved" || st == "pushing" || st == "pending")
            .map(|(_, n)| n)
            .sum();
        if open == 0 {
            let bad: i64 = counts
                .iter()
                .filter(|(st, _)| st == "conflict" || st == "failed")
                .map(|(_, n)| n)
                .sum();
            if bad > 0 {
                bail!("the push left changes in conflict or failed: {counts:?}");
            }
            break;
        }
        if t.elapsed() > Duration::from_secs(3600) {
            bail!("the push did not end within an hour");
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let log: Vec<Value> = http
        .get(format!("{}/__sim/requests", s.sim_url))
        .send()
        .await?
        .json()
        .await?;
    let bucket: Value = http
        .get(format!(
            "{}/__sim/bucket?token={}",
            s.sim_url,
            crate::sync::TOKEN
        ))
        .send()
        .await?
        .json()
        .await?;
    let max = bucket["maximum_available"]
        .as_f64()
        .context("maximum_available")?;
    let restore = bucket["restore_rate"].as_f64().context("restore_rate")?;
    Ok((products, secs, log, max, restore, rss_max - rss0))
}

async fn sync_push(args: &Args, s: &Setup<'_>) -> anyhow::Result<Vec<Measurement>> {
    let http = reqwest::Client::new();
    if args.mode == "bulk" {
        let (products, secs, log, _, _, rss) = push_once(
            s,
            json!([
                {"field": "price", "op": "set", "value": "19.99"},
                {"field": "tags", "op": "add", "value": ["bench-bulk"]}
            ]),
            1,
            None,
            &http,
        )
        .await?;
        let bulk_ops = log
            .iter()
            .filter(|r| {
                r["root_fields"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|x| x == "bulkOperationRunMutation"))
            })
            .count();
        return Ok(vec![Measurement::custom(
            "sync-push",
            Duration::from_secs_f64(secs),
            format!(
                "mode=bulk processes=1 products={products} secs={secs:.1} requests={} bulk_mutations={bulk_ops} rss_growth_mb={rss:.1}",
                log.len()
            ),
        )]);
    }
    if args.mode != "aliased" {
        bail!(
            "sync-push --mode must be aliased or bulk, not {}",
            args.mode
        );
    }
    let mut workers = Vec::new();
    for _ in 1..args.processes {
        workers.push((s.spawn_worker)()?);
    }
    let mut results = Vec::new();
    let mut baseline_ppp = None;
    for (mode, jobs, max_aliases) in [
        ("aliased", args.processes, None),
        ("one-per-request", 1, Some(1)),
    ] {
        let price = if mode == "aliased" { "19.99" } else { "29.99" };
        let (products, secs, log, max, restore, _) = push_once(
            s,
            json!([
                {"field": "price", "op": "set", "value": price},
                {"field": "tags", "op": "add", "value": [format!("bench-{mode}")]}
            ]),
            jobs,
            max_aliases,
            &http,
        )
        .await?;
        let total = log.len();
        let throttled = log.iter().filter(|r| r["outcome"] == "throttled").count();
        let ok: Vec<&Value> = log.iter().filter(|r| r["outcome"] == "ok").collect();
        let spent: f64 = ok.iter().filter_map(|r| r["actual_cost"].as_f64()).sum();
        let mutation_points: f64 = ok
            .iter()
            .filter(|r| {
                r["root_fields"].as_array().is_some_and(|f| {
                    f.iter()
                        .any(|x| x == "productUpdate" || x == "productVariantsBulkUpdate")
                })
            })
            .filter_map(|r| r["actual_cost"].as_f64())
            .sum();
        let use_of_restore = (spent - max).max(0.0) / (restore * secs);
        let ppp = mutation_points / products as f64;
        if mode == "one-per-request" {
            baseline_ppp = Some(ppp);
        }
        results.push(Measurement::custom(
            "sync-push",
            Duration::from_secs_f64(secs),
            format!(
                "mode={mode} processes={} products={products} secs={secs:.1} requests={total} throttled={throttled} throttled_share={:.4} points={spent:.0} budget_use={use_of_restore:.3} points_per_product={ppp:.1}",
                if mode == "aliased" { args.processes } else { 1 },
                throttled as f64 / total.max(1) as f64,
            ),
        ));
    }
    if let (Some(base), Some(first)) = (baseline_ppp, results.first_mut())
        && let Some(extra) = first.extra.as_mut()
    {
        extra.push_str(&format!(" one_per_request_points_per_product={base:.1}"));
    }
    drop(workers);
    Ok(results)
}
