//! The fleet's shared view of queues: control rows (pause, limits), worker registrations,
//! leadership, retention and the per-queue summary.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A rate limit: `jobs` per `period`, for the whole queue or per job `rate_key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub jobs: u32,
    pub period: Duration,
    pub by_key: bool,
}

impl RateLimit {
    /// A rate from its fields as the API and the console take them: both or neither of
    /// `rate_jobs` and `rate_period_ms` (neither: no rate). Ranges are [`Self::check_limits`]'.
    pub fn from_fields(
        jobs: Option<u32>,
        period_ms: Option<u64>,
        by_key: bool,
    ) -> super::QueueResult<Option<RateLimit>> {
        match (jobs, period_ms) {
            (Some(jobs), Some(ms)) => Ok(Some(RateLimit {
                jobs,
                period: Duration::from_millis(ms),
                by_key,
            })),
            (None, None) => Ok(None),
            _ => Err(super::QueueError::invalid(
                "rate_period_ms",
                "rate_jobs and rate_period_ms go together",
            )),
        }
    }

    /// Checks a queue's limits as every backend stores them: a concurrency of 1 to `i32::MAX`,
    /// a rate of 1 to `i32::MAX` jobs per 1 ms to a year (a longer period is a typo).
    pub fn check_limits(
        concurrency: Option<u32>,
        rate: Option<RateLimit>,
    ) -> super::QueueResult<()> {
        const MAX: u32 = i32::MAX as u32;
        if let Some(c) = concurrency
            && !(1..=MAX).contains(&c)
        {
            return Err(super::QueueError::invalid(
                "concurrency_limit",
                format!("is {c}; it must be 1 to {MAX}"),
            ));
        }
        if let Some(r) = rate {
            if !(1..=MAX).contains(&r.jobs) {
                return Err(super::QueueError::invalid(
                    "rate_jobs",
                    format!("is {}; it must be 1 to {MAX}", r.jobs),
                ));
            }
            if r.period.is_zero() || r.period > Duration::from_secs(366 * 24 * 3600) {
                return Err(super::QueueError::invalid(
                    "rate_period_ms",
                    format!("is {} ms; it must be 1 ms to a year", r.period.as_millis()),
                ));
            }
        }
        Ok(())
    }
}

/// A queue's cluster-wide control row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueControl {
    pub paused: bool,
    /// Most jobs running at once across the fleet.
    pub concurrency_limit: Option<u32>,
    pub rate: Option<RateLimit>,
}

/// What a worker process says about itself when it starts.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WorkerInfo {
    pub id: Uuid,
    pub hostname: String,
    pub pid: u32,
    pub queues: Vec<String>,
    pub concurrency: u32,
}

/// Proof of leadership: the term changes whenever another process takes the role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderTerm(pub i64);

/// How long finished jobs are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Completed and cancelled jobs (zero: pruned at the next pass).
    pub finished: Duration,
    /// Dead letters (and finished batches).
    pub dead: Duration,
}

/// What one prune pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub finished: u64,
    pub dead: u64,
    pub batches: u64,
}

/// One queue as operators see it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueStats {
    pub queue: String,
    pub available: i64,
    pub scheduled: i64,
    pub running: i64,
    pub completed: i64,
    pub cancelled: i64,
    pub dead: i64,
    pub oldest_available_at: Option<DateTime<Utc>>,
    /// Seconds the oldest available job has waited (0 when none waits).
    pub oldest_available_age_secs: f64,
    pub completed_last_minute: i64,
    pub paused: bool,
    /// Live worker processes consuming the queue, and their summed concurrency.
    pub workers: i64,
    pub worker_concurrency: i64,
    pub refreshed_at: DateTime<Utc>,
}
