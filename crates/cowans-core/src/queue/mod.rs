//! The queue's vocabulary, shared by every backend: jobs to enqueue, claims and their leases,
//! acks, the fleet's control rows, and the [`Driver`] trait the engine talks to.

mod backend;
mod claimed;
mod driver;
mod error;
mod fleet;
mod limits;
mod new_job;

pub use backend::{Backend, REDIS_FIRST_ID};
pub use claimed::{
    ClaimCursor, ClaimedJob, Failed, LEASE_EXPIRED, LeaseRef, Promotion, Rescued, Settled,
};
pub use driver::{Driver, JobRecord, WakeupSink};
pub use error::{QueueError, QueueResult};
pub use fleet::{LeaderTerm, Pruned, QueueControl, QueueStats, RateLimit, Retention, WorkerInfo};
pub use limits::{Granted, LimitError, LimitResult, Limiter, Permit};
pub use new_job::{Enqueued, MAX_KEY, NewJob, Unique, state_bit};
