//! The workloads on the Cowans engine.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use apalis_core::{error::BoxDynError, task::data::Data, worker::builder::WorkerBuilder};
use cowans_core::QueueName;
use cowans_queue::{Engine, EngineConfig, QueueConfig};
use cowans_store::{NewJob, PgPool};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Notify;

use crate::{Args, Measurement, Workload, bench_db::BenchDb, name_of, percentiles};

pub async fn run(args: &Args, db: &BenchDb) -> anyhow::Result<Vec<Measurement>> {
    let pool = db.pool(args.concurrency as u32 + 16).await?;
    cowans_store::migrate(&pool).await?;
    let q = QueueName::new("bench")?;
    let name = name_of(args.workload);
    Ok(match args.workload {
        Workload::EnqueueSingle => {
            let elapsed = enqueue_single(&pool, &q, args.jobs, args.concurrency).await?;
            vec![Measurement {
                workload: name,
                jobs: args.jobs,
                elapsed,
                latency_ms: None,
                extra: None,
            }]
        }
        Workload::EnqueueBulk => {
            let elapsed = enqueue_bulk(&pool, &q, args.jobs, args.batch, args.concurrency).await?;
            vec![Measurement {
                workload: name,
                jobs: args.jobs,
                elapsed,
                latency_ms: None,
                extra: None,
            }]
        }
        Workload::Drain => {
            fill(&pool, &q, args.jobs).await?;
            let elapsed = drain(&pool, &q, args.jobs, args.concurrency).await?;
            vec![Measurement {
                workload: name,
                jobs: args.jobs,
                elapsed,
                latency_ms: None,
                extra: None,
            }]
        }
        Workload::Latency => vec![latency(&pool, &q, args).await?],
        Workload::Backlog => {
            let mut out = Vec::new();
            for queued in [10_000usize, 1_000_000] {
                let q = QueueName::new(format!("backlog-{queued}"))?;
                fill(&pool, &q, queued).await?;
                sqlx_analyze(&pool).await;
                let measured = queued.min(50_000);
                let elapsed = drain(&pool, &q, measured, args.concurrency).await?;
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

async fn sqlx_analyze(pool: &PgPool) {
    // Fresh statistics, as autovacuum would have them in steady state.
    let _ = sqlx::query("ANALYZE cowans_jobs").execute(pool).await;
}

fn job(q: &QueueName, n: usize) -> NewJob {
    NewJob::new(q.clone(), "bench.noop", json!({ "n": n }))
}

pub async fn fill(pool: &PgPool, q: &QueueName, n: usize) -> anyhow::Result<()> {
    let mut start = 0;
    while start < n {
        let end = (start + 10_000).min(n);
        let jobs: Vec<NewJob> = (start..end).map(|i| job(q, i)).collect();
        cowans_store::enqueue_autocommit(pool, &jobs).await?;
        start = end;
    }
    Ok(())
}

async fn enqueue_single(
    pool: &PgPool,
    q: &QueueName,
    n: usize,
    callers: usize,
) -> anyhow::Result<Duration> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..callers {
        let (pool, q, next) = (pool.clone(), q.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                cowans_store::enqueue_autocommit(&pool, &[job(&q, i)]).await?;
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
    q: &QueueName,
    n: usize,
    batch: usize,
    callers: usize,
) -> anyhow::Result<Duration> {
    let batches: Vec<Vec<NewJob>> = (0..n)
        .collect::<Vec<_>>()
        .chunks(batch.max(1))
        .map(|c| c.iter().map(|i| job(q, *i)).collect())
        .collect();
    let queue = Arc::new(Mutex::new(batches));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..callers {
        let (pool, queue) = (pool.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.pop();
                let Some(jobs) = next else {
                    return Ok::<_, anyhow::Error>(());
                };
                cowans_store::enqueue_autocommit(&pool, &jobs).await?;
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

async fn count(_: serde::de::IgnoredAny, c: Data<Counter>) -> Result<(), BoxDynError> {
    if c.seen.fetch_add(1, Ordering::Relaxed) + 1 == c.target {
        c.done.notify_one();
    }
    Ok(())
}

/// Runs a no-op worker until `target` jobs of `q` are completed in the database.
async fn drain(
    pool: &PgPool,
    q: &QueueName,
    target: usize,
    concurrency: usize,
) -> anyhow::Result<Duration> {
    let engine = Engine::start(
        pool.clone(),
        EngineConfig::default(),
        vec![q.to_string()],
        concurrency as u32,
    )
    .await?;
    let counter = Counter {
        seen: Arc::new(AtomicUsize::new(0)),
        target,
        done: Arc::new(Notify::new()),
    };
    let backend = engine
        .backend::<serde::de::IgnoredAny>(QueueConfig::new(q.clone()).concurrency(concurrency));
    let worker = WorkerBuilder::new("bench")
        .backend(backend)
        .data(counter.clone())
        .build(count);
    let started = Instant::now();
    let handle = tokio::spawn(worker.run());
    counter.done.notified().await;
    loop {
        let done: i64 = cowans_store::count_by_state(pool, q.as_str())
            .await?
            .into_iter()
            .find(|(s, _)| *s == cowans_core::JobState::Completed)
            .map_or(0, |(_, n)| n);
        if done as usize >= target {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    engine.shutdown().await;
    handle.abort();
    Ok(elapsed)
}

#[derive(Deserialize)]
struct Stamped {
    t: u64,
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

async fn latency(pool: &PgPool, q: &QueueName, args: &Args) -> anyhow::Result<Measurement> {
    let engine = Engine::start(
        pool.clone(),
        EngineConfig::default(),
        vec![q.to_string()],
        args.concurrency as u32,
    )
    .await?;
    let waits = Waits::default();
    let backend =
        engine.backend::<Stamped>(QueueConfig::new(q.clone()).concurrency(args.concurrency));
    let worker = WorkerBuilder::new("bench")
        .backend(backend)
        .data(waits.clone())
        .build(record);
    let handle = tokio::spawn(worker.run());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let total = (args.rate * args.seconds) as usize;
    let enqueue_us = Waits::default();
    offer_load(args.rate, total, {
        let (pool, q, enqueue_us) = (pool.clone(), q.clone(), enqueue_us.clone());
        move || {
            let (pool, q, enqueue_us) = (pool.clone(), q.clone(), enqueue_us.clone());
            async move {
                let t = now_micros();
                let j = NewJob::new(q, "bench.stamped", json!({ "t": t }));
                cowans_store::enqueue_autocommit(&pool, &[j]).await?;
                let took = now_micros().saturating_sub(t);
                enqueue_us
                    .0
                    .lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?
                    .push(took);
                Ok(())
            }
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
    engine.shutdown().await;
    handle.abort();
    let samples = std::mem::take(&mut *waits.0.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    let inserts = std::mem::take(
        &mut *enqueue_us
            .0
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?,
    );
    let (ins50, ins99) = percentiles(inserts);
    Ok(Measurement {
        workload: "latency",
        jobs: samples.len(),
        elapsed: Duration::from_secs(args.seconds),
        latency_ms: Some(percentiles(samples)),
        extra: Some(format!(
            "rate={} enqueue_p50_ms={ins50:.2} enqueue_p99_ms={ins99:.2}",
            args.rate
        )),
    })
}

/// Calls `enqueue` `total` times at `rate` per second, each call in its own task so a slow
/// insert does not delay the schedule.
pub async fn offer_load<F, Fut>(rate: u64, total: usize, enqueue: F) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(total);
    for _ in 0..total {
        tick.tick().await;
        tasks.push(tokio::spawn(enqueue()));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}
