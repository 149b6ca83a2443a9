//! Every Postgres statement of Cowans: the embedded migrations, enqueue, claim, acks, leases,
//! leader election, worker registry, dead-letter administration and index upkeep.
//!
//! Functions that a caller may want inside its own transaction take any `PgExecutor` (a pool,
//! a connection or `&mut *tx`); the rest take the pool.
//!
//! **Architecture Invariant:** this is the only crate that contains SQL. It knows nothing of
//! apalis, HTTP or processes; callers pass ids, leases and decisions in, and get rows out.

/// The fence of every statement that acts on jobs a worker holds, joined to `$alias` (an
/// `unnest` of `(id, lease, …)`): the row is still running under that lease.
///
/// Written so that no statistics can make it quadratic. With a plain `j.state = 'running'`, an
/// ANALYZE that ran while few jobs were running (after a large enqueue, say) has the planner
/// expect one running row: it scanned the table for running rows and compared each with every
/// element of the batch (a 2,000-job ack took 0.7–2.7 s in `cowans-bench backlog`). Here the
/// state is compared with an InitPlan value, whose selectivity the planner takes from the
/// column's distinct count rather than from the running rows the last sample happened to see,
/// so it never expects a handful of rows on the table's side; the join then probes the primary
/// key per element or hashes the batch. (Adding `j.id = ANY(ids)` as well looked tidier and was
/// worse: estimated at ten rows, it put the table on the outer side of a nested loop over the
/// batch, 0.3–0.9 s per 2,000-job ack on a fresh table.)
macro_rules! still_held {
    ($alias:literal) => {
        concat!(
            "j.id = ",
            $alias,
            ".id AND j.lease = ",
            $alias,
            ".lease AND j.state = (SELECT 'running'::cowans_job_state)"
        )
    };
}

mod ack;
mod announce;
mod api;
mod batches;
pub mod catalog;
mod claim;
pub mod console;
mod control;
mod cron;
mod dead_letter;
pub mod demo;
mod driver;
mod enqueue;
mod error;
mod error_groups;
mod index_upkeep;
mod jobs;
mod leader;
mod lease;
mod limits;
mod migrate;
mod retention;
mod stats;
mod workers;

pub use ack::{complete, complete_in_tx, release, settle_failures};
pub use announce::announce;
pub use api::{
    ApiKeyRow, AuditEntry, NewAudit, audit, audit_many, create_api_key, find_api_key, list_audit,
    revoke_api_key,
};
pub use batches::{
    BatchCallback, BatchProgress, BatchRefresh, Counts, MAX_DESCRIPTION as MAX_BATCH_DESCRIPTION,
    OpenBatch, add_counts, batch_job_ids, batch_progress, callback_args, count_batch_jobs,
    create_batch, final_jobs, finished_on_redis, in_batch, open_batch, open_batches,
    pending_callbacks, recent_batches, released_on_redis, set_batch_total, set_callback_job,
    settle_batch,
};
pub use claim::{claim, promote_due};
pub use control::{
    Cancelled, cancel_batch, cancel_job, cancel_jobs, queue_control, set_paused, set_queue_limits,
};
pub use cron::{CronRow, advance_cron, delete_cron, get_cron, list_cron, upsert_cron};
pub use dead_letter::{
    DeadLetterFilter, count_dead, list_dead, purge_dead, redrive_ids, redrive_ids_in,
    redrive_matching,
};
pub use driver::PgDriver;
pub use enqueue::{enqueue, enqueue_audited, enqueue_autocommit, enqueue_many, validate_all};
pub use error::{Result, StoreError};
pub use error_groups::{ErrorGroup, ErrorSample, list_error_groups, record_errors};
pub use index_upkeep::{IndexSize, Rebuild, UPKEPT_INDEXES, index_sizes, rebuild_index};
pub use jobs::{JobFilter, count_by_state, get_job, list_jobs, retry_job};
pub use leader::{resign_leader, try_lead};
pub use lease::{heartbeat, rescue_expired};
pub use limits::{
    PermitRow, acquire_permits, defer, ensure_permit_slots, extend_permits, rate_refund, rate_take,
    release_holder_permits, release_permits,
};
pub use migrate::{
    IDLE_BEFORE_CHECK, MIGRATOR, connect, connect_options, migrate, migrations_pending,
    pool_options,
};
pub use retention::prune;
pub use stats::{queue_stats, refresh_queue_stats};
pub use workers::{deregister_worker, forget_stale_workers, register_worker};

pub use cowans_core::queue::{
    ClaimCursor, ClaimedJob, Enqueued, Failed, Granted, JobRecord, LeaderTerm, LeaseRef, MAX_KEY,
    NewJob, Promotion, Pruned, QueueControl, QueueStats, RateLimit, Rescued, Retention, Settled,
    Unique, WorkerInfo,
};
pub use cowans_core::{EVENTS_CHANNEL, WAKEUP_CHANNEL};
pub use sqlx::PgPool;
