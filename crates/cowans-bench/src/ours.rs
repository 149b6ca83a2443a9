//! The workloads on the Cowans engine.

use std::time::Duration;

use apalis_core::worker::builder::WorkerBuilder;
use cowans_core::{JobState, QueueName};
use cowans_queue::{Engine, EngineConfig, QueueConfig};
use cowans_store::{NewJob, PgPool, Unique};
use serde::de::IgnoredAny;
use serde_json::json;

use crate::{
    Args, Measurement, Workload,
    bench_db::BenchDb,
    name_of,
    probe::{self, Counter, Samples, Stamped, Ticket},
};

pub async fn run(args: &Args, db: &BenchDb) -> anyhow::Result<Vec<Measurement>> {
    let pool = db.pool(args.concurrency as u32 + 16).await?;
    cowans_store::migrate(&pool, &[], &[]).await?;
    let q = QueueName::new("bench")?;
    let name = name_of(args.workload);
    let one = |elapsed| vec![Measurement::new(name, args.jobs, elapsed)];
    Ok(match args.workload {
        Workload::EnqueueSingle => {
            one(enqueue_single(&pool, &q, args.jobs, args.concurrency).await?)
        }
        Workload::EnqueueBulk => {
            one(enqueue_bulk(&pool, &q, args.jobs, args.batch, args.concurrency).await?)
        }
        Workload::EnqueueCopy => {
            one(enqueue_copy(&pool, &q, args.jobs, args.batch, args.concurrency).await?)
        }
        Workload::Drain => {
            fill(&pool, &q, args.jobs, false).await?;
            one(drain(&pool, &q, args.jobs, args).await?)
        }
        Workload::DrainUnique => {
            fill(&pool, &q, args.jobs, true).await?;
            one(drain(&pool, &q, args.jobs, args).await?)
        }
        Workload::DrainLimited => {
            let limit = args.limit.unwrap_or(args.concurrency as u32);
            cowans_store::set_queue_limits(&pool, &q, Some(limit), None).await?;
            fill(&pool, &q, args.jobs, false).await?;
            one(drain(&pool, &q, args.jobs, args).await?)
        }
        Workload::Latency => vec![latency(&pool, &q, args).await?],
        Workload::IdleTx => vec![crate::idle_tx::run(&pool, &q, args).await?],
        Workload::ApiSubmit
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
        | Workload::SyncIncremental => {
            anyhow::bail!("{name} is not an engine workload")
        }
        Workload::Backlog => {
            probe::backlog(async |queued, measured| {
                let q = QueueName::new(format!("backlog-{queued}"))?;
                fill(&pool, &q, queued, false).await?;
                // Fresh statistics, as autovacuum would have them in steady state.
                let _ = sqlx::query("ANALYZE cowans_jobs").execute(&pool).await;
                drain(&pool, &q, measured, args).await
            })
            .await?
        }
    })
}

pub(crate) fn job(q: &QueueName, n: usize) -> NewJob {
    NewJob::new(q.clone(), "bench.noop", json!({ "n": n }))
}

async fn fill(pool: &PgPool, q: &QueueName, n: usize, unique: bool) -> anyhow::Result<()> {
    in_calls(pool, q, n, 10_000, 1, move |pool, q, range| async move {
        let jobs: Vec<NewJob> = range
            .map(|i| match unique {
                true => job(&q, i).unique(Unique::key(format!("bench-{i}"))),
                false => job(&q, i),
            })
            .collect();
        cowans_store::enqueue_autocommit(&pool, &jobs).await?;
        Ok(())
    })
    .await?;
    Ok(())
}

async fn enqueue_single(
    pool: &PgPool,
    q: &QueueName,
    n: usize,
    callers: usize,
) -> anyhow::Result<Duration> {
    let (pool, q, ticket) = (pool.clone(), q.clone(), Ticket::new(n));
    probe::run_callers(callers, move || {
        let (pool, q, ticket) = (pool.clone(), q.clone(), ticket.clone());
        async move {
            let Some(i) = ticket.next() else {
                return Ok(false);
            };
            cowans_store::enqueue_autocommit(&pool, &[job(&q, i)]).await?;
            Ok(true)
        }
    })
    .await
}

async fn enqueue_bulk(
    pool: &PgPool,
    q: &QueueName,
    n: usize,
    batch: usize,
    callers: usize,
) -> anyhow::Result<Duration> {
    in_calls(pool, q, n, batch, callers, |pool, q, range| async move {
        let jobs: Vec<NewJob> = range.map(|i| job(&q, i)).collect();
        cowans_store::enqueue_autocommit(&pool, &jobs).await?;
        Ok(())
    })
    .await
}

/// What `COPY` achieves writing the rows `enqueue_bulk` writes (same table, indexes and
/// payloads; no ids returned, no wake-up): the server's own ceiling for bulk inserts.
async fn enqueue_copy(
    pool: &PgPool,
    q: &QueueName,
    n: usize,
    batch: usize,
    callers: usize,
) -> anyhow::Result<Duration> {
    use sqlx::postgres::PgPoolCopyExt;
    let max_attempts = cowans_core::RetryPolicy::default().max_attempts;
    in_calls(
        pool,
        q,
        n,
        batch,
        callers,
        move |pool, q, range| async move {
            let mut rows = String::with_capacity(range.len() * 48);
            for i in range {
                rows.push_str(&format!(
                    "{}\tbench.noop\t{{\"n\": {i}}}\tavailable\t{max_attempts}\n",
                    q.as_str()
                ));
            }
            let mut copy = pool
                .copy_in_raw("COPY cowans_jobs (queue, kind, args, state, max_attempts) FROM STDIN")
                .await?;
            copy.send(rows.into_bytes()).await?;
            copy.finish().await?;
            Ok(())
        },
    )
    .await
}

/// Jobs `0..n` written in calls of `batch` from `callers` concurrent callers, each call by
/// `call(pool, queue, range)`; the time all took.
async fn in_calls<F, Fut>(
    pool: &PgPool,
    q: &QueueName,
    n: usize,
    batch: usize,
    callers: usize,
    call: F,
) -> anyhow::Result<Duration>
where
    F: Fn(PgPool, QueueName, std::ops::Range<usize>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let batch = batch.max(1);
    let (pool, q, ticket) = (pool.clone(), q.clone(), Ticket::new(n.div_ceil(batch)));
    probe::run_callers(callers, move || {
        let (pool, q, ticket, call) = (pool.clone(), q.clone(), ticket.clone(), call.clone());
        async move {
            let Some(b) = ticket.next() else {
                return Ok(false);
            };
            call(pool, q, b * batch..((b + 1) * batch).min(n)).await?;
            Ok(true)
        }
    })
    .await
}

pub(crate) async fn start_engine(
    pool: &PgPool,
    q: &QueueName,
    concurrency: usize,
    retain_finished_ms: Option<u64>,
) -> anyhow::Result<Engine> {
    let mut config = EngineConfig::default();
    if let Some(ms) = retain_finished_ms {
        config.retain_finished = Duration::from_millis(ms);
    }
    Ok(Engine::start(
        pool.clone(),
        config,
        vec![q.to_string()],
        concurrency as u32,
    )
    .await?)
}

/// Runs a no-op worker until `target` jobs of `q` are completed in the database.
async fn drain(
    pool: &PgPool,
    q: &QueueName,
    target: usize,
    args: &Args,
) -> anyhow::Result<Duration> {
    let concurrency = args.concurrency;
    // Completed in the database: rows in `completed`, plus rows gone (completions that delete).
    let rows = async || -> anyhow::Result<(i64, i64)> {
        let counts = cowans_store::count_by_state(pool, q.as_str()).await?;
        let completed = counts
            .iter()
            .find(|(s, _)| *s == JobState::Completed)
            .map_or(0, |(_, n)| *n);
        Ok((completed, counts.iter().map(|(_, n)| *n).sum()))
    };
    let (_, before) = rows().await?;
    let engine = start_engine(pool, q, concurrency, args.retain_finished_ms).await?;
    let counter = Counter::new(target);
    let backend = engine.backend::<IgnoredAny>(queue_config(q, concurrency, args));
    let worker = WorkerBuilder::new("bench")
        .backend(backend)
        .data(counter.clone())
        .build(probe::count::<IgnoredAny>);
    let started = std::time::Instant::now();
    let handle = tokio::spawn(worker.run());
    counter
        .until_completed(async || {
            let (completed, now) = rows().await?;
            Ok(completed + (before - now))
        })
        .await?;
    let elapsed = started.elapsed();
    engine.shutdown().await;
    handle.abort();
    Ok(elapsed)
}

async fn latency(pool: &PgPool, q: &QueueName, args: &Args) -> anyhow::Result<Measurement> {
    let engine = start_engine(pool, q, args.concurrency, args.retain_finished_ms).await?;
    let waits = Samples::default();
    let backend = engine.backend::<Stamped>(queue_config(q, args.concurrency, args));
    let worker = WorkerBuilder::new("bench")
        .backend(backend)
        .data(waits.clone())
        .build(probe::record);
    let handle = tokio::spawn(worker.run());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let total = (args.rate * args.seconds) as usize;
    let inserts = Samples::default();
    let (pool2, q2, inserts2) = (pool.clone(), q.clone(), inserts.clone());
    probe::offer_load(args.rate, total, move || {
        let (pool, q, inserts) = (pool2.clone(), q2.clone(), inserts2.clone());
        async move {
            let t = probe::now_micros();
            let j = NewJob::new(q, "bench.stamped", json!({ "t": t }));
            cowans_store::enqueue_autocommit(&pool, &[j]).await?;
            inserts.push(probe::now_micros().saturating_sub(t));
            Ok(())
        }
    })
    .await?;
    waits.wait_for(total, Duration::from_secs(30)).await;
    engine.shutdown().await;
    handle.abort();
    Ok(Measurement::latency(args, waits.take(), inserts.take()))
}

pub(crate) fn queue_config(q: &QueueName, concurrency: usize, args: &Args) -> QueueConfig {
    let config = QueueConfig::new(q.clone()).concurrency(concurrency);
    match args.prefetch {
        Some(n) => config.prefetch(n),
        None => config,
    }
}
