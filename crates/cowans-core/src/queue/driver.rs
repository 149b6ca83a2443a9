//! The seam between the engine and a queue backend. The engine (producers, completer,
//! heartbeat, rescuer, promoter, leader election, wake-ups, maintenance) calls nothing else, so a
//! backend that implements this trait and passes the conformance suite
//! (`tests/conformance/`) runs every queue's jobs with the same guarantees:
//!
//! - **fencing**: every call that ends or extends an attempt names the claim's lease and does
//!   nothing to a job whose lease has changed (rescued, cancelled, re-claimed);
//! - **at-least-once**: a claimed job is either acked, handed back, or rescued once its lease
//!   expires; nothing acknowledged as enqueued is lost;
//! - **claim order**: highest priority first, then oldest `run_at`, then enqueue order.
//!
//! The admin primitives here (`cancel`, `redrive`, `set_paused`) change state without an actor:
//! people and programs reach them only through the engine's `FrontDoor`, which records who did
//! what (audit entry, event, metric); only the conformance suite calls them directly.
//!
//! Powers only one backend has (Postgres: enqueue or complete inside the caller's transaction)
//! are that backend's own API, not part of this trait.

use std::{collections::HashMap, sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::RateLimit;
use super::{
    ClaimCursor, ClaimedJob, Enqueued, Failed, LeaderTerm, LeaseRef, NewJob, Promotion,
    QueueControl, QueueResult, QueueStats, Rescued, Retention, Settled, WorkerInfo, fleet::Pruned,
};
use crate::{AttemptError, Event, JobId, JobState, QueueName, Wakeup, event::BatchCounts};

/// Where a driver delivers wake-ups.
pub trait WakeupSink: Send + Sync {
    /// Something happened that a producer (or a running handler) should look at.
    fn wake(&self, wakeup: Wakeup);
    /// Wake-ups may have been lost (a reconnect): every producer should look again.
    fn missed(&self);
}

/// A queue backend. Object-safe: the engine holds an `Arc<dyn Driver>`.
#[async_trait]
pub trait Driver: Send + Sync + 'static {
    /// `"postgres"`, `"redis"`: for logs and metrics.
    fn backend(&self) -> &'static str;

    /// The backend storing `queue` (a driver of one backend stores every queue it is given;
    /// the routing driver answers per queue).
    fn backend_of(&self, _queue: &str) -> super::Backend {
        if self.backend() == "redis" {
            super::Backend::Redis
        } else {
            super::Backend::Postgres
        }
    }

    /// Answers when the backend is reachable (readiness checks); the Postgres driver's is the
    /// migration check the ops endpoint already makes.
    async fn ping(&self) -> QueueResult<()> {
        Ok(())
    }

    /// Inserts jobs (all or none), in order; a job whose unique key is held comes back as a
    /// duplicate with the holder's id. Producers of their queues are woken.
    async fn enqueue(&self, jobs: &[NewJob]) -> QueueResult<Vec<Enqueued>>;

    /// Claims up to `limit` runnable jobs of `queue` for `worker`, each under a new lease valid
    /// for `lease_ttl`, in claim order. A paused queue gives nothing. `after` is a hint (see
    /// [`ClaimCursor`]); a driver that honours it must still find jobs that sort before it on a
    /// call without one.
    async fn claim(
        &self,
        queue: &QueueName,
        limit: usize,
        worker: Uuid,
        lease_ttl: Duration,
        after: Option<&ClaimCursor>,
    ) -> QueueResult<Vec<ClaimedJob>>;

    /// Completes the jobs still held under these leases; returns their ids. `delete`: finished
    /// jobs are kept for no time, so a completed job nothing refers to may be dropped at once.
    async fn complete(&self, refs: &[LeaseRef], delete: bool) -> QueueResult<Vec<JobId>>;

    /// Records failed attempts (retry after a delay, at once, or dead letter, the error appended
    /// to the job's history); returns those still held.
    async fn settle_failures(&self, worker: Uuid, failed: &[Failed]) -> QueueResult<Vec<Settled>>;

    /// Hands jobs back as available without counting the attempt; returns those still held.
    async fn release(&self, refs: &[LeaseRef]) -> QueueResult<Vec<JobId>>;

    /// Hands claimed jobs back to run at the given times without counting the attempt (a rate
    /// limit held them back); returns the ids still held.
    async fn defer(&self, jobs: &[(LeaseRef, DateTime<Utc>)]) -> QueueResult<Vec<i64>>;

    /// Makes due scheduled jobs of `queues` available (at most `limit`) and says when the next
    /// one falls due.
    async fn promote_due(&self, queues: &[QueueName], limit: i64) -> QueueResult<Promotion>;

    /// The queue's control row (the default when it has none).
    async fn queue_control(&self, queue: &str) -> QueueResult<QueueControl>;

    /// Pauses or resumes a queue (producers are woken to read it again).
    async fn set_paused(&self, queue: &QueueName, paused: bool) -> QueueResult<()>;

    /// Sets (or with `None`, removes) a queue's fleet-wide limits; `false` when they were
    /// already in force (nothing written or announced). Producers are woken to read them.
    async fn set_limits(
        &self,
        queue: &QueueName,
        concurrency: Option<u32>,
        rate: Option<RateLimit>,
    ) -> QueueResult<bool>;

    /// Marks `worker` alive and extends the leases it still holds; returns the held ids (a job
    /// missing from the answer was rescued or cancelled meanwhile).
    async fn heartbeat(
        &self,
        worker: &WorkerInfo,
        running: &[LeaseRef],
        lease_ttl: Duration,
    ) -> QueueResult<Vec<JobId>>;

    /// Turns up to `limit` expired leases into retries (runnable at once, their place kept) or
    /// dead letters (the lost attempt was the last), recording [`super::LEASE_EXPIRED`].
    async fn rescue_expired(&self, limit: i64) -> QueueResult<Rescued>;

    async fn register_worker(&self, info: &WorkerInfo) -> QueueResult<()>;
    async fn deregister_worker(&self, id: Uuid) -> QueueResult<()>;
    /// Forgets workers not seen for `older_than`; returns how many.
    async fn forget_stale_workers(&self, older_than: Duration) -> QueueResult<u64>;

    /// Takes or renews `role` for `ttl`; `Some(term)` if `holder` leads now.
    async fn try_lead(
        &self,
        role: &str,
        holder: Uuid,
        ttl: Duration,
    ) -> QueueResult<Option<LeaderTerm>>;
    async fn resign_leader(&self, role: &str, holder: Uuid) -> QueueResult<()>;

    /// Deletes at most `limit` finished jobs and `limit` dead letters past their window.
    async fn prune(&self, retention: Retention, limit: i64) -> QueueResult<Pruned>;

    /// Recomputes the queue summary (leader only; cheap reads come from [`Driver::queue_stats`]).
    async fn refresh_queue_stats(&self) -> QueueResult<()>;

    /// The summary of every queue (or of one), with live workers seen within `live_within`.
    async fn queue_stats(
        &self,
        queue: Option<&str>,
        live_within: Duration,
    ) -> QueueResult<Vec<QueueStats>>;

    /// Counts of a queue's jobs by state (a state without jobs may be left out or be 0).
    async fn count_by_state(&self, queue: &str) -> QueueResult<Vec<(JobState, i64)>>;

    /// A job as stored, if it exists.
    async fn job(&self, id: JobId) -> QueueResult<Option<JobRecord>>;

    /// Cancels a job that has not finished (a running one's handler is told to stop, and its
    /// result is fenced off); returns the state it was in. `NotFound` without such a job,
    /// `Conflict` naming its state when it has already finished.
    async fn cancel(&self, id: JobId) -> QueueResult<JobState>;

    /// A page of `queue`'s jobs in id order after `after`, of `state` and `kind` when given.
    async fn list_jobs(
        &self,
        queue: &str,
        state: Option<JobState>,
        kind: Option<&str>,
        after: Option<JobId>,
        limit: i64,
    ) -> QueueResult<Vec<JobRecord>>;

    /// Deletes `queue`'s dead letters (of `kind`, if given), but only if there are exactly
    /// `expected` of them: `Conflict` with `{expected, actual}` otherwise, nothing deleted.
    async fn purge_dead(&self, queue: &str, kind: Option<&str>, expected: u64) -> QueueResult<u64>;

    /// Makes dead letters available again with a fresh attempt count; returns those moved.
    async fn redrive(&self, ids: &[JobId]) -> QueueResult<Vec<JobId>>;

    /// Runs a dead or cancelled job again from its first attempt, its error history kept.
    /// `NotFound` without such a job; `Conflict` when it is in another state or a live job
    /// holds its unique key.
    async fn retry(&self, id: JobId) -> QueueResult<()>;

    /// For each of `batches` (jobs enqueued with [`NewJob::batch_id`]), its jobs in `queue` by
    /// state, plus `failed` (jobs waiting for a retry, also counted as available or
    /// scheduled). Jobs deleted after they finished (completion without retention, pruning,
    /// purges) still count in the state they ended in until [`Driver::close_batches`].
    async fn count_batches(
        &self,
        queue: &str,
        batches: &[i64],
    ) -> QueueResult<HashMap<i64, BatchCounts>>;

    /// The ids of a batch's stored jobs in `queue`.
    async fn batch_jobs(&self, queue: &str, batch: i64) -> QueueResult<Vec<JobId>>;

    /// Forgets what the backend keeps to count finished `batches` (their jobs' final states);
    /// called once they have finished.
    async fn close_batches(&self, _queue: &str, _batches: &[i64]) -> QueueResult<()> {
        Ok(())
    }

    /// Publishes `events` to the fleet's live streams (the API's SSE and WebSocket clients), on
    /// a backend that carries them: Postgres does (`cowans_events`); the default does nothing.
    /// Backends that cannot announce their own transitions leave it to the caller (see
    /// `Backends`, which announces Redis jobs' events on Postgres).
    async fn announce(&self, _events: &[Event]) -> QueueResult<()> {
        Ok(())
    }

    /// Delivers wake-ups to `sink` until the returned future is dropped. Reconnects on its own
    /// (calling [`WakeupSink::missed`] after each reconnect).
    async fn listen(&self, sink: Arc<dyn WakeupSink>);
}

/// A job as stored, on any backend: for admin views, the API and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: JobId,
    pub queue: String,
    pub kind: String,
    pub args: serde_json::Value,
    pub state: JobState,
    pub priority: i16,
    pub attempt: i32,
    pub max_attempts: i32,
    pub run_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub attempted_at: Option<DateTime<Utc>>,
    pub finalized_at: Option<DateTime<Utc>>,
    /// The fencing token of the last claim.
    pub lease: Option<i64>,
    /// The worker of the last claim.
    pub worker_id: Option<Uuid>,
    /// Each failed attempt's error, oldest first.
    pub errors: Vec<AttemptError>,
    pub unique_key: Option<String>,
    pub batch_id: Option<i64>,
    pub rate_key: Option<String>,
}
