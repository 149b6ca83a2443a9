//! The HTTP API workloads: a real `cowans-api` router served on a local port in this process,
//! driven by reqwest clients over real connections (client and server share the machine, as they
//! would in the two-core deployment the targets are set for).
//!
//! - `api-submit`: `POST /api/v1/jobs` one job per request from `--concurrency` clients, first
//!   with group commit off (`submit_group_max = 1`, the baseline: a commit per request), then on
//!   (`--group`, default 500).
//! - `api-bulk`: `POST /api/v1/jobs/bulk` JSON arrays of `--batch` jobs (≤ 10,000), or NDJSON
//!   bodies with `--ndjson` (≤ 100,000 lines), from `--concurrency` clients.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::{Args, Measurement, Workload, bench_db::BenchDb};

pub async fn run(args: &Args, db: &BenchDb) -> anyhow::Result<Vec<Measurement>> {
    let pool = db.pool(32).await?;
    cowans_store::migrate(&pool, &[], &[]).await?;
    let (key, _) = cowans_queue::FrontDoor::builder(pool.clone())
        .build()
        .create_api_key(
            &cowans_core::Actor::system("bench"),
            "bench",
            cowans_core::Role::Operator,
        )
        .await?;
    match args.workload {
        Workload::ApiSubmit => {
            let mut out = Vec::new();
            // The baseline gets a fifth of the jobs: it is the slow one.
            for (group, jobs) in [(1, (args.jobs / 5).max(1)), (args.group, args.jobs)] {
                let base = serve(pool.clone(), group).await?;
                let elapsed = submit_singles(&base, &key, jobs, args.concurrency).await?;
                let mut m = Measurement::new("api-submit", jobs, elapsed);
                m.extra = Some(format!("group_max={group}"));
                out.push(m);
            }
            Ok(out)
        }
        Workload::ApiBulk => {
            if !args.ndjson && args.batch > cowans_api::routes::jobs::MAX_BULK {
                bail!(
                    "--batch {} is over the JSON bulk limit of {}",
                    args.batch,
                    cowans_api::routes::jobs::MAX_BULK
                );
            }
            let base = serve(pool.clone(), args.group).await?;
            let calls = args.jobs.div_ceil(args.batch);
            let body = bulk_body(args.batch, args.ndjson)?;
            let elapsed = submit_bulk(&base, &key, calls, body, args.concurrency).await?;
            let mut m = Measurement::new("api-bulk", calls * args.batch, elapsed);
            let format = if args.ndjson { "ndjson" } else { "json" };
            m.extra = Some(format!("batch={} format={format}", args.batch));
            Ok(vec![m])
        }
        other => bail!("{other:?} is not an API workload"),
    }
}

/// Serves the API on a free local port; returns its base URL.
async fn serve(pool: cowans_store::PgPool, group: usize) -> anyhow::Result<String> {
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .build_recorder()
        .handle();
    let options = cowans_api::ApiOptions {
        // The benchmark measures the server, not the per-key limit.
        rate: cowans_api::rate_limit::RateConfig {
            per_second: 1e9,
            burst: 1e9,
        },
        ..Default::default()
    };
    let front = cowans_queue::FrontDoor::builder(pool.clone())
        .group_commit(group)
        .build();
    let ops = cowans_service::ops::router(pool, metrics, &[], None);
    let server = cowans_api::ApiServer::new(front, ops, options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(server.serve(listener, std::future::pending()));
    Ok(base)
}

fn client(concurrency: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(60))
        .build()?)
}

async fn submit_singles(
    base: &str,
    key: &str,
    jobs: usize,
    concurrency: usize,
) -> anyhow::Result<Duration> {
    let http = client(concurrency)?;
    // Parsed and serialised once: the clients share the server's two cores, so they should cost
    // as little as a client can.
    let url = reqwest::Url::parse(&format!("{base}/api/v1/jobs"))?;
    let body =
        serde_json::to_vec(&json!({"queue": "bench", "kind": "bench.job", "args": {"n": 1}}))?;
    let auth = format!("Bearer {key}");
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (http, next) = (http.clone(), next.clone());
        let (url, body, auth) = (url.clone(), body.clone(), auth.clone());
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < jobs {
                let r = http
                    .post(url.clone())
                    .header("authorization", &auth)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await?;
                if r.status() != reqwest::StatusCode::CREATED {
                    bail!("submit answered {}: {}", r.status(), r.text().await?);
                }
            }
            Ok(())
        }));
    }
    for t in tasks {
        t.await.context("client task")??;
    }
    Ok(started.elapsed())
}

/// One request body of `batch` jobs: (content type, bytes).
fn bulk_body(batch: usize, ndjson: bool) -> anyhow::Result<(&'static str, Vec<u8>)> {
    let job = |n: usize| json!({"queue": "bench", "kind": "bench.job", "args": {"n": n}});
    if ndjson {
        let mut body = Vec::new();
        for n in 0..batch {
            serde_json::to_writer(&mut body, &job(n))?;
            body.push(b'\n');
        }
        Ok(("application/x-ndjson", body))
    } else {
        let jobs: Vec<Value> = (0..batch).map(job).collect();
        Ok(("application/json", serde_json::to_vec(&jobs)?))
    }
}

async fn submit_bulk(
    base: &str,
    key: &str,
    calls: usize,
    (content_type, body): (&'static str, Vec<u8>),
    concurrency: usize,
) -> anyhow::Result<Duration> {
    let http = client(concurrency)?;
    let body = Arc::new(body);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (http, next, body) = (http.clone(), next.clone(), body.clone());
        let (url, key) = (format!("{base}/api/v1/jobs/bulk"), key.to_owned());
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < calls {
                let r = http
                    .post(&url)
                    .bearer_auth(&key)
                    .header("content-type", content_type)
                    .body(body.as_ref().clone())
                    .send()
                    .await?;
                if !r.status().is_success() {
                    bail!("bulk submit answered {}: {}", r.status(), r.text().await?);
                }
                // NDJSON answers 200 with a line per job; any error line is a failed job.
                let text = r.text().await?;
                if let Some(bad) = text.lines().find(|l| l.contains("\"error\"")) {
                    bail!("a job was refused: {bad}");
                }
            }
            Ok(())
        }));
    }
    for t in tasks {
        t.await.context("client task")??;
    }
    Ok(started.elapsed())
}
