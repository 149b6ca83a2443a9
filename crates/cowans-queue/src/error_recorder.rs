//! Error tracking's writer: the completer hands it each accepted failed attempt; one task per
//! process merges them and writes them to Postgres (`cowans_store::record_errors`: one
//! statement, so at most one connection) at most every [`INTERVAL`], off the ack path. A full
//! buffer drops samples (counted in `cowans_error_samples_dropped_total`) instead of holding up
//! an ack; what it holds when the process stops is written before the completer ends.

use std::time::Duration;

use cowans_store::{ErrorSample, PgPool};
use tokio::{sync::mpsc, task::JoinHandle};

use crate::metrics;

/// Samples buffered before new ones are dropped.
const CAPACITY: usize = 10_000;
/// The least time between two writes (what arrives meanwhile is merged into the next).
const INTERVAL: Duration = Duration::from_millis(250);
/// The most samples merged into one write.
const PER_WRITE: usize = 2_000;

/// Where the completer's writers send failed attempts.
#[derive(Clone)]
pub(crate) struct ErrorRecorder {
    tx: mpsc::Sender<ErrorSample>,
}

impl ErrorRecorder {
    /// Starts the writer; it ends (after writing what it holds) once every `ErrorRecorder` is
    /// dropped.
    pub(crate) fn start(pool: PgPool) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(CAPACITY);
        (Self { tx }, tokio::spawn(write(pool, rx)))
    }

    pub(crate) fn record(&self, sample: ErrorSample) {
        if self.tx.try_send(sample).is_err() {
            metrics::error_sample_dropped();
        }
    }
}

async fn write(pool: PgPool, mut rx: mpsc::Receiver<ErrorSample>) {
    let mut batch = Vec::with_capacity(PER_WRITE);
    while rx.recv_many(&mut batch, PER_WRITE).await > 0 {
        if let Err(e) = cowans_store::record_errors(&pool, &batch).await {
            tracing::warn!(error = %e, failures = batch.len(), "could not record failed attempts for error tracking");
        }
        batch.clear();
        tokio::time::sleep(INTERVAL).await;
    }
}
