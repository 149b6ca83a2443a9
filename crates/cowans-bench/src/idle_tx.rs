//! `idle-tx`: what a session left idle in a transaction does to the drain. A queue is kept
//! topped up (about `BACKLOG` jobs queued) and drained by one no-op worker; after a baseline
//! phase another connection opens a repeatable-read transaction, reads one row (so its snapshot
//! pins the horizon: no dead row or index entry can be removed) and sits idle for
//! `--hold-seconds`, then commits; the drain is watched for a minute more. Throughput is
//! counted per window from the handler's calls; the claim index's size is read at each phase's
//! end. `chaos idle-tx` drives the same filler and phases with worker processes.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use apalis_core::worker::builder::WorkerBuilder;
use cowans_core::QueueName;
use cowans_store::{NewJob, PgPool};
use serde::de::IgnoredAny;
use sqlx::{Connection, PgConnection};
use tokio::task::JoinHandle;

use crate::{
    Args, Measurement,
    ours::{job, queue_config, start_engine},
    probe::{self, Counter},
};

const BACKLOG: usize = 20_000;
const TOP_UP: usize = 5_000;
const WINDOW: Duration = Duration::from_secs(5);
const BASELINE: Duration = Duration::from_secs(30);
const AFTER: Duration = Duration::from_secs(60);

pub async fn run(pool: &PgPool, q: &QueueName, args: &Args) -> anyhow::Result<Measurement> {
    let engine = start_engine(pool, q, args).await?;
    let counter = Counter::new(usize::MAX);
    let filler = Filler::start(pool, q, job, {
        let counter = counter.clone();
        move || counter.seen()
    })
    .await?;
    let worker = WorkerBuilder::new("bench")
        .backend(engine.backend::<IgnoredAny>(queue_config(q, args)))
        .data(counter.clone())
        .build(probe::count::<IgnoredAny>);
    let handle = tokio::spawn(worker.run());
    let started = Instant::now();
    let held = hold_phases(pool, Duration::from_secs(args.hold_seconds), || {
        counter.seen()
    })
    .await?;
    filler.stop().await;
    engine.shutdown().await;
    handle.abort();
    Ok(Measurement::custom(
        "idle-tx",
        started.elapsed(),
        held.figures(),
    ))
}

/// Keeps about `BACKLOG` jobs queued (made by `make(queue, n)`, numbered from 0) while `done()`
/// (jobs finished so far) rises.
pub struct Filler {
    stop: Arc<AtomicBool>,
    task: JoinHandle<()>,
    enqueued: Arc<AtomicUsize>,
}

impl Filler {
    /// Enqueues the first `BACKLOG` jobs, then tops up in the background.
    pub async fn start(
        pool: &PgPool,
        q: &QueueName,
        make: fn(&QueueName, usize) -> NewJob,
        done: impl Fn() -> usize + Send + 'static,
    ) -> anyhow::Result<Filler> {
        let enqueued = Arc::new(AtomicUsize::new(0));
        top_up(pool, q, make, &enqueued, 0, BACKLOG).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (pool, q, enqueued, stop) =
                (pool.clone(), q.clone(), enqueued.clone(), stop.clone());
            // A failed top-up ends it (the drain then runs dry and shows it).
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let n = enqueued.load(Ordering::Relaxed);
                    if n.saturating_sub(done()) >= BACKLOG {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    } else if let Err(e) = top_up(&pool, &q, make, &enqueued, n, TOP_UP).await {
                        eprintln!("idle-tx: topping up failed: {e:#}");
                        return;
                    }
                }
            })
        };
        Ok(Filler {
            stop,
            task,
            enqueued,
        })
    }

    /// Stops topping up (after the call in progress); the number of jobs enqueued.
    pub async fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.enqueued.load(Ordering::Relaxed)
    }
}

/// Throughput (jobs per `WINDOW`) before, while and after another connection holds a snapshot
/// for `hold`, and the claim index's size at each phase's end; `seen()` counts finished jobs.
pub struct Held {
    baseline: Vec<f64>,
    during: Vec<f64>,
    after: Vec<f64>,
    index_mb: [f64; 3],
    hold: Duration,
}

pub async fn hold_phases(
    pool: &PgPool,
    hold: Duration,
    seen: impl Fn() -> usize,
) -> anyhow::Result<Held> {
    let mut watch = Watch::new(&seen);
    let baseline = watch.phase(BASELINE).await;
    let before = claim_index_mb(pool).await?;

    let mut holder = PgConnection::connect_with(&engine_options(pool)).await?;
    sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1 FROM cowans_jobs LIMIT 1")
        .execute(&mut holder)
        .await?;
    let during = watch.phase(hold).await;
    let held = claim_index_mb(pool).await?;
    sqlx::raw_sql("COMMIT").execute(&mut holder).await?;
    holder.close().await?;

    let after = watch.phase(AFTER).await;
    let index_after = claim_index_mb(pool).await?;
    Ok(Held {
        baseline,
        during,
        after,
        index_mb: [before, held, index_after],
        hold,
    })
}

impl Held {
    pub fn figures(&self) -> String {
        let (during, after) = (&self.during, &self.after);
        let base = median(&self.baseline);
        let recovered = after
            .iter()
            .position(|r| *r >= 0.9 * base)
            .map(|i| ((i + 1) as u64 * WINDOW.as_secs()).to_string())
            .unwrap_or_else(|| "never".to_owned());
        let during_mean = mean(during);
        let during_min = during.iter().copied().fold(f64::INFINITY, f64::min);
        let last_half = &after[after.len() / 2..];
        let [index_before, index_held, index_after] = self.index_mb;
        format!(
            "baseline_jobs_per_s={base:.0} held_mean_jobs_per_s={during_mean:.0} held_min_jobs_per_s={during_min:.0} \
             held_over_baseline={:.2} recovered_within_s={recovered} after_jobs_per_s={:.0} after_over_baseline={:.2} \
             claim_index_mb_before={index_before:.1} claim_index_mb_held={index_held:.1} claim_index_mb_after={index_after:.1} \
             hold_s={} windows_held=[{}] windows_after=[{}]",
            during_mean / base,
            mean(last_half),
            mean(last_half) / base,
            self.hold.as_secs(),
            list(during),
            list(after),
        )
    }
}

async fn top_up(
    pool: &PgPool,
    q: &QueueName,
    make: fn(&QueueName, usize) -> NewJob,
    enqueued: &AtomicUsize,
    from: usize,
    n: usize,
) -> anyhow::Result<()> {
    let jobs: Vec<NewJob> = (from..from + n).map(|i| make(q, i)).collect();
    cowans_store::enqueue_autocommit(pool, &jobs).await?;
    enqueued.fetch_add(n, Ordering::Relaxed);
    Ok(())
}

/// The engine's own connect options (a separate connection, so the held transaction takes
/// nothing from the pool).
fn engine_options(pool: &PgPool) -> sqlx::postgres::PgConnectOptions {
    (*pool.connect_options()).clone()
}

async fn claim_index_mb(pool: &PgPool) -> anyhow::Result<f64> {
    let bytes: i64 = sqlx::query_scalar("SELECT pg_relation_size('cowans_jobs_claim')")
        .fetch_one(pool)
        .await?;
    Ok(bytes as f64 / (1 << 20) as f64)
}

/// Jobs per second in consecutive windows.
struct Watch<'a, F: Fn() -> usize> {
    seen: &'a F,
    last: usize,
}

impl<'a, F: Fn() -> usize> Watch<'a, F> {
    fn new(seen: &'a F) -> Self {
        Self { seen, last: seen() }
    }

    async fn phase(&mut self, length: Duration) -> Vec<f64> {
        let mut rates = Vec::new();
        let end = Instant::now() + length;
        while Instant::now() < end {
            let began = Instant::now();
            tokio::time::sleep(WINDOW.min(end - began)).await;
            let seen = (self.seen)();
            rates.push(seen.saturating_sub(self.last) as f64 / began.elapsed().as_secs_f64());
            self.last = seen;
        }
        rates
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(0.0)
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.iter().sum::<f64>() / v.len() as f64
}

fn list(v: &[f64]) -> String {
    v.iter()
        .map(|r| format!("{r:.0}"))
        .collect::<Vec<_>>()
        .join(",")
}
