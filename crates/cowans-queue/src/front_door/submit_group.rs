//! Group commit for single-job submits: concurrent [`super::FrontDoor::submit`] calls are queued
//! to one dispatcher, which inserts whatever has gathered (up to `max` jobs) in one statement and
//! one commit, with their audit entries and wake-ups in the same statement. A commit costs the
//! same for 1 job as for 500, so fifty concurrent clients share a commit instead of queueing for
//! fifty.
//!
//! A submit is answered only after its group committed: nothing acknowledged can be lost. If the
//! database refuses a group's statement, each of its jobs is retried alone so one bad job cannot
//! fail the others; if the connection is lost mid-commit, every job of the group gets the error
//! (the group may have committed, so inserting again could duplicate it).
//!
//! Shutdown: [`SubmitGroup::shutdown`] stops taking submits (later ones are answered
//! `Unavailable`), commits everything already queued, and waits for the commits in flight.

use std::sync::Arc;

use cowans_core::Actor;
use cowans_store::{Enqueued, NewJob, PgPool, StoreError};
use tokio::{
    sync::{Semaphore, mpsc, oneshot},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

/// Groups being committed at once (each holds one pooled connection). Measured with
/// `cowans-bench api-submit`: 1 and 2 are alike, 3 or more lose a third (the groups shrink and
/// the commits queue on Postgres' notify lock).
const FLUSHES_IN_FLIGHT: usize = 2;

struct Pending {
    job: NewJob,
    who: Actor,
    reply: oneshot::Sender<Result<Enqueued, StoreError>>,
}

pub(crate) struct SubmitGroup {
    tx: mpsc::Sender<Pending>,
    stop: CancellationToken,
    dispatcher: std::sync::Mutex<Option<JoinHandle<()>>>,
}

fn gone() -> StoreError {
    StoreError::Unavailable {
        message: "the server is shutting down; retry".to_owned(),
    }
}

impl SubmitGroup {
    /// Starts the dispatcher (call inside a Tokio runtime).
    pub(crate) fn start(pool: PgPool, max: usize) -> Self {
        let (tx, rx) = mpsc::channel(max.max(1) * FLUSHES_IN_FLIGHT * 2);
        let stop = CancellationToken::new();
        let dispatcher = tokio::spawn(dispatch(pool, rx, max.max(1), stop.clone()));
        Self {
            tx,
            stop,
            dispatcher: std::sync::Mutex::new(Some(dispatcher)),
        }
    }

    /// Inserts `job` (audited as `job.submit` by `who`) once its group commits.
    pub(crate) async fn submit(&self, job: NewJob, who: &Actor) -> Result<Enqueued, StoreError> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            job,
            who: who.clone(),
            reply,
        };
        self.tx.send(pending).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// Stops taking submits, commits what is queued, waits for the commits in flight.
    pub(crate) async fn shutdown(&self) {
        self.stop.cancel();
        let task = self
            .dispatcher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

async fn dispatch(
    pool: PgPool,
    mut rx: mpsc::Receiver<Pending>,
    max: usize,
    stop: CancellationToken,
) {
    let flushes = Arc::new(Semaphore::new(FLUSHES_IN_FLIGHT));
    loop {
        let first = tokio::select! {
            p = rx.recv() => p,
            _ = stop.cancelled() => {
                // Refuse new submits; what is already queued is still committed below.
                rx.close();
                rx.recv().await
            }
        };
        let Some(first) = first else { break };
        // While every flush is busy, more requests gather for the next group.
        let Ok(permit) = flushes.clone().acquire_owned().await else {
            break;
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
    // Wait for the commits in flight: every accepted submit has its answer when this returns.
    let _ = flushes.acquire_many(FLUSHES_IN_FLIGHT as u32).await;
}

async fn flush(pool: &PgPool, group: Vec<Pending>) {
    metrics::histogram!(crate::metrics::SUBMIT_GROUP_SIZE).record(group.len() as f64);
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
            for ((reply, d), job) in replies.into_iter().zip(done).zip(&jobs) {
                super::count_submitted(job, &d);
                let _ = reply.send(Ok(d));
            }
        }
        // Only a statement the server refused (and so rolled back) is retried job by job; after a
        // lost connection the group may have committed, and inserting again could duplicate it.
        Err(e) if n == 1 || !e.was_refused() => {
            if !e.was_refused() {
                tracing::error!(error = %e, jobs = n, "group commit failed");
            }
            let answer = super::shareable(e);
            for reply in replies {
                let _ = reply.send(Err(answer()));
            }
        }
        Err(_) => {
            for (i, reply) in replies.into_iter().enumerate() {
                let result = cowans_store::enqueue_audited(pool, &jobs[i..=i], &who[i..=i]).await;
                let result = result.map(|mut d| d.remove(0));
                if let Ok(d) = &result {
                    super::count_submitted(&jobs[i], d);
                }
                let _ = reply.send(result);
            }
        }
    }
}
