//! The drain as the database sees it: the number of recorded effects (each `demo.effect` job
//! records its key and completes in one transaction, so effects = completed jobs), sampled on
//! a cadence, and the recovery figures read from those samples. A sample that fails (the server
//! is down, the connection was terminated) is skipped.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use cowans_store::PgPool;
use tokio::task::JoinHandle;

pub struct Timeline {
    start: Instant,
    samples: Arc<Mutex<Vec<(Duration, u64)>>>,
    latest: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Timeline {
    pub fn start(pool: PgPool, every: Duration) -> Timeline {
        let start = Instant::now();
        let samples = Arc::new(Mutex::new(Vec::new()));
        let latest = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let (samples, latest) = (samples.clone(), latest.clone());
            async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let counted = tokio::time::timeout(every.max(Duration::from_secs(2)), async {
                        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM cowans_demo_effects")
                            .fetch_one(&pool)
                            .await
                    })
                    .await;
                    if let Ok(Ok(n)) = counted {
                        let at = start.elapsed();
                        latest.store(n as u64, Ordering::Relaxed);
                        lock(&samples).push((at, n as u64));
                    }
                }
            }
        });
        Timeline {
            start,
            samples,
            latest,
            task,
        }
    }

    /// Time since the timeline started.
    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// Effects at the last successful sample.
    pub fn latest(&self) -> u64 {
        self.latest.load(Ordering::Relaxed)
    }

    /// A closure reading [`Timeline::latest`] (for a filler or a watch).
    pub fn reader(&self) -> impl Fn() -> usize + Send + Sync + 'static {
        let latest = self.latest.clone();
        move || latest.load(Ordering::Relaxed) as usize
    }

    /// Waits until at least `n` effects are recorded, at most `limit`; false on timeout.
    pub async fn wait_for(&self, n: u64, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while self.latest() < n {
            if Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    /// Effects at the last sample taken at or before `t`.
    pub fn count_at(&self, t: Duration) -> u64 {
        let s = lock(&self.samples);
        s.iter()
            .take_while(|(at, _)| *at <= t)
            .last()
            .map_or(0, |(_, n)| *n)
    }

    /// Mean completions per second between `from` and `to`.
    pub fn rate(&self, from: Duration, to: Duration) -> f64 {
        let secs = to.saturating_sub(from).as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        self.count_at(to).saturating_sub(self.count_at(from)) as f64 / secs
    }

    /// Rates in consecutive windows of `w` from `from` to `to`.
    pub fn windows(&self, from: Duration, to: Duration, w: Duration) -> Vec<f64> {
        let mut out = Vec::new();
        let mut a = from;
        while a + w <= to {
            out.push(self.rate(a, a + w));
            a += w;
        }
        out
    }

    /// How long after `t` the first completion after `t` was seen.
    pub fn first_progress_after(&self, t: Duration) -> Option<Duration> {
        let base = self.count_at(t);
        let s = lock(&self.samples);
        s.iter()
            .find(|(at, n)| *at > t && *n > base)
            .map(|(at, _)| *at - t)
    }

    /// How long after `t` a window of `w` (starting at a sample) first ran at `rate` or more:
    /// the end of that window, relative to `t`.
    pub fn back_to(&self, t: Duration, rate: f64, w: Duration) -> Option<Duration> {
        let starts: Vec<Duration> = lock(&self.samples)
            .iter()
            .map(|(at, _)| *at)
            .filter(|at| *at >= t)
            .collect();
        let last = lock(&self.samples).last().map(|(at, _)| *at)?;
        starts
            .into_iter()
            .take_while(|a| *a + w <= last)
            .find(|a| self.rate(*a, *a + w) >= rate)
            .map(|a| a + w - t)
    }
}

impl Drop for Timeline {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Milliseconds, or `never`.
pub fn ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "never".to_owned(), |d| d.as_millis().to_string())
}
