//! A claimed job and everything that ends or extends its attempt: the lease that fences acks,
//! failures and how they settled, promotions and rescues.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::{JobId, JobState};

/// A job this worker now holds. `lease` must accompany every ack.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: i64,
    pub queue: String,
    pub kind: String,
    /// The payload as JSON text: decoded once, straight into the handler's type.
    pub args: String,
    pub priority: i16,
    /// This attempt, 1-based (the claim counted it).
    pub attempt: i32,
    pub max_attempts: i32,
    /// The fencing token of this claim: no two claims of any job share one.
    pub lease: i64,
    /// When the job became runnable; `attempted_at - run_at` is its queue wait.
    pub run_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub attempted_at: DateTime<Utc>,
    /// The job's key for queues rate-limited per key.
    pub rate_key: Option<String>,
}

impl ClaimedJob {
    pub fn job_id(&self) -> JobId {
        JobId(self.id)
    }

    /// What acks and releases of this claim are fenced by.
    pub fn lease_ref(&self) -> LeaseRef {
        LeaseRef {
            id: self.job_id(),
            lease: self.lease,
        }
    }

    /// The cursor that continues after this job.
    pub fn cursor(&self) -> ClaimCursor {
        ClaimCursor {
            priority: self.priority,
            run_at: self.run_at,
            id: self.id,
        }
    }
}

/// Where the previous claim of a producer stopped, in claim order (priority, then run_at, then
/// id). A driver may use it to start the next claim there (Postgres does, to skip the index
/// entries of jobs claimed since the last vacuum) or ignore it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimCursor {
    pub priority: i16,
    pub run_at: DateTime<Utc>,
    pub id: i64,
}

/// A claim as acks see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseRef {
    pub id: JobId,
    pub lease: i64,
}

/// A failed attempt and what to do about it, decided by the worker from the retry policy.
#[derive(Debug, Clone)]
pub struct Failed {
    pub lease: LeaseRef,
    pub attempt: i32,
    pub error: String,
    /// `Some(delay)`: retry after the delay (zero = runnable at once). `None`: dead-letter.
    pub retry_in: Option<Duration>,
}

impl Failed {
    /// The state the job moves to.
    pub fn next_state(&self) -> JobState {
        match self.retry_in {
            None => JobState::Dead,
            Some(d) if d.is_zero() => JobState::Available,
            Some(_) => JobState::Scheduled,
        }
    }
}

/// A failed attempt as recorded: the job's new state and when it runs next.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    pub id: JobId,
    pub queue: String,
    pub state: JobState,
    pub run_at: DateTime<Utc>,
}

/// The result of a promotion pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Promotion {
    /// Scheduled jobs that became available.
    pub promoted: u64,
    /// The earliest `run_at` still in the future among these queues, if any.
    pub next_due: Option<DateTime<Utc>>,
}

/// What one rescue pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rescued {
    /// `(queue, kind)` of jobs made available again (the lost attempt counts).
    pub retried: Vec<(String, String)>,
    /// `(queue, kind)` of jobs whose lost attempt was their last: now dead letters.
    pub dead: Vec<(String, String)>,
    /// Those dead letters' ids, in the same order.
    pub dead_ids: Vec<crate::JobId>,
}

/// The error recorded on a job whose lease expired.
pub const LEASE_EXPIRED: &str =
    "lease expired: the worker stopped heart-beating while running this job";
