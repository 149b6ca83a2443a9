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

/// How `latency` offers its load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Load {
    /// Every call in its own task at its scheduled time, whatever the calls before it are
    /// doing: a stall of the server delays every job offered during it, and each one counts.
    Open,
    /// One caller, one call at a time, each started at its scheduled time or at once when
    /// behind (the producer of graphile-worker's harness): a stall delays the one call in
    /// flight, and the jobs due during it are stamped only when they are finally offered.
    Closed,
}

/// Calls `enqueue` `total` times at `rate` per second, as `load` says.
pub async fn offer_load<F, Fut>(
    load: Load,
    rate: u64,
    total: usize,
    enqueue: F,
) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    match load {
        Load::Open => {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut tasks = Vec::with_capacity(total);
            for _ in 0..total {
                tick.tick().await;
                tasks.push(tokio::spawn(enqueue()));
            }
            for t in tasks {
                t.await??;
            }
        }
        Load::Closed => {
            let start = tokio::time::Instant::now();
            for k in 0..total {
                tokio::time::sleep_until(start + interval * k as u32).await;
                enqueue().await?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts calls, the most that were ever in flight at once, and when each started.
    #[derive(Clone, Default)]
    struct InFlight {
        now: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
        starts: Arc<Mutex<Vec<Instant>>>,
    }

    impl InFlight {
        /// A call that returns when `hold` does.
        async fn call(self, hold: impl Future<Output = ()>) -> anyhow::Result<()> {
            self.starts.lock().unwrap().push(Instant::now());
            let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(n, Ordering::SeqCst);
            hold.await;
            self.now.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        }

        /// Every call was made, and none before its time on the schedule (the k-th start at
        /// least k intervals after `t0`: a lower bound, which a loaded machine cannot break).
        fn assert_on_schedule(&self, t0: Instant, calls: usize, interval: Duration) {
            let mut starts = self.starts.lock().unwrap().clone();
            assert_eq!(starts.len(), calls);
            starts.sort();
            for (k, at) in starts.iter().enumerate() {
                assert!(*at >= t0 + interval * k as u32, "call {k} started early");
            }
        }
    }

    #[tokio::test]
    async fn an_open_load_sends_every_call_at_its_time_even_while_earlier_ones_hang() {
        // Each call waits until all five are in flight: only an open load can finish.
        let (f, hold) = (InFlight::default(), Arc::new(tokio::sync::Barrier::new(5)));
        let t0 = Instant::now();
        let run = offer_load(Load::Open, 100, 5, || {
            let hold = hold.clone();
            f.clone().call(async move {
                hold.wait().await;
            })
        });
        tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .expect("an open load waited for earlier calls")
            .unwrap();
        assert_eq!(f.most.load(Ordering::SeqCst), 5);
        f.assert_on_schedule(t0, 5, Duration::from_millis(10));
    }

    #[tokio::test]
    async fn a_closed_load_has_one_call_in_flight_and_makes_every_call() {
        // Each call outlasts the schedule's interval tenfold: an open load would overlap them.
        let f = InFlight::default();
        offer_load(Load::Closed, 1000, 50, || {
            f.clone()
                .call(tokio::time::sleep(Duration::from_millis(10)))
        })
        .await
        .unwrap();
        assert_eq!(f.most.load(Ordering::SeqCst), 1);
        assert_eq!(f.starts.lock().unwrap().len(), 50);
    }

    #[tokio::test]
    async fn a_closed_load_of_quick_calls_keeps_to_its_rate() {
        let f = InFlight::default();
        let t0 = Instant::now();
        offer_load(Load::Closed, 200, 20, || f.clone().call(async {}))
            .await
            .unwrap();
        f.assert_on_schedule(t0, 20, Duration::from_millis(5));
    }
}
