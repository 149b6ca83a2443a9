//! The same workloads on apalis-postgres 1.0, the baseline. It uses its own schema (`apalis`) in
//! the same throw-away database, its LISTEN/NOTIFY pub/sub, and a concurrency limit layer.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use apalis::prelude::WorkerBuilderExt;
use apalis_core::{
    backend::TaskSink, error::BoxDynError, task::data::Data, worker::builder::WorkerBuilder,
};
use apalis_postgres::{Config, PostgresStorage};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::{
    Args, Measurement, Workload, bench_db::BenchDb, name_of, ours::offer_load, percentiles,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Payload {
    n: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stamped {
    t: u64,
}

fn storage<T>(pool: &PgPool, queue: &str, batch: usize) -> PostgresStorage<T> {
    PostgresStorage::new(pool).with_config(
        Config::default()
            .queue(queue)
            .batch_size(batch)
            .persist_results(true),
    )
}

pub async fn run(args: &Args, db: &BenchDb) -> anyhow::Result<Vec<Measurement>> {
    let pool = db.pool(args.concurrency as u32 + 16).await?;
    PostgresStorage::setup(&pool).await?;
    let name = name_of(args.workload);
    let one = |elapsed| {
        vec![Measurement {
            workload: name,
            jobs: args.jobs,
            elapsed,
            latency_ms: None,
            extra: None,
        }]
    };
    Ok(match args.workload {
        Workload::EnqueueSingle => one(enqueue_single(&pool, args.jobs, args.concurrency).await?),
        Workload::EnqueueBulk => {
            one(enqueue_bulk(&pool, args.jobs, args.batch, args.concurrency).await?)
        }
        Workload::Drain => {
            fill(&pool, "bench", args.jobs).await?;
            one(drain(&pool, "bench", args.jobs, args.concurrency).await?)
        }
        Workload::Latency => vec![latency(&pool, args).await?],
        Workload::Backlog => {
            let mut out = Vec::new();
            for queued in [10_000usize, 1_000_000] {
                let queue = format!("backlog-{queued}");
                fill(&pool, &queue, queued).await?;
                let _ = sqlx::query("ANALYZE apalis.jobs").execute(&pool).await;
                let measured = queued.min(50_000);
                let elapsed = drain(&pool, &queue, measured, args.concurrency).await?;
                out.push(Measurement {
                    workload: name,
                    jobs: measured,
                    elapsed,
                    latency_ms: None,
                    extra: Some(format!("queued={queued}")),
                });
            }
            out
        }
    })
}

async fn fill(pool: &PgPool, queue: &str, n: usize) -> anyhow::Result<()> {
    let mut s = storage::<Payload>(pool, queue, 10);
    let mut start = 0;
    while start < n {
        let end = (start + 10_000).min(n);
        s.push_bulk((start..end).map(|n| Payload { n }).collect())
            .await?;
        start = end;
    }
    Ok(())
}

async fn enqueue_single(pool: &PgPool, n: usize, callers: usize) -> anyhow::Result<Duration> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..callers {
        let (mut s, next) = (storage::<Payload>(pool, "bench", 10), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                s.push(Payload { n: i }).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(started.elapsed())
}

async fn enqueue_bulk(
    pool: &PgPool,
    n: usize,
    batch: usize,
    callers: usize,
) -> anyhow::Result<Duration> {
    let chunks: Vec<(usize, usize)> = (0..n)
        .step_by(batch.max(1))
        .map(|s| (s, (s + batch).min(n)))
        .collect();
    let work = Arc::new(Mutex::new(chunks));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..callers {
        let (mut s, work) = (storage::<Payload>(pool, "bench", 10), work.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let next = work.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.pop();
                let Some((a, b)) = next else {
                    return Ok::<_, anyhow::Error>(());
                };
                s.push_bulk((a..b).map(|n| Payload { n }).collect()).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(started.elapsed())
}

#[derive(Clone)]
struct Counter {
    seen: Arc<AtomicUsize>,
    target: usize,
    done: Arc<Notify>,
}

async fn count(_: Payload, c: Data<Counter>) -> Result<(), BoxDynError> {
    if c.seen.fetch_add(1, Ordering::Relaxed) + 1 == c.target {
        c.done.notify_one();
    }
    Ok(())
}

async fn drain(
    pool: &PgPool,
    queue: &str,
    target: usize,
    concurrency: usize,
) -> anyhow::Result<Duration> {
    let counter = Counter {
        seen: Arc::new(AtomicUsize::new(0)),
        target,
        done: Arc::new(Notify::new()),
    };
    let backend = storage::<Payload>(pool, queue, concurrency).with_pubsub();
    let worker = WorkerBuilder::new(format!("bench-{queue}"))
        .backend(backend)
        .concurrency(concurrency)
        .data(counter.clone())
        .build(count);
    let started = Instant::now();
    let handle = tokio::spawn(worker.run());
    counter.done.notified().await;
    loop {
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM apalis.jobs WHERE job_type = $1 AND status = 'Done'",
        )
        .bind(queue)
        .fetch_one(pool)
        .await?;
        if done as usize >= target {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    handle.abort();
    Ok(elapsed)
}

#[derive(Clone, Default)]
struct Waits(Arc<Mutex<Vec<u64>>>);

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

async fn record(s: Stamped, w: Data<Waits>) -> Result<(), BoxDynError> {
    let wait = now_micros().saturating_sub(s.t);
    let waits: &Waits = &w;
    waits.0.lock().map_err(|_| "poisoned")?.push(wait);
    Ok(())
}

async fn latency(pool: &PgPool, args: &Args) -> anyhow::Result<Measurement> {
    let waits = Waits::default();
    let backend = storage::<Stamped>(pool, "latency", args.concurrency).with_pubsub();
    let worker = WorkerBuilder::new("bench-latency")
        .backend(backend)
        .concurrency(args.concurrency)
        .data(waits.clone())
        .build(record);
    let handle = tokio::spawn(worker.run());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let total = (args.rate * args.seconds) as usize;
    let pool2 = pool.clone();
    offer_load(args.rate, total, move || {
        let mut s = storage::<Stamped>(&pool2, "latency", 10);
        async move {
            s.push(Stamped { t: now_micros() })
                .await
                .map_err(anyhow::Error::from)
        }
    })
    .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while waits
        .0
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .len()
        < total
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    handle.abort();
    let samples = std::mem::take(&mut *waits.0.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    Ok(Measurement {
        workload: "latency",
        jobs: samples.len(),
        elapsed: Duration::from_secs(args.seconds),
        latency_ms: Some(percentiles(samples)),
        extra: Some(format!("rate={}", args.rate)),
    })
}
