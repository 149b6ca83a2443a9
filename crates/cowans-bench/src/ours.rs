//! The workloads on the Cowans engine.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use apalis_core::worker::builder::WorkerBuilder;
use cowans_core::{JobState, QueueName, queue::Driver};
use cowans_queue::{Engine, EngineConfig, QueueConfig};
use cowans_redis::RedisDriver;
use cowans_store::{NewJob, PgPool, Unique};
use serde::de::IgnoredAny;
use serde_json::json;

use crate::{
    Args, Measurement, Workload,
    bench_db::BenchDb,
    name_of,
    probe::{self, Counter, Samples, Stamped, Ticket},
};

/// Where the engine workloads keep their queues.
struct Target {
    /// The benchmark's database (the applications' pool; Postgres-only workloads).
    pool: PgPool,
    /// What the benchmark enqueues into and counts with.
    driver: Arc<dyn Driver>,
    /// Set when the queues are in Redis (to delete the run's keys at the end).
    redis: Option<RedisDriver>,
}

/// What an engine runs on: its driver and limiter (`None`: the engine's own, on Postgres).
type EngineBackend = Option<(Arc<dyn Driver>, Arc<dyn cowans_queue::Limiter>)>;

impl Target {
    async fn open(args: &Args, db: &BenchDb) -> anyhow::Result<Target> {
        let pool = db.pool(args.concurrency as u32 + 16).await?;
        cowans_store::migrate(&pool, &[], &[]).await?;
        Ok(match args.backend {
            crate::BackendKind::Redis => {
                let prefix = format!("cowans-bench-{}", uuid::Uuid::new_v4().simple());
                let redis = RedisDriver::connect(&args.redis_url, &prefix).await?;
                Target {
                    pool,
                    driver: Arc::new(redis.clone()),
                    redis: Some(redis),
                }
            }
            _ => Target {
                driver: Arc::new(cowans_store::PgDriver::new(pool.clone())),
                pool,
                redis: None,
            },
        })
    }

    /// The engine's driver and limiter; `None` on Postgres: the engine's own (its tuned pool).
    fn engine_driver(&self) -> EngineBackend {
        self.redis.as_ref().map(|r| {
            let limiter: Arc<dyn cowans_queue::Limiter> =
                Arc::new(cowans_redis::RedisLimiter::new(r.clone()));
            (self.driver.clone(), limiter)
        })
    }

    fn postgres_only(&self, name: &str) -> anyhow::Result<()> {
        match self.redis {
            Some(_) => anyhow::bail!("{name} runs on Postgres only"),
            None => Ok(()),
        }
    }

    async fn close(&self) {
        if let Some(r) = &self.redis
            && let Err(e) = r.flush_prefix().await
        {
            tracing::warn!(error = %e, "could not delete the benchmark's Redis keys");
        }
    }
}

pub async fn run(args: &Args, db: &BenchDb) -> anyhow::Result<Vec<Measurement>> {
    let target = Target::open(args, db).await?;
    let result = run_on(&target, args).await;
    target.close().await;
    result
}

async fn run_on(target: &Target, args: &Args) -> anyhow::Result<Vec<Measurement>> {
    let pool = target.pool.clone();
    let t = target;
    let q = QueueName::new("bench")?;
    let name = name_of(args.workload);
    let one = |elapsed| vec![Measurement::new(name, args.jobs, elapsed)];
    Ok(match args.workload {
        Workload::EnqueueSingle => one(enqueue_single(t, &q, args.jobs, args.concurrency).await?),
        Workload::EnqueueBulk => {
            one(enqueue_bulk(t, &q, args.jobs, args.batch, args.concurrency).await?)
        }
        Workload::EnqueueCopy => {
            t.postgres_only(name)?;
            one(enqueue_copy(&pool, &q, args.jobs, args.batch, args.concurrency).await?)
        }
        Workload::Drain => {
            fill(t, &q, args.jobs, false).await?;
            one(drain(t, &q, args.jobs, args).await?)
        }
        Workload::DrainUnique => {
            fill(t, &q, args.jobs, true).await?;
            one(drain(t, &q, args.jobs, args).await?)
        }
        Workload::DrainLimited => {
            t.postgres_only(name)?;
            let limit = args.limit.unwrap_or(args.concurrency as u32);
            cowans_store::set_queue_limits(&pool, &q, Some(limit), None).await?;
            fill(t, &q, args.jobs, false).await?;
            one(drain(t, &q, args.jobs, args).await?)
        }
        Workload::Latency => vec![latency(t, &q, args).await?],
        Workload::IdleTx => {
            t.postgres_only(name)?;
            vec![crate::idle_tx::run(&pool, &q, args).await?]
        }
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
        | Workload::Fanout
        | Workload::SyncIncremental => {
            anyhow::bail!("{name} is not an engine workload")
        }
        Workload::Backlog => {
            probe::backlog(async |queued, measured| {
                let q = QueueName::new(format!("backlog-{queued}"))?;
                fill(t, &q, queued, false).await?;
                // Fresh statistics, as autovacuum would have them in steady state.
                let _ = sqlx::query("ANALYZE cowans_jobs").execute(&pool).await;
                drain(t, &q, measured, args).await
            })
            .await?
        }
    })
}

pub(crate) fn job(q: &QueueName, n: usize) -> NewJob {
    NewJob::new(q.clone(), "bench.noop", json!({ "n": n }))
}

async fn fill(t: &Target, q: &QueueName, n: usize, unique: bool) -> anyhow::Result<()> {
    in_calls(
        t.driver.clone(),
        q,
        n,
        10_000,
        1,
        move |driver, q, range| async move {
            let jobs: Vec<NewJob> = range
                .map(|i| match unique {
                    true => job(&q, i).unique(Unique::key(format!("bench-{i}"))),
                    false => job(&q, i),
                })
                .collect();
            driver.enqueue(&jobs).await?;
            Ok(())
        },
    )
    .await?;
    Ok(())
}

async fn enqueue_single(
    t: &Target,
    q: &QueueName,
    n: usize,
    callers: usize,
) -> anyhow::Result<Duration> {
    let (driver, q, ticket) = (t.driver.clone(), q.clone(), Ticket::new(n));
    probe::run_callers(callers, move || {
        let (driver, q, ticket) = (driver.clone(), q.clone(), ticket.clone());
        async move {
            let Some(i) = ticket.next() else {
                return Ok(false);
            };
            driver.enqueue(&[job(&q, i)]).await?;
            Ok(true)
        }
    })
    .await
}

async fn enqueue_bulk(
    t: &Target,
    q: &QueueName,
    n: usize,
    batch: usize,
    callers: usize,
) -> anyhow::Result<Duration> {
    in_calls(
        t.driver.clone(),
        q,
        n,
        batch,
        callers,
        |driver, q, range| async move {
            let jobs: Vec<NewJob> = range.map(|i| job(&q, i)).collect();
            driver.enqueue(&jobs).await?;
            Ok(())
        },
    )
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
        pool.clone(),
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
/// `call(to, queue, range)`; the time all took.
async fn in_calls<T, F, Fut>(
    to: T,
    q: &QueueName,
    n: usize,
    batch: usize,
    callers: usize,
    call: F,
) -> anyhow::Result<Duration>
where
    T: Clone + Send + Sync + 'static,
    F: Fn(T, QueueName, std::ops::Range<usize>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let batch = batch.max(1);
    let (q, ticket) = (q.clone(), Ticket::new(n.div_ceil(batch)));
    probe::run_callers(callers, move || {
        let (to, q, ticket, call) = (to.clone(), q.clone(), ticket.clone(), call.clone());
        async move {
            let Some(b) = ticket.next() else {
                return Ok(false);
            };
            call(to, q, b * batch..((b + 1) * batch).min(n)).await?;
            Ok(true)
        }
    })
    .await
}

pub(crate) async fn start_engine(
    pool: &PgPool,
    q: &QueueName,
    args: &Args,
) -> anyhow::Result<Engine> {
    start_engine_on(None, pool, q, args).await
}

/// The engine on `q` as `args` set it up: `--concurrency`, `--retain-finished-ms`,
/// `--sync-commit`.
async fn start_engine_on(
    backend: EngineBackend,
    pool: &PgPool,
    q: &QueueName,
    args: &Args,
) -> anyhow::Result<Engine> {
    let mut config = EngineConfig::default();
    if let Some(ms) = args.retain_finished_ms {
        config.retain_finished = Duration::from_millis(ms);
    }
    config.async_commit = !args.sync_commit;
    let (driver, limiter) = backend.unzip();
    Ok(Engine::start_on(
        driver,
        pool.clone(),
        config,
        vec![q.to_string()],
        args.concurrency as u32,
        limiter,
    )
    .await?)
}

/// Runs a no-op worker until `target` jobs of `q` are completed in the database.
async fn drain(t: &Target, q: &QueueName, target: usize, args: &Args) -> anyhow::Result<Duration> {
    let finished = Finished::before_drain(t, q, target).await?;
    let engine = start_engine_on(t.engine_driver(), &t.pool, q, args).await?;
    let counter = Counter::new(target);
    let backend = engine.backend::<IgnoredAny>(queue_config(q, args));
    let worker = WorkerBuilder::new("bench")
        .backend(backend)
        .data(counter.clone())
        .build(probe::count::<IgnoredAny>);
    let started = std::time::Instant::now();
    let handle = tokio::spawn(worker.run());
    counter
        .until_completed(async || finished.reached(t, q, target).await)
        .await?;
    let elapsed = started.elapsed();
    engine.shutdown().await;
    handle.abort();
    Ok(elapsed)
}

/// How a drain learns that its jobs are completed in the database, asked at its end (and timed
/// with it).
enum Finished {
    /// Postgres: the drain is done when none of the first `target` jobs in claim order (ids up to
    /// `last`: a fill's jobs are claimed in id order) is available or running any more. Both
    /// questions go to small partial indexes (the claim index's front, the running jobs'
    /// leases), so asking costs the same with ten thousand or a million queued; a count by
    /// state scans the whole queue, ~0.1 s at a million, which `backlog` used to time.
    UpTo { last: i64 },
    /// Redis: rows that entered `completed` since the drain began, plus rows gone (completions
    /// that delete); `backlog` drains one queue several times, so earlier runs' are subtracted.
    Counted { completed: i64, total: i64 },
}

impl Finished {
    async fn before_drain(t: &Target, q: &QueueName, target: usize) -> anyhow::Result<Finished> {
        if t.redis.is_some() {
            let (completed, total) = Self::counts(t, q).await?;
            return Ok(Finished::Counted { completed, total });
        }
        let last: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM cowans_jobs WHERE state = 'available' AND queue = $1 \
             ORDER BY priority DESC, run_at, id OFFSET $2 - 1 LIMIT 1",
        )
        .bind(q.as_str())
        .bind(target as i64)
        .fetch_optional(&t.pool)
        .await?;
        let last = last.with_context(|| format!("{q} has fewer than {target} jobs available"))?;
        Ok(Finished::UpTo { last })
    }

    /// Whether the drain's `target` jobs are completed in the database.
    async fn reached(&self, t: &Target, q: &QueueName, target: usize) -> anyhow::Result<bool> {
        match *self {
            Finished::UpTo { last } => {
                let (next, running): (Option<i64>, i64) = sqlx::query_as(
                    "SELECT (SELECT id FROM cowans_jobs WHERE state = 'available' AND queue = $1 \
                             ORDER BY priority DESC, run_at, id LIMIT 1), \
                            (SELECT count(*) FROM cowans_jobs WHERE lease_expires_at IS NOT NULL \
                             AND queue = $1 AND id <= $2)",
                )
                .bind(q.as_str())
                .bind(last)
                .fetch_one(&t.pool)
                .await?;
                Ok(next.is_none_or(|id| id > last) && running == 0)
            }
            Finished::Counted { completed, total } => {
                let (completed_now, total_now) = Self::counts(t, q).await?;
                Ok(completed_now - completed + (total - total_now) >= target as i64)
            }
        }
    }

    async fn counts(t: &Target, q: &QueueName) -> anyhow::Result<(i64, i64)> {
        let counts = t.driver.count_by_state(q.as_str()).await?;
        let completed = counts
            .iter()
            .find(|(s, _)| *s == JobState::Completed)
            .map_or(0, |(_, n)| *n);
        Ok((completed, counts.iter().map(|(_, n)| *n).sum()))
    }
}

async fn latency(t: &Target, q: &QueueName, args: &Args) -> anyhow::Result<Measurement> {
    let engine = start_engine_on(t.engine_driver(), &t.pool, q, args).await?;
    let waits = Samples::default();
    let backend = engine.backend::<Stamped>(queue_config(q, args));
    let worker = WorkerBuilder::new("bench")
        .backend(backend)
        .data(waits.clone())
        .build(probe::record);
    let handle = tokio::spawn(worker.run());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let total = (args.rate * args.seconds) as usize;
    let inserts = Samples::default();
    let (driver2, q2, inserts2) = (t.driver.clone(), q.clone(), inserts.clone());
    let enqueues = probe::offer_load(args.load, args.rate, total, move || {
        let (driver, q, inserts) = (driver2.clone(), q2.clone(), inserts2.clone());
        async move {
            let t = probe::now_micros();
            let j = NewJob::new(q, "bench.stamped", json!({ "t": t }));
            driver.enqueue(&[j]).await?;
            inserts.push(probe::now_micros().saturating_sub(t));
            Ok(())
        }
    });
    // The same offered load of plain single-row INSERTs into a table of the same row shape,
    // alongside: the reference for the enqueue call's own latency, under the same load.
    let plain = Samples::default();
    if args.plain_baseline {
        t.postgres_only("latency --plain-baseline")?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS bench_plain (id bigserial PRIMARY KEY, queue text NOT NULL, \
             kind text NOT NULL, args jsonb NOT NULL, run_at timestamptz NOT NULL DEFAULT now())",
        )
        .execute(&t.pool)
        .await?;
        let (pool, plain2, q2) = (t.pool.clone(), plain.clone(), q.to_string());
        let inserts = probe::offer_load(args.load, args.rate, total, move || {
            let (pool, plain, q) = (pool.clone(), plain2.clone(), q2.clone());
            async move {
                let t = probe::now_micros();
                sqlx::query("INSERT INTO bench_plain (queue, kind, args) VALUES ($1, $2, $3)")
                    .bind(q)
                    .bind("bench.stamped")
                    .bind(json!({ "t": t }))
                    .execute(&pool)
                    .await?;
                plain.push(probe::now_micros().saturating_sub(t));
                Ok(())
            }
        });
        let (a, b) = tokio::join!(enqueues, inserts);
        a?;
        b?;
    } else {
        enqueues.await?;
    }
    waits.wait_for(total, Duration::from_secs(30)).await;
    engine.shutdown().await;
    handle.abort();
    let mut m = Measurement::latency(args, waits.take(), inserts.take());
    if args.plain_baseline {
        let (p50, p99) = crate::percentiles(plain.take());
        if let Some(extra) = &mut m.extra {
            extra.push_str(&format!(
                " plain_insert_p50_ms={p50:.2} plain_insert_p99_ms={p99:.2}"
            ));
        }
    }
    Ok(m)
}

pub(crate) fn queue_config(q: &QueueName, args: &Args) -> QueueConfig {
    let config = QueueConfig::new(q.clone()).concurrency(args.concurrency);
    match args.prefetch {
        Some(n) => config.prefetch(n),
        None => config,
    }
}
