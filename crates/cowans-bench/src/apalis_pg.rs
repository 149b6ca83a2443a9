//! The same workloads on apalis-postgres 1.0, the baseline: its own schema (`apalis`) in the same
//! throw-away database, its LISTEN/NOTIFY pub/sub, and apalis' concurrency limit layer.

use std::time::Duration;

use apalis::prelude::WorkerBuilderExt;
use apalis_core::{backend::TaskSink, worker::builder::WorkerBuilder};
use apalis_postgres::{Config, PostgresStorage};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::{
    Args, Measurement, Workload,
    bench_db::BenchDb,
    name_of,
    probe::{self, Counter, Samples, Stamped, Ticket},
};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Payload {
    n: usize,
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
    let one = |elapsed| vec![Measurement::new(name, args.jobs, elapsed)];
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
        Workload::DrainUnique
        | Workload::EnqueueCopy
        | Workload::IdleTx
        | Workload::DrainLimited
        | Workload::ApiSubmit
        | Workload::ApiBulk
        | Workload::SyncPull
        | Workload::Webhooks
        | Workload::Export
        | Workload::ShopBudget
        | Workload::ShopBudgetClient
        | Workload::BulkEdit
        | Workload::ApproveAll
        | Workload::SyncPush
        | Workload::Chaos
        | Workload::Fanout
        | Workload::SyncIncremental => anyhow::bail!(
            "{name} has no apalis-postgres counterpart (no unique keys or fleet-wide limits there)"
        ),
        Workload::Backlog => {
            probe::backlog(async |queued, measured| {
                let queue = format!("backlog-{queued}");
                fill(&pool, &queue, queued).await?;
                let _ = sqlx::query("ANALYZE apalis.jobs").execute(&pool).await;
                drain(&pool, &queue, measured, args.concurrency).await
            })
            .await?
        }
    })
}

async fn fill(pool: &PgPool, queue: &str, n: usize) -> anyhow::Result<()> {
    let mut s = storage::<Payload>(pool, queue, 10);
    for start in (0..n).step_by(10_000) {
        s.push_bulk(
            (start..(start + 10_000).min(n))
                .map(|n| Payload { n })
                .collect(),
        )
        .await?;
    }
    Ok(())
}

async fn enqueue_single(pool: &PgPool, n: usize, callers: usize) -> anyhow::Result<Duration> {
    let (pool, ticket) = (pool.clone(), Ticket::new(n));
    probe::run_callers(callers, move || {
        let (mut s, ticket) = (storage::<Payload>(&pool, "bench", 10), ticket.clone());
        async move {
            let Some(i) = ticket.next() else {
                return Ok(false);
            };
            s.push(Payload { n: i }).await?;
            Ok(true)
        }
    })
    .await
}

async fn enqueue_bulk(
    pool: &PgPool,
    n: usize,
    batch: usize,
    callers: usize,
) -> anyhow::Result<Duration> {
    let batch = batch.max(1);
    let (pool, ticket) = (pool.clone(), Ticket::new(n.div_ceil(batch)));
    probe::run_callers(callers, move || {
        let (mut s, ticket) = (storage::<Payload>(&pool, "bench", 10), ticket.clone());
        async move {
            let Some(b) = ticket.next() else {
                return Ok(false);
            };
            s.push_bulk(
                (b * batch..((b + 1) * batch).min(n))
                    .map(|n| Payload { n })
                    .collect(),
            )
            .await?;
            Ok(true)
        }
    })
    .await
}

async fn drain(
    pool: &PgPool,
    queue: &str,
    target: usize,
    concurrency: usize,
) -> anyhow::Result<Duration> {
    let counter = Counter::new(target);
    let backend = storage::<Payload>(pool, queue, concurrency).with_pubsub();
    let worker = WorkerBuilder::new(format!("bench-{queue}"))
        .backend(backend)
        .concurrency(concurrency)
        .data(counter.clone())
        .build(probe::count::<Payload>);
    let started = std::time::Instant::now();
    let handle = tokio::spawn(worker.run());
    counter
        .until_completed(async || {
            let done: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM apalis.jobs WHERE job_type = $1 AND status = 'Done'",
            )
            .bind(queue)
            .fetch_one(pool)
            .await?;
            Ok(done as usize >= target)
        })
        .await?;
    let elapsed = started.elapsed();
    handle.abort();
    Ok(elapsed)
}

async fn latency(pool: &PgPool, args: &Args) -> anyhow::Result<Measurement> {
    let waits = Samples::default();
    let backend = storage::<Stamped>(pool, "latency", args.concurrency).with_pubsub();
    let worker = WorkerBuilder::new("bench-latency")
        .backend(backend)
        .concurrency(args.concurrency)
        .data(waits.clone())
        .build(probe::record);
    let handle = tokio::spawn(worker.run());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let total = (args.rate * args.seconds) as usize;
    let inserts = Samples::default();
    let (pool2, inserts2) = (pool.clone(), inserts.clone());
    probe::offer_load(args.load, args.rate, total, move || {
        let (mut s, inserts) = (storage::<Stamped>(&pool2, "latency", 10), inserts2.clone());
        async move {
            let t = probe::now_micros();
            s.push(Stamped { t }).await?;
            inserts.push(probe::now_micros().saturating_sub(t));
            Ok(())
        }
    })
    .await?;
    waits.wait_for(total, Duration::from_secs(30)).await;
    handle.abort();
    Ok(Measurement::latency(args, waits.take(), inserts.take()))
}
