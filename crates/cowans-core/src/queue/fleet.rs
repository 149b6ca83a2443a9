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
