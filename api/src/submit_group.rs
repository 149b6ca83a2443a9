//! Group commit for single-job submits: concurrent `POST /api/v1/jobs` calls are queued to one
//! dispatcher, which inserts whatever has gathered (up to `max` jobs) in one statement and one
//! commit, with their audit entries in the same transaction. A commit costs the same for 1 job as
//! for 500, so fifty concurrent clients share a commit instead of queueing for fifty.
//!
//! A request is answered only after its group committed: nothing acknowledged can be lost. If the
//! database refuses a group's statement, each of its jobs is retried alone so one bad job cannot
//! fail the others; if the connection is lost mid-commit, every job of the group gets the error
//! (the group may have committed, so inserting again could duplicate it).

use std::sync::Arc;

use cowans_store::{Enqueued, NewJob, PgPool, Submitter};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::{auth::Principal, error::ApiError};

/// Groups being committed at once (each holds one pooled connection). Measured with
/// `cowans-bench api-submit`: 1 and 2 are alike, 3 or more lose a third (the groups shrink and
/// the commits queue on Postgres' notify lock).
const FLUSHES_IN_FLIGHT: usize = 2;

struct Pending {
    job: NewJob,
    who: Submitter,
    reply: oneshot::Sender<Result<Enqueued, ApiError>>,
}

/// The handle handlers submit through.
#[derive(Clone)]
pub struct SubmitGroup {
    tx: mpsc::Sender<Pending>,
}

impl SubmitGroup {
    /// Starts the dispatcher (call inside a Tokio runtime). `max` 1 disables grouping.
    pub fn start(pool: PgPool, max: usize) -> Self {
        let (tx, rx) = mpsc::channel(max.max(1) * FLUSHES_IN_FLIGHT * 2);
        tokio::spawn(dispatch(pool, rx, max.max(1)));
        Self { tx }
    }

    /// Inserts `job` (audited as `job.submit` by `who`) once its group commits.
    pub async fn submit(&self, job: NewJob, who: &Principal) -> Result<Enqueued, ApiError> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            job,
            who: Submitter {
                actor: who.actor.clone(),
                role: who.role.as_str().to_owned(),
                client_addr: who.client_addr.clone(),
            },
            reply,
        };
        let gone = || {
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the server is shutting down; retry",
            )
        };
        self.tx.send(pending).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn dispatch(pool: PgPool, mut rx: mpsc::Receiver<Pending>, max: usize) {
    let flushes = Arc::new(Semaphore::new(FLUSHES_IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        // While every flush is busy, more requests gather for the next group.
        let Ok(permit) = flushes.clone().acquire_owned().await else {
            return;
        };
        let mut group = vec![first];
        while group.len() < max {
            match rx.try_recv() {
                Ok(p) => group.push(p),
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            flush(&pool, group).await;
            drop(permit);
        });
    }
}

async fn flush(pool: &PgPool, group: Vec<Pending>) {
    metrics::histogram!("cowans_api_submit_group_size").record(group.len() as f64);
    let n = group.len();
    let (mut jobs, mut who, mut replies) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for p in group {
        jobs.push(p.job);
        who.push(p.who);
        replies.push(p.reply);
    }
    match cowans_store::enqueue_audited(pool, &jobs, &who).await {
        Ok(done) => {
            for (reply, d) in replies.into_iter().zip(done) {
                let _ = reply.send(Ok(d));
            }
        }
        // Only a statement the server refused (and so rolled back) is retried job by job; after a
        // lost connection the group may have committed, and inserting again could duplicate it.
        Err(e) if n == 1 || !refused(&e) => {
            let e = ApiError::from(e);
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
        Err(_) => {
            for (i, reply) in replies.into_iter().enumerate() {
                let result = cowans_store::enqueue_audited(pool, &jobs[i..=i], &who[i..=i]).await;
                let _ = reply.send(result.map(|mut d| d.remove(0)).map_err(Into::into));
            }
        }
    }
}

/// The database refused the statement (a constraint, a trigger, a bad value): nothing was written.
fn refused(e: &cowans_store::StoreError) -> bool {
    matches!(
        e,
        cowans_store::StoreError::Invalid { .. }
            | cowans_store::StoreError::Database(sqlx::Error::Database(_))
    )
}
