//! A bulk submit that arrives in parts (an NDJSON body read as it streams in): every part is
//! inserted into one open transaction, and nothing is visible, counted or audited until
//! [`BulkSubmit::commit`]. Dropped without a commit, it leaves nothing behind.

use cowans_core::Actor;
use cowans_store::{Enqueued, NewJob, Result};
use serde_json::json;
use sqlx::Postgres;

use std::collections::HashMap;

use super::{BulkSource, FrontDoor};
use crate::metrics;

/// An open bulk submit; see the module.
pub struct BulkSubmit {
    front: FrontDoor,
    tx: sqlx::Transaction<'static, Postgres>,
    /// Inserted jobs per (queue, kind), counted in the metrics at commit.
    inserted: HashMap<(String, String), u64>,
    jobs: usize,
    duplicates: usize,
}

impl FrontDoor {
    /// Opens a bulk submit (one transaction until [`BulkSubmit::commit`]).
    pub async fn bulk_submit(&self) -> Result<BulkSubmit> {
        Ok(BulkSubmit {
            front: self.clone(),
            tx: self.inner.pool.begin().await?,
            inserted: HashMap::new(),
            jobs: 0,
            duplicates: 0,
        })
    }
}

impl BulkSubmit {
    /// Inserts `jobs` (one statement), visible only after the commit.
    pub async fn add(&mut self, jobs: &[NewJob]) -> Result<Vec<Enqueued>> {
        let done = cowans_store::enqueue_many(&mut *self.tx, jobs).await?;
        self.jobs += jobs.len();
        self.duplicates += done.iter().filter(|d| d.duplicate).count();
        for (job, _) in jobs.iter().zip(&done).filter(|(_, d)| !d.duplicate) {
            let key = (job.queue.to_string(), job.kind.clone());
            *self.inserted.entry(key).or_default() += 1;
        }
        Ok(done)
    }

    /// Commits every part with one audit entry by `actor`; then the jobs are runnable.
    pub async fn commit(mut self, actor: &Actor, source: BulkSource) -> Result<()> {
        let details = json!({ "jobs": self.jobs, "duplicates": self.duplicates });
        let recorded = self
            .front
            .record(&mut self.tx, actor, source.action(), None, details)
            .await?;
        recorded.commit(self.tx).await?;
        for ((queue, kind), n) in self.inserted {
            metrics::enqueued(&queue, &kind, n);
        }
        Ok(())
    }
}
