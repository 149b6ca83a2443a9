//! How far a producer claims ahead of its free slots.
//!
//! A claim statement costs a round trip and a fixed share of server time, so fast handlers
//! (thousands of jobs per second) are fed best by large claims; but a job claimed ahead is leased
//! to this process and cannot run elsewhere, so slow handlers must not hoard. The producer claims
//! ahead what its handlers would finish in two claim round trips — `concurrency / mean run time
//! × 2 × claim time`, from the run times of recent attempts (not from when they happened to
//! finish: slow jobs finish in bursts) — at most the queue's `prefetch`, and nothing under a
//! fleet-wide limit (whose permits and tokens are too scarce to park in a buffer).

use std::time::Duration;

/// Smoothed claim time and handler run time.
pub(crate) struct Pace {
    max: usize,
    /// Smoothed duration of one claim, seconds.
    claim_secs: f64,
    /// Smoothed mean run time of an attempt, seconds (`None`: none ran yet).
    run_secs: Option<f64>,
    /// Attempts and their summed run time (µs) already accounted for.
    seen: (u64, u64),
}

impl Pace {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            claim_secs: 0.0,
            run_secs: None,
            seen: (0, 0),
        }
    }

    /// One claim took `took`.
    pub(crate) fn claimed(&mut self, took: Duration) {
        let t = took.as_secs_f64();
        self.claim_secs = if self.claim_secs == 0.0 {
            t
        } else {
            0.8 * self.claim_secs + 0.2 * t
        };
    }

    /// The smoothed duration of a claim.
    pub(crate) fn claim_time(&self) -> Duration {
        Duration::from_secs_f64(self.claim_secs)
    }

    /// The claim-ahead for now, given the attempts settled since start and their summed run
    /// time in µs, and the queue's concurrency.
    pub(crate) fn ahead(&mut self, (ran, ran_us): (u64, u64), concurrency: usize) -> usize {
        if self.max == 0 {
            return 0;
        }
        let (n, us) = (
            ran.saturating_sub(self.seen.0),
            ran_us.saturating_sub(self.seen.1),
        );
        if n > 0 {
            let mean = us as f64 / n as f64 / 1e6;
            self.run_secs = Some(match self.run_secs {
                None => mean,
                Some(r) => 0.5 * r + 0.5 * mean,
            });
            self.seen = (ran, ran_us);
        }
        let Some(run) = self.run_secs else {
            return 0;
        };
        // Handlers of ~0 µs: as many as allowed.
        let rate = concurrency as f64 / run.max(1e-6);
        let want = (2.0 * rate * self.claim_secs).floor();
        if want >= self.max as f64 {
            self.max
        } else {
            want as usize
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` attempts of `run` each, claims of `claim`, at `concurrency`.
    fn settle(
        pace: &mut Pace,
        n: u64,
        run: Duration,
        claim: Duration,
        concurrency: usize,
    ) -> usize {
        let mut ahead = 0;
        let (mut ran, mut us) = (0, 0);
        for _ in 0..n {
            pace.claimed(claim);
            ran += 1;
            us += run.as_micros() as u64;
            ahead = pace.ahead((ran, us), concurrency);
        }
        ahead
    }

    #[test]
    fn fast_handlers_are_fed_ahead_up_to_the_cap() {
        // 50 handlers of 2.5 ms: 20,000 jobs/s; 2 ms claims: 80 jobs in two claims' time.
        let mut pace = Pace::new(500);
        let ahead = settle(
            &mut pace,
            50,
            Duration::from_micros(2_500),
            Duration::from_millis(2),
            50,
        );
        assert_eq!(ahead, 80);
        let mut capped = Pace::new(50);
        assert_eq!(
            settle(
                &mut capped,
                50,
                Duration::ZERO,
                Duration::from_millis(2),
                50
            ),
            50
        );
    }

    #[test]
    fn slow_handlers_are_not_fed_ahead_even_behind_slow_claims() {
        // Two one-second jobs at a time, 100 ms claims: 0.4 of a job in two claims' time.
        let mut pace = Pace::new(500);
        let ahead = settle(
            &mut pace,
            10,
            Duration::from_secs(1),
            Duration::from_millis(100),
            2,
        );
        assert_eq!(ahead, 0);
    }

    #[test]
    fn nothing_ahead_before_anything_ran_or_with_no_prefetch() {
        assert_eq!(Pace::new(500).ahead((0, 0), 50), 0);
        let mut off = Pace::new(0);
        assert_eq!(
            settle(&mut off, 10, Duration::ZERO, Duration::from_millis(5), 50),
            0
        );
    }

    #[test]
    fn the_pace_follows_a_slowdown() {
        let mut pace = Pace::new(500);
        let fast = settle(
            &mut pace,
            100,
            Duration::from_micros(10),
            Duration::from_millis(2),
            10,
        );
        assert_eq!(fast, 500);
        let (mut ran, mut us) = (100, 1_000);
        let mut ahead = fast;
        for _ in 0..20 {
            ran += 1;
            us += 2_000_000; // two seconds each
            ahead = pace.ahead((ran, us), 10);
        }
        assert_eq!(ahead, 0, "a slowed queue stops claiming ahead");
    }
}
