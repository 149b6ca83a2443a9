//! Enqueueing from Rust, with the enqueue counter kept.

use cowans_store::{Enqueued, NewJob, PgPool, Result};

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

    /// One job. A job whose unique key is taken answers with the holder's id, marked duplicate.
    pub async fn enqueue(&self, job: &NewJob) -> Result<Enqueued> {
        let done = cowans_store::enqueue_autocommit(&self.pool, std::slice::from_ref(job)).await?;
        if !done[0].duplicate {
            metrics::enqueued(job.queue.as_str(), &job.kind, 1);
        }
        Ok(done[0])
    }

    pub async fn enqueue_in<'c>(
        &self,
        conn: impl sqlx::Acquire<'c, Database = sqlx::Postgres> + Send + 'c,
        job: &'c NewJob,
    ) -> Result<Enqueued> {
        let done = cowans_store::enqueue(conn, job).await?;
        if !done.duplicate {
            metrics::enqueued(job.queue.as_str(), &job.kind, 1);
        }
        Ok(done)
    }

    /// Many jobs, one statement; a result per job, in input order.
    pub async fn enqueue_many(&self, jobs: &[NewJob]) -> Result<Vec<Enqueued>> {
        let done = cowans_store::enqueue_autocommit(&self.pool, jobs).await?;
        let mut counts: std::collections::HashMap<(&str, &str), u64> = Default::default();
        for (j, _) in jobs.iter().zip(&done).filter(|(_, d)| !d.duplicate) {
            *counts
                .entry((j.queue.as_str(), j.kind.as_str()))
                .or_default() += 1;
        }
        for ((q, k), n) in counts {
            metrics::enqueued(q, k, n);
        }
        Ok(done)
    }
}
