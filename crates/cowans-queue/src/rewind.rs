//! When a producer drops its claim cursor on a poll tick.
//!
//! The tick's rewind is the safety net for jobs that landed behind the cursor without a
//! notification saying so. But a claim from the head steps over every dead index entry before
//! the cursor, and while a snapshot pins them (a session idle in transaction, a long report)
//! they cannot even be marked dead: the walk visits the heap for each, grows with every job
//! claimed, and soon costs more than the claims it protects (the producer claims nothing while
//! it runs). So the tick rewinds every poll interval while head claims cost about what other
//! claims cost, and backs off (doubling, at most [`MAX_EVERY`]) while they cost far more.

use std::time::Duration;

use tokio::time::Instant;

/// The longest a tick-driven rewind is put off.
pub(crate) const MAX_EVERY: Duration = Duration::from_secs(30);

pub(crate) struct Rewinds {
    base: Duration,
    every: Duration,
    next: Instant,
}

impl Rewinds {
    pub(crate) fn new(poll: Duration, now: Instant) -> Self {
        Self {
            base: poll,
            every: poll,
            next: now,
        }
    }

    /// Whether a poll tick at `now` should drop the cursor.
    pub(crate) fn due(&self, now: Instant) -> bool {
        now >= self.next
    }

    /// A claim from the head took `took`, where claims usually take `usual`.
    pub(crate) fn head_claimed(&mut self, now: Instant, took: Duration, usual: Duration) {
        let expensive = took > usual * 4 + Duration::from_millis(2);
        self.every = if expensive {
            (self.every * 2).min(MAX_EVERY.max(self.base))
        } else {
            self.base
        };
        self.next = now + self.every;
    }

    #[cfg(test)]
    pub(crate) fn every(&self) -> Duration {
        self.every
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expensive_head_claims_back_off_and_cheap_ones_restore_the_poll_interval() {
        let t0 = Instant::now();
        let poll = Duration::from_secs(1);
        let usual = Duration::from_millis(1);
        let mut r = Rewinds::new(poll, t0);
        assert!(r.due(t0));
        r.head_claimed(t0, Duration::from_millis(2), usual);
        assert_eq!(r.every(), poll, "as cheap as any claim");
        assert!(!r.due(t0 + poll / 2) && r.due(t0 + poll));
        for _ in 0..10 {
            r.head_claimed(t0, Duration::from_millis(800), usual);
        }
        assert_eq!(r.every(), MAX_EVERY);
        assert!(!r.due(t0 + MAX_EVERY / 2));
        r.head_claimed(t0, Duration::from_millis(1), usual);
        assert_eq!(r.every(), poll);
    }
}
