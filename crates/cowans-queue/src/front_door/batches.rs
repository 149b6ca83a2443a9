//! Batches: created in one call (audited), counted live, cancelled as a whole. A batch lives in
//! Postgres; its jobs may be on Postgres and Redis queues (see [`crate::refresh_batches`] for
//! how it progresses and finishes), and its callback job on either.

use cowans_core::{
    Actor, KindCheck,
    queue::{Backend, Driver},
};
use cowans_store::{BatchCallback, BatchProgress, Enqueued, NewAudit, NewJob, Result, StoreError};
use serde_json::json;

use super::FrontDoor;

impl FrontDoor {
    /// Creates a batch of `jobs` (audited), with an optional callback job enqueued once when
    /// every job is final. The batch and its Postgres jobs are one transaction; jobs on Redis
    /// queues are stored before it commits, and cancelled again (logged) if anything after
    /// them fails, so a refused batch leaves no job to run.
    pub async fn create_batch(
        &self,
        actor: &Actor,
        description: &str,
        jobs: &[NewJob],
        callback: Option<&BatchCallback>,
    ) -> Result<(i64, Vec<Enqueued>)> {
        if let Some(cb) = callback {
            self.check_callback(cb)?;
        }
        let mut tx = self.inner.pool.begin().await?;
        // Set once jobs may be stored on Redis: a failure from then on takes them back.
        let mut on_redis = None;
        let stored = async {
            let (id, done) = if self.any_on_redis(jobs) {
                self.store_across(&mut tx, description, jobs, callback, &mut on_redis)
                    .await?
            } else {
                cowans_store::create_batch(&mut *tx, description, jobs, callback).await?
            };
            let details = json!({ "jobs": done.len() });
            self.record(
                &mut tx,
                actor,
                "batch.create",
                Some(format!("batch:{id}")),
                details,
            )
            .await?
            .commit(tx)
            .await?;
            Ok::<_, StoreError>((id, done))
        }
        .await;
        match stored {
            Ok((id, done)) => {
                super::count_all(jobs, &done);
                Ok((id, done))
            }
            Err(e) => {
                if let Some((id, queues)) = on_redis {
                    self.take_back(id, &queues, &e).await;
                }
                Err(e)
            }
        }
    }

    /// Stores a batch with jobs on both backends: the batch and its Postgres jobs in `tx`, its
    /// Redis jobs on Redis (`on_redis` says which batch and queues once they may be there).
    async fn store_across(
        &self,
        tx: &mut sqlx::PgConnection,
        description: &str,
        jobs: &[NewJob],
        callback: Option<&BatchCallback>,
        on_redis: &mut Option<(i64, Vec<String>)>,
    ) -> Result<(i64, Vec<Enqueued>)> {
        cowans_store::validate_all(jobs)?;
        let backends = &self.inner.backends;
        let redis = backends
            .redis()
            .ok_or_else(|| StoreError::invalid("queue", "is on Redis, which is not configured"))?;
        let split = backends.split_jobs(jobs);
        let mut redis_queues: Vec<String> = split
            .redis
            .iter()
            .map(|&i| jobs[i].queue.to_string())
            .collect();
        redis_queues.sort();
        redis_queues.dedup();
        let id =
            cowans_store::open_batch(tx, description, jobs.len(), callback, &redis_queues).await?;
        let batch_jobs = cowans_store::in_batch(id, jobs);
        let pg_done =
            cowans_store::enqueue_many(&mut *tx, &split.pick(&batch_jobs, Backend::Postgres))
                .await?;
        *on_redis = Some((id, redis_queues));
        let rd_done = redis
            .enqueue(&split.pick(&batch_jobs, Backend::Redis))
            .await?;
        let done = split.merge(pg_done, rd_done);
        cowans_store::set_batch_total(tx, id, jobs.len(), &done).await?;
        Ok((id, done))
    }

    /// Cancels and forgets whatever of a refused batch's jobs were stored on Redis.
    async fn take_back(&self, id: i64, queues: &[String], why: &StoreError) {
        let Some(redis) = self.inner.backends.redis() else {
            return;
        };
        for q in queues {
            let ids = match redis.batch_jobs(q, id).await {
                Ok(ids) => ids,
                Err(e) => {
                    tracing::error!(error = %e, refused_for = %why, batch = id, queue = %q,
                        "a refused batch's jobs on Redis could not be found to cancel them");
                    continue;
                }
            };
            let (done, failed) = self.cancel_some_on_redis(&ids).await;
            if let Some(e) = failed {
                tracing::error!(error = %e, refused_for = %why, batch = id, queue = %q,
                    cancelled = done.len(), stored = ids.len(),
                    "a refused batch's jobs on Redis could not all be cancelled");
            } else if !ids.is_empty() {
                tracing::warn!(refused_for = %why, batch = id, queue = %q, cancelled = ids.len(),
                    "a refused batch's jobs on Redis were cancelled");
            }
            if let Err(e) = redis.close_batches(q, &[id]).await {
                tracing::warn!(error = %e, batch = id, queue = %q, "could not release a refused batch's keys on Redis");
            }
        }
    }

    /// A batch created inside the caller's transaction (an application's own batch, made with
    /// the row that describes it); the caller audits its action. Returns the batch's id. Its
    /// jobs must be on Postgres queues (the caller's transaction could not take back jobs
    /// stored on Redis); its callback may be on either.
    pub async fn create_batch_in(
        &self,
        conn: &mut sqlx::PgConnection,
        description: &str,
        jobs: &[NewJob],
        callback: Option<&BatchCallback>,
    ) -> Result<i64> {
        if let Some((i, j)) = jobs
            .iter()
            .enumerate()
            .find(|(_, j)| self.redis_queue(j.queue.as_str()).is_some())
        {
            return Err(super::on_redis::not_on_redis(
                &format!("jobs[{i}].queue"),
                j.queue.as_str(),
                "batches made in a transaction",
            ));
        }
        let (id, done) = cowans_store::create_batch(conn, description, jobs, callback).await?;
        super::count_all(jobs, &done);
        Ok(id)
    }

    /// A callback's kind must be registered (where unknown kinds are refused), and its payload
    /// must take what the callback job will carry: `{batch_id, counts, args}`.
    fn check_callback(&self, cb: &BatchCallback) -> Result<()> {
        let kinds = &self.inner.kinds;
        if let Some(info) = kinds.info(&cb.kind)
            && !info.takes_batch_callback()
        {
            return Err(StoreError::invalid(
                "callback.kind",
                format!(
                    "{:?} cannot be a batch callback: its payload does not take {{batch_id, counts, args}}",
                    cb.kind
                ),
            ));
        }
        let mut carried = json!({"batch_id": 0, "counts": {}, "args": cb.args});
        match kinds.check(&cb.kind, &mut carried) {
            KindCheck::Valid | KindCheck::Unchecked => Ok(()),
            KindCheck::Unknown => Err(StoreError::invalid(
                "callback.kind",
                format!("is {:?}, which no worker registers", cb.kind),
            )),
            KindCheck::Invalid(e) => Err(StoreError::invalid(
                format!(
                    "callback.{}",
                    if e.path.is_empty() { "args" } else { &e.path }
                ),
                e.message,
            )),
        }
    }

    /// A batch with live counts of its jobs, wherever they are.
    pub async fn batch(&self, id: i64) -> Result<BatchProgress> {
        let mut p = cowans_store::batch_progress(&self.inner.pool, id)
            .await?
            .ok_or_else(|| StoreError::not_found(format!("batch {id}")))?;
        self.count_on_redis(std::slice::from_mut(&mut p)).await?;
        Ok(p)
    }

    /// The newest `limit` batches before id `before`, newest first, each with live counts.
    pub async fn batches(&self, before: Option<i64>, limit: i64) -> Result<Vec<BatchProgress>> {
        let mut found = cowans_store::recent_batches(&self.inner.pool, before, limit).await?;
        self.count_on_redis(&mut found).await?;
        Ok(found)
    }

    /// Adds open batches' jobs on Redis queues to their counts: one count per Redis queue for
    /// all the batches that have jobs on it.
    async fn count_on_redis(&self, batches: &mut [BatchProgress]) -> Result<()> {
        let mut by_queue: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
        for p in batches.iter_mut() {
            for q in std::mem::take(&mut p.redis_queues) {
                by_queue.entry(q).or_default().push(p.id);
            }
        }
        for (q, ids) in by_queue {
            let counted = self.inner.backends.count_batches(&q, &ids).await?;
            for p in batches.iter_mut() {
                if let Some(c) = counted.get(&p.id) {
                    cowans_store::add_counts(&mut p.counts, c);
                }
            }
        }
        Ok(())
    }

    /// Cancels a batch's unfinished jobs (Redis ones first, then the Postgres ones and the
    /// batch itself, audited with both counts); returns how many. A Redis failure part way
    /// still cancels and audits the rest, then answers the error: calling again finishes it.
    pub async fn cancel_batch(&self, actor: &Actor, id: i64) -> Result<u64> {
        let p = cowans_store::batch_progress(&self.inner.pool, id)
            .await?
            .ok_or_else(|| StoreError::not_found(format!("batch {id}")))?;
        let mut on_redis = 0;
        let mut failure = None;
        for q in &p.redis_queues {
            let ids = match self.inner.backends.batch_jobs(q, id).await {
                Ok(ids) => ids,
                Err(e) => {
                    failure = Some(e.into());
                    break;
                }
            };
            let (done, err) = self.cancel_some_on_redis(&ids).await;
            on_redis += done.len() as u64;
            if let Some(e) = err {
                failure = Some(e);
                break;
            }
        }
        let on_postgres = async {
            let mut tx = self.inner.pool.begin().await?;
            let n = cowans_store::cancel_batch(&mut *tx, id, on_redis)
                .await?
                .len() as u64;
            let details = json!({ "cancelled": n + on_redis });
            self.record(
                &mut tx,
                actor,
                "batch.cancel",
                Some(format!("batch:{id}")),
                details,
            )
            .await?
            .commit(tx)
            .await?;
            Ok::<_, StoreError>(n)
        }
        .await;
        let n = match on_postgres {
            Ok(n) => n + on_redis,
            Err(e) => {
                // What was cancelled on Redis is on record all the same.
                if on_redis > 0 {
                    let entry = NewAudit::by(
                        actor,
                        "batch.cancel",
                        Some(format!("batch:{id}")),
                        json!({ "cancelled": on_redis, "stopped": e.to_string() }),
                    );
                    self.audit_after("batch.cancel", vec![entry], Vec::new())
                        .await;
                }
                return Err(e);
            }
        };
        match failure {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }
}
