//! What a handler may know about the job it runs, as an apalis extractor.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use apalis_core::task::{Task, from_request::FromRequest};
use chrono::{DateTime, Utc};
use cowans_core::JobId;
use cowans_store::LeaseRef;
use tokio_util::sync::CancellationToken;

use crate::limiter::Permit;

/// The job behind a task: identity, attempt and the lease that fences its acks. Take it as a
/// handler argument (`async fn handle(args: MyArgs, job: JobMeta)`).
#[derive(Clone)]
pub struct JobMeta {
    pub id: JobId,
    pub queue: Arc<str>,
    pub kind: Arc<str>,
    /// This attempt, 1-based.
    pub attempt: i32,
    pub max_attempts: i32,
    pub priority: i16,
    pub lease: i64,
    pub created_at: DateTime<Utc>,
    /// When the job became runnable.
    pub run_at: DateTime<Utc>,
    pub attempted_at: DateTime<Utc>,
    /// Set when the handler completed the job in its own transaction (for the metrics: the
    /// completer's own ack is then fenced off, as it should be).
    pub(crate) completed_in_tx: Arc<AtomicBool>,
    pub(crate) metrics: Arc<crate::metrics::JobMetrics>,
    /// Fired when the job is cancelled, its lease is lost, or its timeout passes.
    pub(crate) cancel: CancellationToken,
    /// The fleet-wide concurrency permit this attempt holds, if its queue is limited.
    pub(crate) permit: Option<Permit>,
}

impl JobMeta {
    pub fn lease_ref(&self) -> LeaseRef {
        LeaseRef {
            id: self.id,
            lease: self.lease,
        }
    }

    /// Completes this job inside the handler's own transaction, so its effect and its completion
    /// commit together: `job.complete_in_tx(&mut *tx).await?; tx.commit().await?`. If the lease
    /// was lost (another worker owns the job now) this answers
    /// [`cowans_store::StoreError::StaleLease`]; returning it drops the transaction, so the effect
    /// rolls back, and the attempt's result is discarded by the fencing anyway. A job of a
    /// queue stored in Redis cannot be completed in a Postgres transaction: `Invalid` naming
    /// its queue (the kind needs a Postgres queue).
    pub async fn complete_in_tx<'e>(
        &self,
        executor: impl sqlx::PgExecutor<'e>,
    ) -> Result<(), cowans_store::StoreError> {
        if cowans_core::queue::Backend::of_job(self.id) == cowans_core::queue::Backend::Redis {
            return Err(cowans_store::StoreError::invalid(
                "queue",
                format!(
                    "job {} is stored in Redis; its kind completes jobs in a Postgres transaction, so its queue must be a Postgres one",
                    self.id
                ),
            ));
        }
        cowans_store::complete_in_tx(executor, self.lease_ref()).await?;
        self.completed_in_tx.store(true, Ordering::Release);
        Ok(())
    }

    /// Resolves when the handler should stop: an operator cancelled the job, another worker took
    /// it over (lease lost), or its timeout passed. Whatever the handler returns afterwards is
    /// discarded for a cancelled job; a handler that does not return within the engine's
    /// `cancel_grace` is dropped.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    pub(crate) fn was_completed_in_tx(&self) -> bool {
        self.completed_in_tx.load(Ordering::Acquire)
    }
}

impl std::fmt::Debug for JobMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobMeta")
            .field("id", &self.id)
            .field("queue", &self.queue)
            .field("kind", &self.kind)
            .field("attempt", &self.attempt)
            .field("max_attempts", &self.max_attempts)
            .field("priority", &self.priority)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// The task did not come from a Cowans backend.
#[derive(Debug, thiserror::Error)]
#[error("this task carries no Cowans job metadata (was it produced by PgBackend?)")]
pub struct MissingJobMeta;

impl<Args: Sync> FromRequest<Task<Args>> for JobMeta {
    type Error = MissingJobMeta;
    async fn from_request(task: &Task<Args>) -> Result<Self, Self::Error> {
        task.data().get::<JobMeta>().cloned().ok_or(MissingJobMeta)
    }
}
