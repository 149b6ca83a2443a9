//! The Cowans worker runtime: an apalis `Backend` over the Postgres store, with the machinery
//! around it that makes a queue fast and safe.
//!
//! - [`Engine`]: one per process. Registers the process, listens for NOTIFY, heart-beats the
//!   leases of running jobs, runs the batched completer and, when elected, the maintenance
//!   services (rescuer). Its [`Engine::shutdown`] drains to a deadline and hands back the rest.
//! - [`PgBackend`]: what an apalis `WorkerBuilder` consumes. Each backend owns a producer task
//!   that claims its free slots (and, while its handlers are fast, a little ahead: `prefetch`),
//!   decodes them (a payload that does not decode is dead-lettered, the worker keeps going) and
//!   hands them to apalis.
//! - The backend's middleware observes every attempt's result (panics included) and turns it
//!   into an ack: complete, retry with backoff, or dead-letter.
//! - [`FrontDoor`]: the one entry point for every action on jobs, queues, dead letters,
//!   batches, keys and the audit log, used by the API, the CLI and applications alike.
//! - [`JobKind`], [`App`], [`JobSet`]: how applications plug in. A kind is registered once;
//!   validation (API) and dispatch (worker) are both derived from the job set.
//!
//! **Architecture Invariant:** no SQL here; every statement is a `cowans_store` function. No
//! global state: the engine is passed around, metrics go through the `metrics` facade.

mod app;
pub mod autoscale;
mod backend;
mod batches;
mod completer;
mod config;
mod engine;
mod error_recorder;
mod events;
pub mod export;
mod front_door;
mod heartbeat;
mod in_flight;
mod index_upkeep;
mod job_meta;
mod limiter;
mod listener;
mod maintenance;
pub mod metrics;
mod prefetch;
mod process;
mod producer;
mod rewind;
mod router;
mod routing;
mod scheduler;

pub use app::{App, AppContext, DEFAULT_QUEUE, JobKind, JobSet, JobSetError};
pub use backend::{AckLayer, AckService, PgBackend};
pub use batches::refresh_batches;
pub use config::{Autoscale, EngineConfig, QueueConfig};
pub use engine::{Engine, EngineError, ShutdownReport};
pub use events::{EventRelay, EventStream};
pub use front_door::{
    API_KEY_PREFIX, ApiKeyRow, BulkSource, BulkSubmit, ConsoleLogin, ConsoleUser, ExportStream,
    FrontDoor, FrontDoorBuilder, Recorded, Redrive, Submission,
};
pub use job_meta::{JobMeta, MissingJobMeta};
pub use limiter::{LimitError, LimitResult, Limiter, Permit, PgLimiter, Tokens};
pub use maintenance::export_queue_gauges;
pub use process::run_queues;
pub use router::KindRouter;
pub use routing::Backends;
pub use scheduler::{CronJob, register_cron};

/// The seam between the engine and a queue backend.
pub use cowans_core::queue::{Driver, QueueError, QueueResult};
/// The store's vocabulary that callers of the front door use, so they need not depend on the
/// store themselves.
pub use cowans_store::{
    AuditEntry, BatchCallback, BatchProgress, Cancelled, Counts, DeadLetterFilter, Enqueued,
    JobFilter, JobRecord, MAX_BATCH_DESCRIPTION, MAX_KEY, NewJob, PgDriver, PgPool, QueueStats,
    RateLimit, Result as StoreResult, StoreError, Unique,
};
