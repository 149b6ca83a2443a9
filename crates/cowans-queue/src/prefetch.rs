//! How far a producer claims ahead of its free slots.
//!
//! A claim statement costs a round trip and a fixed share of server time, so fast handlers
//! (thousands of jobs per second) are fed best by large claims; but a job claimed ahead is leased
//! to this process and cannot run elsewhere, so slow handlers must not hoard. The producer claims
//! ahead what its handlers finish in two claim round trips (the pace measured here), at most the
//! queue's `prefetch`, and nothing under a fleet-wide limit (whose permits and tokens are too
//! scarce to park in a buffer).

use std::time::Duration;

use tokio::time::Instant;

/// Shortest interval over which the handlers' pace is measured.
const WINDOW: Duration = Duration::from_millis(20);

pub(crate) struct Pace {
    max: usize,
    /// Smoothed duration of one claim, seconds.
    claim_secs: f64,
    /// Smoothed jobs finished per second.
    rate: f64,
    mark: Option<(Instant, u64)>,
}

impl Pace {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            claim_secs: 0.0,
            rate: 0.0,
            mark: None,
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

    /// The claim-ahead for now, given the count of jobs finished since start.
    pub(crate) fn ahead(&mut self, now: Instant, finished: u64) -> usize {
        if self.max == 0 {
            return 0;
        }
        match self.mark {
            None => self.mark = Some((now, finished)),
            Some((at, n)) => {
                let dt = now.duration_since(at);
                if dt >= WINDOW {
                    let r = finished.saturating_sub(n) as f64 / dt.as_secs_f64();
                    // Idle for long: the old pace says nothing any more.
                    self.rate = if dt > WINDOW * 50 {
                        r
                    } else {
                        0.5 * self.rate + 0.5 * r
                    };
                    self.mark = Some((now, finished));
                }
            }
        }
        let want = (2.0 * self.rate * self.claim_secs).round();
        (want as usize).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pace: &mut Pace, jobs_per_s: u64, claim: Duration, steps: u32) -> usize {
        let start = Instant::now();
        let mut ahead = 0;
        for i in 0..=steps {
            pace.claimed(claim);
            let t = WINDOW * i;
            let done = jobs_per_s * t.as_millis() as u64 / 1000;
            ahead = pace.ahead(start + t, done);
        }
        ahead
    }

    #[test]
    fn fast_handlers_are_fed_ahead_up_to_the_cap() {
        // 20,000 jobs/s and 2 ms claims: 80 jobs in two claims' time.
        let mut pace = Pace::new(500);
        assert_eq!(run(&mut pace, 20_000, Duration::from_millis(2), 20), 80);
        let mut capped = Pace::new(50);
        assert_eq!(run(&mut capped, 20_000, Duration::from_millis(2), 20), 50);
    }

    #[test]
    fn slow_handlers_are_not_fed_ahead() {
        // 50 one-second jobs at a time: 50 jobs/s, far less than one per claim.
        let mut pace = Pace::new(500);
        assert_eq!(run(&mut pace, 50, Duration::from_millis(2), 20), 0);
    }

    #[test]
    fn no_prefetch_means_none() {
        let mut pace = Pace::new(0);
        assert_eq!(run(&mut pace, 100_000, Duration::from_millis(5), 20), 0);
    }

    #[test]
    fn the_pace_follows_a_slowdown() {
        let mut pace = Pace::new(500);
        let start = Instant::now();
        pace.claimed(Duration::from_millis(2));
        let mut done = 0;
        let mut ahead = 0;
        for i in 0..=40u32 {
            // Fast for 20 windows, then one job per window.
            done += if i <= 20 { 400 } else { 1 };
            ahead = pace.ahead(start + WINDOW * i, done);
        }
        assert_eq!(ahead, 0, "a slowed queue stops claiming ahead");
    }
}
