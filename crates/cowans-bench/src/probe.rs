//! What the workloads of both backends share: the no-op and time-stamp handlers, and a set of
//! concurrent callers.

use std::{
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use apalis_core::{error::BoxDynError, task::data::Data};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// Counts handled jobs and signals when `target` is reached.
#[derive(Clone)]
pub struct Counter {
    seen: Arc<AtomicUsize>,
    target: usize,
    done: Arc<Notify>,
}

impl Counter {
    pub fn new(target: usize) -> Self {
        Self {
            seen: Arc::new(AtomicUsize::new(0)),
            target,
            done: Arc::new(Notify::new()),
        }
    }

    /// Jobs the handler has seen so far.
    pub fn seen(&self) -> usize {
        self.seen.load(Ordering::Relaxed)
    }

    /// Waits until the handler saw every job, then until `completed()` (asked of the database)
    /// says they are all completed there.
    pub async fn until_completed(
        &self,
        mut completed: impl AsyncFnMut() -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        self.done.notified().await;
        while !completed().await? {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }
}

/// The no-op handler of `drain` and `backlog`.
pub async fn count<T>(_: T, c: Data<Counter>) -> Result<(), BoxDynError> {
    if c.seen.fetch_add(1, Ordering::Relaxed) + 1 == c.target {
        c.done.notify_one();
    }
    Ok(())
}

/// The payload of `latency`: when it was enqueued, in µs since the epoch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stamped {
    pub t: u64,
}

/// Samples in µs, shared between tasks.
#[derive(Clone, Default)]
pub struct Samples(Arc<Mutex<Vec<u64>>>);

impl Samples {
    pub fn push(&self, us: u64) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(us);
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn take(&self) -> Vec<u64> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Waits until `n` samples arrived, at most `limit`.
    pub async fn wait_for(&self, n: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.len() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The handler of `latency`: records enqueue-to-start.
pub async fn record(s: Stamped, samples: Data<Samples>) -> Result<(), BoxDynError> {
    samples.push(now_micros().saturating_sub(s.t));
    Ok(())
}

/// Runs `callers` tasks that each call `step` until it returns `Ok(false)`; returns the time
/// until all are done.
pub async fn run_callers<F, Fut>(callers: usize, step: F) -> anyhow::Result<Duration>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<bool>> + Send,
{
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(callers);
    for _ in 0..callers {
        let step = step.clone();
        tasks.push(tokio::spawn(async move {
            while step().await? {}
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(started.elapsed())
}

/// Hands out the numbers `0..n` to concurrent callers.
#[derive(Clone)]
pub struct Ticket(Arc<AtomicUsize>, usize);

impl Ticket {
    pub fn new(n: usize) -> Self {
        Self(Arc::new(AtomicUsize::new(0)), n)
    }

    pub fn next(&self) -> Option<usize> {
        let i = self.0.fetch_add(1, Ordering::Relaxed);
        (i < self.1).then_some(i)
    }
}

/// The `backlog` workload: for 10,000 and then 1,000,000 queued jobs, `fill_and_drain(queued,
/// measured)` fills a queue and returns the time to drain the first `measured` of them. The
/// 10,000-queued drain lasts well under a second, so it runs [`SHORT_RUNS`] times and reports
/// the median (with single runs, the 1,000,000-queued figure came to 0.64–1.51 of it).
pub async fn backlog(
    mut fill_and_drain: impl AsyncFnMut(usize, usize) -> anyhow::Result<Duration>,
) -> anyhow::Result<Vec<crate::Measurement>> {
    let mut out = Vec::new();
    for queued in [10_000usize, 1_000_000] {
        let measured = queued.min(50_000);
        let runs = if queued == 10_000 { SHORT_RUNS } else { 1 };
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            times.push(fill_and_drain(queued, measured).await?);
        }
        times.sort();
        let mut m = crate::Measurement::new("backlog", measured, times[runs / 2]);
        m.extra = Some(format!("queued={queued} runs={runs}"));
        out.push(m);
    }
    Ok(out)
}

/// How many times `backlog` drains its short (10,000-queued) case.
const SHORT_RUNS: usize = 5;

/// Calls `enqueue` `total` times at `rate` per second, each call in its own task so a slow
/// insert does not delay the schedule.
pub async fn offer_load<F, Fut>(rate: u64, total: usize, enqueue: F) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
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
