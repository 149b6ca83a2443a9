//! The front door's actions on jobs and queues stored in Redis. The change is made on Redis and
//! its audit entry written to Postgres after it: the two stores share no transaction, so an
//! action is never refused for its audit entry, and an entry that cannot be written is logged
//! in full (as an error) instead of being lost silently.

use std::sync::Arc;

use cowans_core::{
    Actor, Event, JobId, JobState, QueueName,
    queue::{Backend, Driver, Enqueued, JobRecord, NewJob},
};
use cowans_store::{Cancelled, NewAudit, Result, StoreError};
use serde_json::json;

use super::{FrontDoor, Redrive};
use crate::metrics;

impl FrontDoor {
    /// The Redis driver when `queue` is stored there.
    pub(super) fn redis_queue(&self, queue: &str) -> Option<&Arc<dyn Driver>> {
        let b = &self.inner.backends;
        (b.backend_of(queue) == Backend::Redis)
            .then(|| b.redis())
            .flatten()
    }

    /// The Redis driver when the job with this id is stored there (`NotFound` for a Redis id
    /// without Redis configured).
    pub(super) fn redis_job(&self, id: JobId) -> Result<Option<&Arc<dyn Driver>>> {
        match Backend::of_job(id) {
            Backend::Postgres => Ok(None),
            Backend::Redis => self
                .inner
                .backends
                .redis()
                .map(Some)
                .ok_or_else(|| StoreError::not_found(format!("job {id}"))),
        }
    }

    /// Whether any of `jobs` goes to a Redis queue.
    pub(super) fn any_on_redis(&self, jobs: &[NewJob]) -> bool {
        jobs.iter()
            .any(|j| self.redis_queue(j.queue.as_str()).is_some())
    }

    /// Writes audit entries after their change was made on Redis, counts `action` (once per
    /// entry), then announces the change's `events` (best effort, like every event: a failure
    /// is logged and loses no audit entry).
    pub(super) async fn audit_after(
        &self,
        action: &'static str,
        entries: Vec<NewAudit>,
        events: Vec<Event>,
    ) {
        let written = async {
            let mut conn = self.inner.pool.acquire().await?;
            cowans_store::audit_many(&mut conn, &entries).await
        }
        .await;
        match written {
            Ok(()) => {
                for _ in &entries {
                    metrics::action(action);
                }
            }
            Err(e) => tracing::error!(
                error = %e, ?entries,
                "a change on Redis was made but its audit entries could not be written"
            ),
        }
        if let Err(e) = self.inner.backends.announce(&events).await {
            tracing::warn!(error = %e, ?events, "could not announce a change made on Redis");
        }
    }

    /// `job.cancelled` for Redis jobs just cancelled (read back for their queue, kind and
    /// batch; one that cannot be read is left out).
    pub(super) async fn cancelled_events(&self, done: &[Cancelled]) -> Vec<Event> {
        let read = futures::future::join_all(done.iter().map(|c| self.redis_record(c.id))).await;
        done.iter()
            .zip(read)
            .filter_map(|(c, job)| {
                let job = job?;
                Some(Event::JobCancelled {
                    job_id: c.id,
                    queue: job.queue,
                    kind: job.kind,
                    batch_id: job.batch_id,
                    was: c.was,
                })
            })
            .collect()
    }

    /// A Redis job as stored, for an event about it (`None`, logged, when it cannot be read).
    async fn redis_record(&self, id: JobId) -> Option<JobRecord> {
        let redis = self.redis_job(id).ok().flatten()?;
        match redis.job(id).await {
            Ok(job) => job,
            Err(e) => {
                tracing::warn!(error = %e, job = %id, "cannot read a Redis job for its event");
                None
            }
        }
    }

    /// Submits jobs of which some go to Redis queues: each backend's part is all or none, the
    /// Redis part stored after the Postgres part's statement and before its commit (a refused
    /// Redis part leaves nothing behind); the audit entries follow.
    pub(super) async fn submit_split(
        &self,
        jobs: &[NewJob],
        audit: impl FnOnce(&[Enqueued]) -> (&'static str, Vec<NewAudit>),
    ) -> Result<Vec<Enqueued>> {
        let split = self.inner.backends.split_jobs(jobs);
        let redis =
            self.inner.backends.redis().ok_or_else(|| {
                StoreError::invalid("queue", "is on Redis, which is not configured")
            })?;
        let done = if split.postgres.is_empty() {
            redis.enqueue(jobs).await?
        } else {
            let mut tx = self.inner.pool.begin().await?;
            let pg_jobs = split.pick(jobs, Backend::Postgres);
            let pg_done = cowans_store::enqueue_many(&mut *tx, &pg_jobs).await?;
            let rd_done = redis.enqueue(&split.pick(jobs, Backend::Redis)).await?;
            if let Err(e) = tx.commit().await {
                tracing::error!(
                    error = %e, redis_jobs = rd_done.len(), postgres_jobs = pg_done.len(),
                    "a submit's Redis jobs were stored but its Postgres jobs could not be committed"
                );
                return Err(e.into());
            }
            split.merge(pg_done, rd_done)
        };
        let (action, entries) = audit(&done);
        self.audit_after(action, entries, Vec::new()).await;
        super::count_all(jobs, &done);
        Ok(done)
    }

    /// Cancels a Redis job, audited as `job.cancel`.
    pub(super) async fn cancel_on_redis(
        &self,
        redis: &Arc<dyn Driver>,
        actor: &Actor,
        id: JobId,
    ) -> Result<Cancelled> {
        let was = redis.cancel(id).await?;
        let done = Cancelled { id, was };
        let events = self.cancelled_events(&[done]).await;
        self.audit_after(
            "job.cancel",
            vec![NewAudit::by(
                actor,
                "job.cancel",
                Some(format!("job:{id}")),
                json!({ "was": was }),
            )],
            events,
        )
        .await;
        Ok(done)
    }

    /// Cancels those of `ids` (all on Redis) that have not finished; what it cancelled, and
    /// the error that stopped it part way, if one did.
    pub(super) async fn cancel_some_on_redis(
        &self,
        ids: &[JobId],
    ) -> (Vec<Cancelled>, Option<StoreError>) {
        let mut done = Vec::new();
        for &id in ids {
            let Some(redis) = self.redis_job(id).ok().flatten() else {
                continue;
            };
            match redis.cancel(id).await {
                Ok(was) => done.push(Cancelled { id, was }),
                Err(cowans_core::queue::QueueError::NotFound { .. })
                | Err(cowans_core::queue::QueueError::Conflict { .. }) => {}
                Err(e) => return (done, Some(e.into())),
            }
        }
        (done, None)
    }

    /// Runs a dead or cancelled Redis job again from its first attempt.
    pub(super) async fn retry_on_redis(
        &self,
        redis: &Arc<dyn Driver>,
        actor: &Actor,
        id: JobId,
    ) -> Result<()> {
        redis.retry(id).await?;
        let events = self
            .redis_record(id)
            .await
            .map(|job| Event::JobRetried {
                job_id: id,
                queue: job.queue,
                kind: job.kind,
                batch_id: job.batch_id,
            })
            .into_iter()
            .collect();
        self.audit_after(
            "job.retry",
            vec![NewAudit::by(
                actor,
                "job.retry",
                Some(format!("job:{id}")),
                json!({}),
            )],
            events,
        )
        .await;
        Ok(())
    }

    /// Re-drives dead letters of a Redis queue (the named ones of this queue, or every one of
    /// a kind, page by page), audited as `dead.redrive`.
    pub(super) async fn redrive_on_redis(
        &self,
        redis: &Arc<dyn Driver>,
        actor: &Actor,
        queue: &QueueName,
        what: Redrive,
    ) -> Result<u64> {
        let (n, details, failed) = match &what {
            Redrive::Ids(ids) => {
                // Only this queue's dead letters, as on Postgres.
                let mut mine = Vec::new();
                for &id in ids {
                    if Backend::of_job(id) == Backend::Redis
                        && redis
                            .job(id)
                            .await?
                            .is_some_and(|j| j.queue == queue.as_str())
                    {
                        mine.push(id);
                    }
                }
                let n = redis.redrive(&mine).await?.len() as u64;
                let ids: Vec<i64> = ids.iter().map(|i| i.0).collect();
                (n, json!({ "ids": ids, "redriven": n }), None)
            }
            Redrive::All { kind } => {
                let mut n = 0u64;
                let mut after = None;
                let failed = loop {
                    let page = match redis
                        .list_jobs(
                            queue.as_str(),
                            Some(JobState::Dead),
                            kind.as_deref(),
                            after,
                            500,
                        )
                        .await
                    {
                        Ok(p) => p,
                        Err(e) => break Some(e),
                    };
                    let Some(last) = page.last() else { break None };
                    after = Some(last.id);
                    let ids: Vec<JobId> = page.iter().map(|j| j.id).collect();
                    match redis.redrive(&ids).await {
                        Ok(moved) => n += moved.len() as u64,
                        Err(e) => break Some(e),
                    }
                };
                let mut details = json!({ "kind": kind, "redriven": n });
                if let Some(e) = &failed {
                    // Stopped part way: what went back is on record all the same.
                    details["stopped"] = json!(e.to_string());
                }
                (n, details, failed)
            }
        };
        let entry = NewAudit::by(
            actor,
            "dead.redrive",
            Some(format!("queue:{queue}")),
            details,
        );
        let events = (n > 0)
            .then(|| Event::DeadRedriven {
                queue: queue.to_string(),
                count: n,
            })
            .into_iter()
            .collect();
        self.audit_after("dead.redrive", vec![entry], events).await;
        if let Some(e) = failed {
            return Err(e.into());
        }
        Ok(n)
    }

    /// Pauses or resumes a Redis queue, audited.
    pub(super) async fn set_paused_on_redis(
        &self,
        redis: &Arc<dyn Driver>,
        actor: &Actor,
        queue: &QueueName,
        paused: bool,
    ) -> Result<()> {
        redis.set_paused(queue, paused).await?;
        let name = queue.to_string();
        let (action, event) = if paused {
            ("queue.pause", Event::QueuePaused { queue: name })
        } else {
            ("queue.resume", Event::QueueResumed { queue: name })
        };
        self.audit_after(
            action,
            vec![NewAudit::by(
                actor,
                action,
                Some(format!("queue:{queue}")),
                json!({}),
            )],
            vec![event],
        )
        .await;
        Ok(())
    }
}

/// What a Redis queue cannot do yet, as the error naming the field.
pub(super) fn not_on_redis(field: &str, queue: &str, what: &str) -> StoreError {
    StoreError::invalid(
        field,
        format!("queue {queue} is stored in Redis, which does not support {what} yet"),
    )
}

/// The `job.submit` audit entries of jobs submitted one by one.
pub(super) fn submit_entries(actor: &Actor, jobs: &[NewJob], done: &[Enqueued]) -> Vec<NewAudit> {
    jobs.iter()
        .zip(done)
        .map(|(job, e)| {
            NewAudit::by(
                actor,
                "job.submit",
                Some(format!("job:{}", e.id)),
                json!({ "queue": job.queue, "kind": job.kind, "duplicate": e.duplicate }),
            )
        })
        .collect()
}
