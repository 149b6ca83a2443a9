//! The Redis backend of the Cowans job queue: [`RedisDriver`] implements
//! [`cowans_core::queue::Driver`] with one Lua script per state transition, so every transition
//! of a queue's jobs is atomic on the server, fenced by the claim's lease like the Postgres
//! driver's statements.
//!
//! # Key layout
//!
//! Every key of one queue shares the hash tag `{<prefix>:q:<queue>}` (written `Q` below), so
//! each per-queue script touches one cluster slot:
//!
//! | key | type | what |
//! | --- | --- | --- |
//! | `Q:job:<id>` | hash | the job: queue, kind, args (JSON text), state, priority, attempt, max_attempts, run_at, created_at, attempted_at, finalized_at (ms since the epoch), lease, worker, unique_key, unique_mask, rate_key, batch_id, errors (JSON array of `{attempt, at (ms), worker, error}`) |
//! | `Q:prios` | zset | the priorities that have available jobs (score = priority) |
//! | `Q:ready:<priority>` | zset | available jobs of one priority, score = run_at ms, member = the id zero-padded to 20 digits (equal run_at: lower id first) |
//! | `Q:sched` | zset | scheduled jobs by run_at ms |
//! | `Q:running` | zset | running jobs by lease expiry ms (the only record of the expiry) |
//! | `Q:done:completed`, `Q:done:cancelled`, `Q:done:dead` | zset | finished jobs by finalized time ms (retention, counts) |
//! | `Q:jobs` | zset | every stored job of the queue, score = its id (listing in id order) |
//! | `Q:batch:<id>`, `Q:batch:<id>:gone` | set, hash | a batch's jobs in this queue; the final states of those deleted since (until the batch is closed) |
//! | `Q:unique` | hash | unique key → the job id holding it (it holds while the job's state is in its stored mask) |
//! | `Q:control` | hash | `paused` (`1`/`0`) |
//! | `Q:lease` | string | the queue's lease counter (fencing tokens) |
//!
//! Global keys share the tag `{<prefix>}`: `{<prefix>}:blocks_seq` (the counter of id blocks),
//! `{<prefix>}:blocks` (hash block → queue: ids come in blocks of 1,024 taken for one queue, so
//! an id names its queue), `{<prefix>}:queues` (set of known queues),
//! `{<prefix>}:workers` (hash id → worker info JSON), `{<prefix>}:workers:seen` (zset of last
//! heartbeat ms), `{<prefix>}:leader:<role>` (the holder, `SET NX PX`) and
//! `{<prefix>}:leader:<role>:term` (hash: term, last holder). Wake-ups are published on the
//! channel `<prefix>:wakeup`.
//!
//! All times (run_at, lease expiry, finalized, worker last seen) come from the server's clock
//! (`TIME` inside the scripts), never the client's.
//!
//! # Durability
//!
//! The driver refuses, at [`RedisDriver::connect`], a server whose `maxmemory-policy` may evict
//! keys (anything but `noeviction`): an evicted job would be lost silently. What survives a crash
//! depends on the server's persistence, which the driver cannot fix:
//!
//! - `appendonly yes` with `appendfsync always`: an acknowledged enqueue (or ack) survives a
//!   crash of the server or of its machine;
//! - `appendfsync everysec` (Redis' default): up to about one second of acknowledged writes can
//!   be lost when the server or machine crashes;
//! - `appendfsync no`: up to the operating system's flush interval (typically 30 s on Linux) can
//!   be lost;
//! - without AOF (RDB snapshots only) a restart loses everything written since the last
//!   snapshot.
//!
//! Replication is asynchronous: a failover to a replica can lose the writes it had not received.
//!
//! # Differences from the Postgres driver
//!
//! - Enqueue is atomic per queue: a call with jobs of several queues runs one script per queue
//!   (all or none within each), so a failure between two of them leaves the earlier queues'
//!   jobs stored.
//! - A batch (in Postgres) with jobs here has them counted here: `Q:batch:<id>` (set) holds its
//!   members, `Q:batch:<id>:gone` (hash) the final states of members deleted since; both go
//!   when the batch is closed. Enqueue-in-transaction does not exist.
//! - Purging dead letters reads the queue's whole dead set in one script (purges are rare;
//!   [`Driver::list_jobs`] is bounded per call).
//! - Fleet-wide limits live in the limited queue's keys (`Q:control` holds them,
//!   [`RedisLimiter`] takes permits in `Q:permits` and rate tokens in `Q:rate`).
//! - Stats are computed live, so [`Driver::refresh_queue_stats`] does nothing.
//! - The claim cursor (`after`) is ignored.

mod acks;
mod batches;
mod budget;
mod claim;
mod conn;
mod connect;
mod enqueue;
mod fleet;
mod inspect;
mod keys;
mod leases;
mod limiter;
mod listen;
mod listing;
mod route;
mod scripts;
mod value;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cowans_core::{
    JobId, JobState, QueueName,
    event::BatchCounts,
    queue::{
        ClaimCursor, ClaimedJob, Driver, Enqueued, Failed, JobRecord, LeaderTerm, LeaseRef, NewJob,
        Promotion, Pruned, QueueControl, QueueResult, QueueStats, RateLimit, Rescued, Retention,
        Settled, WakeupSink, WorkerInfo,
    },
};
use uuid::Uuid;

pub use budget::{BucketStatus, CostBuckets};
pub use limiter::RedisLimiter;

/// The Redis queue backend, over one server ([`RedisDriver::connect`]) or a Redis Cluster
/// ([`RedisDriver::connect_cluster`]). Cheap to clone (a connection and a shared cache).
#[derive(Clone)]
pub struct RedisDriver {
    conn: conn::Conn,
    /// The servers to subscribe to wake-ups on, tried in turn (any cluster node hears every
    /// classic `PUBLISH`).
    subscribers: Arc<Vec<redis::Client>>,
    prefix: String,
    /// Blocks' queues and the ids this process holds ([`route`]).
    routes: Arc<Mutex<route::Routes>>,
}

impl std::fmt::Debug for RedisDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisDriver")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Driver for RedisDriver {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn enqueue(&self, jobs: &[NewJob]) -> QueueResult<Vec<Enqueued>> {
        enqueue::enqueue(self, jobs).await
    }

    async fn claim(
        &self,
        queue: &QueueName,
        limit: usize,
        worker: Uuid,
        lease_ttl: Duration,
        after: Option<&ClaimCursor>,
    ) -> QueueResult<Vec<ClaimedJob>> {
        claim::claim(self, queue, limit, worker, lease_ttl, after).await
    }

    async fn complete(&self, refs: &[LeaseRef], delete: bool) -> QueueResult<Vec<JobId>> {
        acks::complete(self, refs, delete).await
    }

    async fn settle_failures(&self, worker: Uuid, failed: &[Failed]) -> QueueResult<Vec<Settled>> {
        acks::settle_failures(self, worker, failed).await
    }

    async fn release(&self, refs: &[LeaseRef]) -> QueueResult<Vec<JobId>> {
        acks::release(self, refs).await
    }

    async fn defer(&self, jobs: &[(LeaseRef, DateTime<Utc>)]) -> QueueResult<Vec<i64>> {
        acks::defer(self, jobs).await
    }

    async fn promote_due(&self, queues: &[QueueName], limit: i64) -> QueueResult<Promotion> {
        claim::promote_due(self, queues, limit).await
    }

    async fn queue_control(&self, queue: &str) -> QueueResult<QueueControl> {
        fleet::queue_control(self, queue).await
    }

    async fn set_paused(&self, queue: &QueueName, paused: bool) -> QueueResult<()> {
        fleet::set_paused(self, queue, paused).await
    }

    async fn ping(&self) -> QueueResult<()> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(value::map_err)?;
        Ok(())
    }

    async fn set_limits(
        &self,
        queue: &QueueName,
        concurrency: Option<u32>,
        rate: Option<RateLimit>,
    ) -> QueueResult<bool> {
        fleet::set_limits(self, queue, concurrency, rate).await
    }

    async fn heartbeat(
        &self,
        worker: &WorkerInfo,
        running: &[LeaseRef],
        lease_ttl: Duration,
    ) -> QueueResult<Vec<JobId>> {
        leases::heartbeat(self, worker, running, lease_ttl).await
    }

    async fn rescue_expired(&self, limit: i64) -> QueueResult<Rescued> {
        leases::rescue_expired(self, limit).await
    }

    async fn register_worker(&self, info: &WorkerInfo) -> QueueResult<()> {
        self.upsert_worker(info).await
    }

    async fn deregister_worker(&self, id: Uuid) -> QueueResult<()> {
        fleet::deregister_worker(self, id).await
    }

    async fn forget_stale_workers(&self, older_than: Duration) -> QueueResult<u64> {
        fleet::forget_stale_workers(self, older_than).await
    }

    async fn try_lead(
        &self,
        role: &str,
        holder: Uuid,
        ttl: Duration,
    ) -> QueueResult<Option<LeaderTerm>> {
        fleet::try_lead(self, role, holder, ttl).await
    }

    async fn resign_leader(&self, role: &str, holder: Uuid) -> QueueResult<()> {
        fleet::resign_leader(self, role, holder).await
    }

    async fn prune(&self, retention: Retention, limit: i64) -> QueueResult<Pruned> {
        inspect::prune(self, retention, limit).await
    }

    async fn refresh_queue_stats(&self) -> QueueResult<()> {
        // Stats are computed live from the state indexes: nothing to refresh.
        Ok(())
    }

    async fn queue_stats(
        &self,
        queue: Option<&str>,
        live_within: Duration,
    ) -> QueueResult<Vec<QueueStats>> {
        inspect::queue_stats(self, queue, live_within).await
    }

    async fn count_by_state(&self, queue: &str) -> QueueResult<Vec<(JobState, i64)>> {
        inspect::count_by_state(self, queue).await
    }

    async fn job(&self, id: JobId) -> QueueResult<Option<JobRecord>> {
        inspect::job(self, id).await
    }

    async fn cancel(&self, id: JobId) -> QueueResult<JobState> {
        inspect::cancel(self, id).await
    }

    async fn retry(&self, id: JobId) -> QueueResult<()> {
        inspect::retry(self, id).await
    }

    async fn count_batches(
        &self,
        queue: &str,
        batches: &[i64],
    ) -> QueueResult<HashMap<i64, BatchCounts>> {
        batches::count(self, queue, batches).await
    }

    async fn batch_jobs(&self, queue: &str, batch: i64) -> QueueResult<Vec<JobId>> {
        batches::jobs(self, queue, batch).await
    }

    async fn close_batches(&self, queue: &str, batches: &[i64]) -> QueueResult<()> {
        batches::close(self, queue, batches).await
    }

    async fn list_jobs(
        &self,
        queue: &str,
        state: Option<JobState>,
        kind: Option<&str>,
        after: Option<JobId>,
        limit: i64,
    ) -> QueueResult<Vec<JobRecord>> {
        listing::list_jobs(self, queue, state, kind, after, limit).await
    }

    async fn purge_dead(&self, queue: &str, kind: Option<&str>, expected: u64) -> QueueResult<u64> {
        listing::purge_dead(self, queue, kind, expected).await
    }

    async fn redrive(&self, ids: &[JobId]) -> QueueResult<Vec<JobId>> {
        inspect::redrive(self, ids).await
    }

    async fn listen(&self, sink: Arc<dyn WakeupSink>) {
        listen::listen(self, sink).await
    }
}
