//! The batched completer: attempts end in the handlers, their acks queue here and are written
//! many per statement.
//!
//! Each flush is one `complete` statement and one `settle_failures` statement, each row
//! conditional on the claim's lease. While a flush is in progress new acks pile up in the
//! channel and form the next batch, so at low load an ack is written at once and at high load
//! batches grow by themselves.
//!
//! Crash window: a handler's work is done but its ack is still in this channel or in a flush
//! that has not committed. If the process dies then, the job's lease expires, the rescuer makes
//! it runnable again and it runs a second time. That is the at-least-once contract; handlers that
//! need exactly-once effects complete the job in their own transaction (`JobMeta::complete_in_tx`).

use std::{sync::Arc, time::Duration};

use cowans_core::queue::{Backend, Driver, Failed, LeaseRef};
use cowans_core::{JobOutcome, JobState};
use cowans_store::{ErrorSample, PgPool};

use crate::error_recorder::ErrorRecorder;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::{
    limiter::{Limiter, Permit},
    listener::Signals,
    metrics,
};

/// The end of one attempt, on its way to the database.
#[derive(Debug)]
pub(crate) struct Ack {
    pub(crate) lease: LeaseRef,
    pub(crate) metrics: Arc<metrics::JobMetrics>,
    pub(crate) attempt: i32,
    /// The handler completed the job in its own transaction; this ack will be fenced off.
    pub(crate) completed_in_tx: bool,
    /// The fleet-wide concurrency permit the attempt held: released once the ack is written.
    pub(crate) permit: Option<Permit>,
    pub(crate) outcome: JobOutcome,
}

/// Writes the acks. With `two_backends`, routes each ack to the writer of its job's backend
/// ([`Backend::of_job`]): each backend's acks are written, and retried while it is
/// unreachable, on their own, so a Redis outage never holds up the acks (and so the leases) of
/// Postgres queues, nor the reverse; the writers' queues are unbounded (what they hold is
/// bounded by the jobs claimed before the outage). With one backend the acks go straight to
/// its writer (no extra hop).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    driver: Arc<dyn Driver>,
    // Where failed attempts are recorded for error tracking.
    pool: PgPool,
    worker_id: Uuid,
    signals: Arc<Signals>,
    limiter: Arc<dyn Limiter>,
    mut rx: mpsc::Receiver<Ack>,
    max_batch: usize,
    // Finished jobs are kept for no time: completed ones are deleted by their ack.
    delete: bool,
    two_backends: bool,
) {
    let (errors, recorder) = ErrorRecorder::start(pool);
    if !two_backends {
        write(
            driver, errors, worker_id, signals, limiter, rx, max_batch, delete,
        )
        .await;
        let _ = recorder.await;
        tracing::debug!("completer drained");
        return;
    }
    let (pg_tx, pg_rx) = mpsc::unbounded_channel();
    let (rd_tx, rd_rx) = mpsc::unbounded_channel();
    let writer = |rx| {
        tokio::spawn(write(
            driver.clone(),
            errors.clone(),
            worker_id,
            signals.clone(),
            limiter.clone(),
            rx,
            max_batch,
            delete,
        ))
    };
    let writers = [writer(pg_rx), writer(rd_rx)];
    while let Some(ack) = rx.recv().await {
        let to = match Backend::of_job(ack.lease.id) {
            Backend::Postgres => &pg_tx,
            Backend::Redis => &rd_tx,
        };
        if to.send(ack).is_err() {
            break;
        }
    }
    drop((pg_tx, rd_tx));
    for w in writers {
        let _ = w.await;
    }
    drop(errors);
    let _ = recorder.await;
    tracing::debug!("completer drained");
}

/// Where a writer's acks come from: the engine's channel, or the router's queue for one backend.
trait Intake {
    async fn recv_many(&mut self, buffer: &mut Vec<Ack>, limit: usize) -> usize;
}

impl Intake for mpsc::Receiver<Ack> {
    async fn recv_many(&mut self, buffer: &mut Vec<Ack>, limit: usize) -> usize {
        mpsc::Receiver::recv_many(self, buffer, limit).await
    }
}

impl Intake for mpsc::UnboundedReceiver<Ack> {
    async fn recv_many(&mut self, buffer: &mut Vec<Ack>, limit: usize) -> usize {
        mpsc::UnboundedReceiver::recv_many(self, buffer, limit).await
    }
}

/// Writes one backend's acks, a batch at a time.
#[allow(clippy::too_many_arguments)]
async fn write(
    driver: Arc<dyn Driver>,
    errors: ErrorRecorder,
    worker_id: Uuid,
    signals: Arc<Signals>,
    limiter: Arc<dyn Limiter>,
    mut rx: impl Intake,
    max_batch: usize,
    delete: bool,
) {
    let mut batch = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        flush(&*driver, &errors, worker_id, &signals, &batch, delete).await;
        // Only now is the job no longer running in the database: free its fleet-wide slot.
        let permits: Vec<Permit> = batch.iter().filter_map(|a| a.permit.clone()).collect();
        if !permits.is_empty()
            && let Err(e) = limiter.release(&permits).await
        {
            tracing::warn!(error = %e, "could not release concurrency permits; they expire");
        }
        batch.clear();
    }
}

/// Splits a batch of acks into the completions and the failures (with what to do about each),
/// the two statements of a flush.
fn split(batch: &[Ack]) -> (Vec<LeaseRef>, Vec<Failed>) {
    let mut completed = Vec::new();
    let mut failed = Vec::new();
    for a in batch {
        let (error, retry_in) = match &a.outcome {
            JobOutcome::Completed => {
                completed.push(a.lease);
                continue;
            }
            JobOutcome::Retry { error, delay } => (error, Some(*delay)),
            JobOutcome::Dead { error } => (error, None),
        };
        failed.push(Failed {
            lease: a.lease,
            attempt: a.attempt,
            error: error.clone(),
            retry_in,
        });
    }
    (completed, failed)
}

/// Writes one batch, retrying on database errors: an accepted ack is never dropped.
async fn flush(
    driver: &dyn Driver,
    errors: &ErrorRecorder,
    worker_id: Uuid,
    signals: &Signals,
    batch: &[Ack],
    delete: bool,
) {
    let (completed, failed) = split(batch);

    let mut backoff = Duration::from_millis(50);
    let (done, settled) = loop {
        let result = tokio::try_join!(
            driver.complete(&completed, delete),
            driver.settle_failures(worker_id, &failed),
        );
        match result {
            Ok(r) => break r,
            Err(e) => {
                tracing::warn!(error = %e, acks = batch.len(), "ack flush failed, retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    };

    let accepted: std::collections::HashSet<_> = done
        .iter()
        .copied()
        .chain(settled.iter().map(|s| s.id))
        .collect();
    let mut fenced = 0u64;
    for ack in batch {
        if !accepted.contains(&ack.lease.id) {
            if ack.completed_in_tx && ack.outcome == JobOutcome::Completed {
                ack.metrics.completed.increment(1);
            } else {
                fenced += 1;
            }
            continue;
        }
        let error = match &ack.outcome {
            JobOutcome::Completed => {
                ack.metrics.completed.increment(1);
                continue;
            }
            JobOutcome::Retry { error, .. } => {
                ack.metrics.retried.increment(1);
                error
            }
            JobOutcome::Dead { error } => {
                ack.metrics.dead.increment(1);
                error
            }
        };
        ack.metrics.failed.increment(1);
        metrics::job_error(&ack.metrics.kind, error);
        errors.record(ErrorSample {
            queue: ack.metrics.queue.to_string(),
            kind: ack.metrics.kind.to_string(),
            job: ack.lease.id,
            error: error.clone(),
        });
    }
    if fenced > 0 {
        // Rescued, cancelled or handed back while running: the result is discarded.
        tracing::debug!(fenced, "acks fenced off (lease no longer held)");
        metrics::stale_acks(fenced);
    }
    // Retries of our own: wake the producers so a short backoff is honoured to the millisecond.
    for s in &settled {
        match s.state {
            JobState::Available => signals.each(&s.queue, |q| q.runnable()),
            JobState::Scheduled => signals.each(&s.queue, |q| q.scheduled(Some(s.run_at))),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use cowans_core::JobId;

    use super::*;

    fn ack(id: i64, outcome: JobOutcome) -> Ack {
        Ack {
            lease: LeaseRef {
                id: JobId(id),
                lease: id * 10,
            },
            metrics: Arc::new(metrics::JobMetrics::new("q", "k")),
            attempt: 2,
            completed_in_tx: false,
            permit: None,
            outcome,
        }
    }

    #[test]
    fn a_batch_splits_into_completions_retries_and_dead_letters() {
        let batch = vec![
            ack(1, JobOutcome::Completed),
            ack(
                2,
                JobOutcome::Retry {
                    error: "later".into(),
                    delay: Duration::from_secs(3),
                },
            ),
            ack(
                3,
                JobOutcome::Dead {
                    error: "gone".into(),
                },
            ),
            ack(
                4,
                JobOutcome::Retry {
                    error: "now".into(),
                    delay: Duration::ZERO,
                },
            ),
            ack(5, JobOutcome::Completed),
        ];
        let (completed, failed) = split(&batch);
        assert_eq!(
            completed.iter().map(|l| l.id.0).collect::<Vec<_>>(),
            vec![1, 5]
        );
        let states: Vec<(i64, JobState, &str)> = failed
            .iter()
            .map(|f| (f.lease.id.0, f.next_state(), f.error.as_str()))
            .collect();
        assert_eq!(
            states,
            vec![
                (2, JobState::Scheduled, "later"),
                (3, JobState::Dead, "gone"),
                (4, JobState::Available, "now"),
            ]
        );
        assert!(
            failed
                .iter()
                .all(|f| f.attempt == 2 && f.lease.lease == f.lease.id.0 * 10)
        );
    }
}
