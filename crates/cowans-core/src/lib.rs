//! IO-free vocabulary of the Cowans job queue: identifiers, the job state machine, retry maths and
//! the closed set of outcomes a handler can produce.
//!
//! **Architecture Invariant:** this crate depends on no IO crate (no sqlx, axum, redis, reqwest,
//! tokio); everything here is pure and unit-tested.

mod actor;
pub mod cron;
pub mod error_groups;
pub mod event;
mod job;
pub mod kinds;
mod outcome;
pub mod queue;
mod retry_policy;
pub mod unstorable;
pub mod wakeup;
pub mod whole_numbers;

pub use actor::{Actor, Role};
pub use event::{EVENTS_CHANNEL, Event};
pub use job::{AttemptError, JobId, JobState, NameError, QueueName, validate_kind};
pub use kinds::{KindCheck, KindRegistry, KindSpec, PayloadError};
pub use outcome::{Failure, JobError, JobOutcome};
pub use retry_policy::RetryPolicy;
pub use wakeup::{WAKEUP_CHANNEL, Wakeup};
