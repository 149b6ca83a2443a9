//! Pacing from `throttleStatus`: before sending, wait until the bucket should hold the requested
//! points; learn the bucket from every response. The bucket is shared through [`CostBucket`]
//! so every worker of a shop paces against the same budget (in-process now; Redis later).

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::ThrottleStatus;

pub trait CostBucket: Send + Sync {
    /// Reserves `requested` points; returns how long to wait before sending.
    fn reserve(&self, requested: f64) -> Duration;
    /// A response for a request that reserved `requested` arrived with this status (or none).
    fn settle(&self, requested: f64, status: Option<ThrottleStatus>);
}

#[derive(Debug)]
struct State {
    max: f64,
    restore: f64,
    /// Points available at `at`, minus what in-flight requests reserved.
    available: f64,
    at: Instant,
    in_flight: f64,
}

/// A bucket for the callers of one process.
#[derive(Debug, Default)]
pub struct LocalBucket {
    state: Mutex<Option<State>>,
}

impl LocalBucket {
    pub fn new() -> Self {
        Self::default()
    }
}

impl CostBucket for LocalBucket {
    fn reserve(&self, requested: f64) -> Duration {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let Some(s) = guard.as_mut() else {
            return Duration::ZERO; // nothing learnt yet: the first response teaches us
        };
        let now = Instant::now();
        let refill = now.saturating_duration_since(s.at).as_secs_f64() * s.restore;
        s.available = (s.available + refill).min(s.max);
        s.at = now;
        s.in_flight += requested;
        let wait = if s.available >= requested || s.restore <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((requested - s.available) / s.restore)
        };
        // The points are spent now (or when the wait ends, which the refill accounts for).
        s.available -= requested;
        wait
    }

    fn settle(&self, requested: f64, status: Option<ThrottleStatus>) {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let in_flight = guard
            .as_ref()
            .map_or(0.0, |s| (s.in_flight - requested).max(0.0));
        if let Some(t) = status {
            // The server's word, minus what other in-flight requests will still take.
            *guard = Some(State {
                max: t.maximum_available,
                restore: t.restore_rate,
                available: t.currently_available - in_flight,
                at: Instant::now(),
                in_flight,
            });
        } else if let Some(s) = guard.as_mut() {
            s.in_flight = in_flight;
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
        assert_eq!(b.reserve(50.0), Duration::ZERO, "unknown bucket: go");
        b.settle(50.0, Some(status(30.0)));
        let wait = b.reserve(80.0);
        assert!((wait.as_secs_f64() - 0.5).abs() < 0.01, "{wait:?}");
        // A second caller queues behind the first one's reservation.
        let wait = b.reserve(100.0);
        assert!((wait.as_secs_f64() - 1.5).abs() < 0.01, "{wait:?}");
    }
}
