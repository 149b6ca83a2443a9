//! Enqueueing from Rust, with the enqueue counter kept.

use cowans_core::JobId;
use cowans_store::{NewJob, PgPool, Result};

use crate::metrics;

/// Inserts jobs. For enqueueing inside your own transaction call [`Client::enqueue_in`] with
/// `&mut *tx`: the jobs are invisible until the transaction commits and gone if it rolls back.
#[derive(Clone)]
pub struct Client {
    pool: PgPool,
}

impl Client {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub async fn enqueue(&self, job: &NewJob) -> Result<JobId> {
        let ids = cowans_store::enqueue_autocommit(&self.pool, std::slice::from_ref(job)).await?;
        metrics::enqueued(job.queue.as_str(), &job.kind, 1);
        Ok(ids[0])
    }

    pub async fn enqueue_in<'e>(
        &self,
        executor: impl sqlx::PgExecutor<'e>,
        job: &NewJob,
    ) -> Result<JobId> {
        let id = cowans_store::enqueue(executor, job).await?;
        metrics::enqueued(job.queue.as_str(), &job.kind, 1);
        Ok(id)
    }

    /// Many jobs, one statement; ids in input order.
    pub async fn enqueue_many(&self, jobs: &[NewJob]) -> Result<Vec<JobId>> {
        let ids = cowans_store::enqueue_autocommit(&self.pool, jobs).await?;
        let mut counts: std::collections::HashMap<(&str, &str), u64> = Default::default();
        for j in jobs {
            *counts
                .entry((j.queue.as_str(), j.kind.as_str()))
                .or_default() += 1;
        }
        for ((q, k), n) in counts {
            metrics::enqueued(q, k, n);
        }
        Ok(ids)
    }
}
