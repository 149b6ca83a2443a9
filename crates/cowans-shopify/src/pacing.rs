//! Pacing from `throttleStatus`: before sending, wait until the bucket should hold the requested
//! points; learn the bucket from every response. The bucket is shared through [`CostBucket`]
//! so every caller of a shop paces against the same budget: [`LocalBucket`] within a process;
//! the catalog's Postgres bucket across a fleet of processes.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use futures::future::{BoxFuture, FutureExt, ready};

use crate::ThrottleStatus;

/// A shop's cost bucket as its callers see it. Implementations that cannot reach their shared
/// state answer "no wait" (Shopify's own throttling still protects the shop) rather than fail
/// the call.
pub trait CostBucket: Send + Sync {
    /// Reserves `requested` points; returns how long to wait before sending.
    fn reserve(&self, requested: f64) -> BoxFuture<'_, Duration>;
    /// A response for a request that reserved `requested` arrived with this status (or none).
    fn settle(&self, requested: f64, status: Option<ThrottleStatus>) -> BoxFuture<'_, ()>;
}

#[derive(Debug)]
struct Learnt {
    max: f64,
    restore: f64,
    /// Points available at `at`, minus what in-flight requests reserved.
    available: f64,
    at: Instant,
}

#[derive(Debug, Default)]
struct State {
    /// `None` until the first response teaches the bucket.
    learnt: Option<Learnt>,
    /// Points reserved by requests not answered yet, counted from the very first request so
    /// answers to early (unpaced) requests do not make the estimate drift.
    in_flight: f64,
}

/// A bucket for the callers of one process.
#[derive(Debug, Default)]
pub struct LocalBucket {
    state: Mutex<State>,
}

impl CostBucket for LocalBucket {
    fn reserve(&self, requested: f64) -> BoxFuture<'_, Duration> {
        ready(self.reserve_now(requested)).boxed()
    }

    fn settle(&self, requested: f64, status: Option<ThrottleStatus>) -> BoxFuture<'_, ()> {
        self.settle_now(requested, status);
        ready(()).boxed()
    }
}

impl LocalBucket {
    pub fn new() -> Self {
        Self::default()
    }

    fn reserve_now(&self, requested: f64) -> Duration {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        guard.in_flight += requested;
        let Some(s) = guard.learnt.as_mut() else {
            return Duration::ZERO; // nothing learnt yet: the first response teaches us
        };
        let now = Instant::now();
        let refill = now.saturating_duration_since(s.at).as_secs_f64() * s.restore;
        s.available = (s.available + refill).min(s.max);
        s.at = now;
        let wait = if s.available >= requested || s.restore <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((requested - s.available) / s.restore)
        };
        // The points are spent now (or when the wait ends, which the refill accounts for).
        s.available -= requested;
        wait
    }

    fn settle_now(&self, requested: f64, status: Option<ThrottleStatus>) {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        guard.in_flight = (guard.in_flight - requested).max(0.0);
        if let Some(t) = status {
            // The server's word, minus what other in-flight requests will still take.
            guard.learnt = Some(Learnt {
                max: t.maximum_available,
                restore: t.restore_rate,
                available: t.currently_available - guard.in_flight,
                at: Instant::now(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(available: f64) -> ThrottleStatus {
        ThrottleStatus {
            maximum_available: 2000.0,
            currently_available: available,
            restore_rate: 100.0,
        }
    }

    #[test]
    fn waits_for_the_missing_points_at_the_restore_rate() {
        let b = LocalBucket::new();
        assert_eq!(b.reserve_now(50.0), Duration::ZERO, "unknown bucket: go");
        assert_eq!(b.reserve_now(20.0), Duration::ZERO);
        // The first answer: the other request (20) is still in flight.
        b.settle_now(50.0, Some(status(50.0)));
        b.settle_now(20.0, Some(status(30.0)));
        let wait = b.reserve_now(80.0);
        assert!((wait.as_secs_f64() - 0.5).abs() < 0.01, "{wait:?}");
        // A second caller queues behind the first one's reservation.
        let wait = b.reserve_now(100.0);
        assert!((wait.as_secs_f64() - 1.5).abs() < 0.01, "{wait:?}");
    }
}
