//! Every Postgres statement of Cowans: the embedded migrations, enqueue, claim, acks, leases,
//! leader election, worker registry and dead-letter administration.
//!
//! Functions that a caller may want inside its own transaction take any `PgExecutor` (a pool,
//! a connection or `&mut *tx`); the rest take the pool.
//!
//! **Architecture Invariant:** this is the only crate that contains SQL. It knows nothing of
//! apalis, HTTP or processes; callers pass ids, leases and decisions in, and get rows out.

mod ack;
mod claim;
mod dead_letter;
pub mod demo;
mod enqueue;
mod error;
mod jobs;
mod leader;
mod lease;
mod migrate;
mod workers;

pub use ack::{Failed, LeaseRef, complete, complete_in_tx, release, settle_failures};
pub use claim::{ClaimCursor, ClaimedJob, Promotion, claim, promote_due};
pub use dead_letter::{DeadLetterFilter, list_dead, purge_dead, redrive_ids, redrive_matching};
pub use enqueue::{NOTIFY_CHANNEL, NewJob, enqueue, enqueue_autocommit, enqueue_many};
pub use error::{Result, StoreError};
pub use jobs::{JobRecord, count_by_state, get_job};
pub use leader::{LeaderTerm, resign_leader, try_lead};
pub use lease::{Rescued, heartbeat, rescue_expired};
pub use migrate::{MIGRATOR, connect, migrate, migrations_pending};
pub use workers::{WorkerInfo, deregister_worker, forget_stale_workers, register_worker};

pub use sqlx::PgPool;
