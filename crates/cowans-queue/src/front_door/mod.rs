//! The front door: every action on jobs, queues, dead letters, batches, API keys and the audit
//! log goes through [`FrontDoor`], whoever asks (the HTTP API, `cowans-worker ctl`, the console,
//! an application's own code). Each action does its state change, its audit entry and its event
//! in one transaction (so none can exist without the others), and counts its metric, once.
//!
//! Enqueueing comes in two flavours: `enqueue*` for code (counted, not audited: the application
//! action that caused the jobs is what the audit log records) and `submit*` for callers with an
//! [`Actor`] (validated against the registered kinds, audited and counted).

mod batches;
mod bulk_submit;
mod console;
mod exports;
mod keys;
mod on_redis;
mod submit_group;

pub use bulk_submit::BulkSubmit;
pub use console::{ConsoleLogin, ConsoleUser};
pub use exports::ExportStream;

use std::{sync::Arc, time::Duration};

use cowans_core::{
    Actor, Event, JobId, JobState, KindCheck, KindRegistry, QueueName,
    queue::{Backend, Driver},
};
use cowans_store::{
    AuditEntry, Cancelled, DeadLetterFilter, Enqueued, JobFilter, JobRecord, NewAudit, NewJob,
    PgPool, QueueStats, RateLimit, Result, StoreError, Unique,
};
use serde_json::{Value, json};
use sqlx::{Acquire, Postgres};

pub use keys::{ApiKeyRow, KEY_PREFIX as API_KEY_PREFIX};

use crate::{Backends, events::EventRelay, metrics};

/// The engine's one entry point for every action. Cheap to clone.
#[derive(Clone)]
pub struct FrontDoor {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    backends: Backends,
    kinds: KindRegistry,
    lease_ttl: Duration,
    group: Option<submit_group::SubmitGroup>,
}

/// Builds a [`FrontDoor`].
pub struct FrontDoorBuilder {
    pool: PgPool,
    backends: Option<Backends>,
    kinds: KindRegistry,
    lease_ttl: Duration,
    group_max: Option<usize>,
}

impl FrontDoorBuilder {
    /// The job kinds submits are checked against (default: none registered, unknown kinds
    /// accepted unchecked).
    pub fn kinds(mut self, kinds: KindRegistry) -> Self {
        self.kinds = kinds;
        self
    }

    /// Where each queue is stored (default: every queue in the front door's Postgres).
    pub fn backends(mut self, backends: Backends) -> Self {
        self.backends = Some(backends);
        self
    }

    /// The workers' `engine.lease_ttl`: a worker not seen for this long no longer counts as live
    /// in the queue summaries.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// Concurrent [`FrontDoor::submit`]s are committed together by one dispatcher, up to `max`
    /// per statement (1: each alone), at most two commits in flight. Without it each submit
    /// commits on its own connection. Needs a Tokio runtime at [`Self::build`].
    pub fn group_commit(mut self, max: usize) -> Self {
        self.group_max = Some(max.max(1));
        self
    }

    pub fn build(self) -> FrontDoor {
        let group = self
            .group_max
            .map(|max| submit_group::SubmitGroup::start(self.pool.clone(), max));
        let backends = self.backends.unwrap_or_else(|| {
            Backends::postgres(Arc::new(cowans_store::PgDriver::new(self.pool.clone())))
        });
        FrontDoor {
            inner: Arc::new(Inner {
                backends,
                pool: self.pool,
                kinds: self.kinds,
                lease_ttl: self.lease_ttl,
                group,
            }),
        }
    }
}

/// A job as a caller asks for it, before the kind's defaults are applied and it is checked.
#[derive(Debug, Clone, Default)]
pub struct Submission {
    /// `None`: the kind's default queue.
    pub queue: Option<String>,
    pub kind: String,
    pub args: Value,
    pub priority: i16,
    pub run_at: Option<chrono::DateTime<chrono::Utc>>,
    /// `None`: the kind's retry policy's attempts (or the engine's default).
    pub max_attempts: Option<i32>,
    pub unique_key: Option<String>,
    pub rate_key: Option<String>,
}

/// Which dead letters to re-drive.
#[derive(Debug, Clone)]
pub enum Redrive {
    Ids(Vec<JobId>),
    /// Every dead letter of the queue (of this kind, if given).
    All {
        kind: Option<String>,
    },
}

/// Where a bulk submit came from, for its audit entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkSource {
    /// A JSON array, all or nothing.
    Array,
    /// An NDJSON body's valid lines, all or nothing.
    Ndjson,
}

impl BulkSource {
    fn action(self) -> &'static str {
        match self {
            BulkSource::Array => "jobs.submit",
            BulkSource::Ndjson => "jobs.submit_ndjson",
        }
    }
}

impl FrontDoor {
    pub fn builder(pool: PgPool) -> FrontDoorBuilder {
        FrontDoorBuilder {
            pool,
            backends: None,
            kinds: KindRegistry::new(),
            lease_ttl: Duration::from_secs(30),
            group_max: None,
        }
    }

    /// Stops the group commit: later submits are answered `Unavailable`, queued ones are
    /// committed first. Call once, at shutdown.
    pub async fn shutdown(&self) {
        if let Some(g) = &self.inner.group {
            g.shutdown().await;
        }
    }

    /// The database the front door acts on (for applications' own transactions: an
    /// application's action writes its change and [`FrontDoor::record`]s it in one).
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// The registered job kinds.
    pub fn kinds(&self) -> &KindRegistry {
        &self.inner.kinds
    }

    /// Starts relaying live events to subscribers (one LISTEN connection).
    pub fn event_relay(&self) -> EventRelay {
        EventRelay::start(self.inner.pool.clone())
    }

    // ---- enqueue, for code ----

    /// One job. A job whose unique key is taken answers with the holder's id, marked duplicate.
    pub async fn enqueue(&self, job: &NewJob) -> Result<Enqueued> {
        if let Some(redis) = self.redis_queue(job.queue.as_str()) {
            let done = redis.enqueue(std::slice::from_ref(job)).await?;
            count_enqueued(job, &done[0]);
            return Ok(done[0]);
        }
        let done =
            cowans_store::enqueue_autocommit(&self.inner.pool, std::slice::from_ref(job)).await?;
        count_enqueued(job, &done[0]);
        Ok(done[0])
    }

    /// Many jobs, one statement; a result per job, in input order.
    /// Jobs of Redis queues are stored there (all or none per backend).
    pub async fn enqueue_many(&self, jobs: &[NewJob]) -> Result<Vec<Enqueued>> {
        let done = if self.any_on_redis(jobs) {
            self.inner.backends.enqueue(jobs).await?
        } else {
            cowans_store::enqueue_autocommit(&self.inner.pool, jobs).await?
        };
        count_all(jobs, &done);
        Ok(done)
    }

    /// Inside the caller's transaction (`&mut *tx`): the job is invisible until it commits and
    /// gone if it rolls back. A job of a Redis queue is refused (`Invalid` naming `queue`):
    /// Redis cannot join the transaction.
    pub async fn enqueue_in<'c, A>(&self, conn: A, job: &'c NewJob) -> Result<Enqueued>
    where
        A: Acquire<'c, Database = Postgres> + Send + 'c,
    {
        if self.redis_queue(job.queue.as_str()).is_some() {
            return Err(on_redis::not_on_redis(
                "queue",
                job.queue.as_str(),
                "enqueueing inside a Postgres transaction",
            ));
        }
        let done = cowans_store::enqueue(conn, job).await?;
        count_enqueued(job, &done);
        Ok(done)
    }

    // ---- submit, for callers with an actor ----

    /// Turns a submission into a job: the kind's defaults applied, then every field checked
    /// (what the store would refuse, then the payload against the kind's type). The error names
    /// the field (`args.items[2].sku`).
    pub fn prepare(&self, s: Submission) -> Result<NewJob> {
        let kinds = &self.inner.kinds;
        let spec = kinds.get(&s.kind);
        let unknown = |kind: &str| {
            let known: Vec<&str> = kinds.names().collect();
            StoreError::invalid(
                "kind",
                format!(
                    "is {kind:?}, which no worker registers; known kinds: {}",
                    known.join(", ")
                ),
            )
        };
        // An unknown kind is the problem to name, not the default queue it cannot have.
        if spec.is_none() && kinds.rejects_unknown() {
            return Err(unknown(&s.kind));
        }
        let queue = match s
            .queue
            .or_else(|| spec.and_then(|k| k.queue()).map(str::to_owned))
        {
            Some(q) => {
                QueueName::new(q).map_err(|e| StoreError::invalid("queue", e.to_string()))?
            }
            None => {
                return Err(StoreError::invalid(
                    "queue",
                    format!("is required: kind {:?} has no default queue", s.kind),
                ));
            }
        };
        let mut job = NewJob::new(queue, s.kind, s.args).priority(s.priority);
        if let Some(m) = s
            .max_attempts
            .or_else(|| spec.and_then(|k| k.max_attempts()))
        {
            job = job.max_attempts(m);
        }
        if let Some(t) = s.run_at {
            job = job.run_at(t);
        }
        if let Some(k) = s.unique_key {
            job = job.unique(Unique::key(k));
        }
        if let Some(k) = s.rate_key {
            job = job.rate_key(k);
        }
        // Named as the submission names it (`unique_key`), not as the store's `Unique` does.
        job.check().map_err(|e| match StoreError::from(e) {
            StoreError::Invalid { field, message } if field == "unique.key" => {
                StoreError::invalid("unique_key", message)
            }
            other => other,
        })?;
        match kinds.check(&job.kind, &mut job.args) {
            KindCheck::Valid | KindCheck::Unchecked => Ok(job),
            KindCheck::Unknown => Err(unknown(&job.kind)),
            KindCheck::Invalid(e) => {
                let field = if e.path.is_empty() {
                    "args".to_owned()
                } else {
                    format!("args.{}", e.path)
                };
                Err(StoreError::invalid(field, e.message))
            }
        }
    }

    /// One job submitted by `actor`, audited as `job.submit` in the insert's own statement.
    /// Concurrent submits share one commit (see [`FrontDoorBuilder::group_commit`]); the
    /// answer comes after the commit.
    pub async fn submit(&self, actor: &Actor, job: NewJob) -> Result<Enqueued> {
        if self.redis_queue(job.queue.as_str()).is_some() {
            let jobs = std::slice::from_ref(&job);
            let done = self
                .submit_split(jobs, |done| {
                    ("job.submit", on_redis::submit_entries(actor, jobs, done))
                })
                .await?;
            return Ok(done[0]);
        }
        match &self.inner.group {
            Some(g) => g.submit(job, actor).await,
            None => {
                let done = cowans_store::enqueue_audited(
                    &self.inner.pool,
                    std::slice::from_ref(&job),
                    std::slice::from_ref(actor),
                )
                .await?;
                count_submitted(&job, &done[0]);
                Ok(done[0])
            }
        }
    }

    /// Many jobs submitted by `actor`: one statement, all or nothing, with one audit entry, in
    /// one transaction.
    pub async fn submit_many(
        &self,
        actor: &Actor,
        source: BulkSource,
        jobs: &[NewJob],
    ) -> Result<Vec<Enqueued>> {
        if self.any_on_redis(jobs) {
            return self
                .submit_split(jobs, |done| {
                    let duplicates = done.iter().filter(|d| d.duplicate).count();
                    let details = json!({ "jobs": jobs.len(), "duplicates": duplicates });
                    let entry = NewAudit::by(actor, source.action(), None, details);
                    (source.action(), vec![entry])
                })
                .await;
        }
        let mut tx = self.inner.pool.begin().await?;
        let done = cowans_store::enqueue_many(&mut *tx, jobs).await?;
        let duplicates = done.iter().filter(|d| d.duplicate).count();
        let details = json!({ "jobs": jobs.len(), "duplicates": duplicates });
        let recorded = self
            .record(&mut tx, actor, source.action(), None, details)
            .await?;
        recorded.commit(tx).await?;
        count_all(jobs, &done);
        Ok(done)
    }

    // ---- jobs ----

    pub async fn job(&self, id: JobId) -> Result<JobRecord> {
        let found = match self.redis_job(id)? {
            Some(redis) => redis.job(id).await?,
            None => cowans_store::get_job(&self.inner.pool, id).await?,
        };
        found.ok_or_else(|| StoreError::not_found(format!("job {id}")))
    }

    /// A page of jobs in id order after `after`.
    pub async fn jobs(
        &self,
        filter: &JobFilter,
        after: Option<JobId>,
        limit: i64,
    ) -> Result<Vec<JobRecord>> {
        if let Some(q) = &filter.queue
            && let Some(redis) = self.redis_queue(q)
        {
            let Some(batch) = filter.batch else {
                let kind = filter.kind.as_deref();
                return Ok(redis.list_jobs(q, filter.state, kind, after, limit).await?);
            };
            return self
                .redis_batch_jobs(redis, q, batch, filter, after, limit)
                .await;
        }
        let mut found = cowans_store::list_jobs(&self.inner.pool, filter, after, limit).await?;
        // A batch's jobs on any queue: those on Redis queues too (ids above Postgres' range).
        if let (None, Some(batch)) = (&filter.queue, filter.batch)
            && let Some(p) = cowans_store::batch_progress(&self.inner.pool, batch).await?
        {
            for q in &p.redis_queues {
                if let Some(redis) = self.redis_queue(q) {
                    let more = self
                        .redis_batch_jobs(redis, q, batch, filter, after, limit)
                        .await?;
                    found.extend(more);
                }
            }
            found.sort_unstable_by_key(|j| j.id);
            found.truncate(usize::try_from(limit).unwrap_or(0));
        }
        Ok(found)
    }

    /// A page of batch `batch`'s jobs on Redis queue `q` matching `filter`, in id order.
    async fn redis_batch_jobs(
        &self,
        redis: &Arc<dyn Driver>,
        q: &str,
        batch: i64,
        filter: &JobFilter,
        after: Option<JobId>,
        limit: i64,
    ) -> Result<Vec<JobRecord>> {
        // A batch's members on Redis are a set: read them in id order.
        let mut ids = redis.batch_jobs(q, batch).await?;
        ids.sort_unstable();
        let kind = filter.kind.as_deref();
        let mut found = Vec::new();
        for id in ids.into_iter().filter(|id| after.is_none_or(|a| *id > a)) {
            if found.len() as i64 >= limit {
                break;
            }
            if let Some(j) = redis.job(id).await?
                && filter.state.is_none_or(|s| s == j.state)
                && kind.is_none_or(|k| k == j.kind)
            {
                found.push(j);
            }
        }
        Ok(found)
    }

    /// Jobs of `queue` per state, every state listed. Counts rows: for the progress of one run,
    /// not for dashboards (the leader's summary is the cheap one).
    pub async fn count_by_state(&self, queue: &QueueName) -> Result<Vec<(JobState, i64)>> {
        if let Some(redis) = self.redis_queue(queue.as_str()) {
            let counted = redis.count_by_state(queue.as_str()).await?;
            return Ok(JobState::ALL
                .into_iter()
                .map(|s| {
                    let n = counted.iter().find(|(c, _)| *c == s).map_or(0, |(_, n)| *n);
                    (s, n)
                })
                .collect());
        }
        cowans_store::count_by_state(&self.inner.pool, queue.as_str()).await
    }

    /// Cancels one job (`NotFound`, or `Conflict` naming its state if it has finished).
    pub async fn cancel(&self, actor: &Actor, id: JobId) -> Result<Cancelled> {
        if let Some(redis) = self.redis_job(id)? {
            return self.cancel_on_redis(redis, actor, id).await;
        }
        let mut tx = self.inner.pool.begin().await?;
        let done = cowans_store::cancel_job(&mut *tx, id).await?;
        let details = json!({ "was": done.was });
        let recorded = self
            .record(
                &mut tx,
                actor,
                "job.cancel",
                Some(format!("job:{id}")),
                details,
            )
            .await?;
        recorded.commit(tx).await?;
        Ok(done)
    }

    /// Cancels those of `ids` that have not finished; the others are left alone.
    pub async fn cancel_many(&self, actor: &Actor, ids: &[JobId]) -> Result<Vec<Cancelled>> {
        let (on_redis, on_pg): (Vec<JobId>, Vec<JobId>) = ids
            .iter()
            .partition(|id| Backend::of_job(**id) == Backend::Redis);
        let mut done = Vec::new();
        if !on_pg.is_empty() || on_redis.is_empty() {
            let mut tx = self.inner.pool.begin().await?;
            done = cowans_store::cancel_jobs(&mut *tx, &on_pg).await?;
            let cancelled: Vec<i64> = done.iter().map(|c| c.id.0).collect();
            let details = json!({ "asked": on_pg.len(), "cancelled": cancelled });
            let recorded = self
                .record(&mut tx, actor, "jobs.cancel", None, details)
                .await?;
            recorded.commit(tx).await?;
        }
        if !on_redis.is_empty() {
            // After the Postgres part committed, audited on its own (even when it stopped part
            // way: what was cancelled is on record).
            let (rd_done, failed) = self.cancel_some_on_redis(&on_redis).await;
            let cancelled: Vec<i64> = rd_done.iter().map(|c| c.id.0).collect();
            let details = json!({ "asked": on_redis.len(), "cancelled": cancelled });
            let entry = NewAudit::by(actor, "jobs.cancel", None, details);
            let events = self.cancelled_events(&rd_done).await;
            self.audit_after("jobs.cancel", vec![entry], events).await;
            if let Some(e) = failed {
                return Err(e);
            }
            done.extend(rd_done);
        }
        Ok(done)
    }

    /// Runs a dead or cancelled job again from its first attempt.
    pub async fn retry(&self, actor: &Actor, id: JobId) -> Result<()> {
        if let Some(redis) = self.redis_job(id)? {
            return self.retry_on_redis(redis, actor, id).await;
        }
        let mut tx = self.inner.pool.begin().await?;
        cowans_store::retry_job(&mut *tx, id).await?;
        let recorded = self
            .record(
                &mut tx,
                actor,
                "job.retry",
                Some(format!("job:{id}")),
                json!({}),
            )
            .await?;
        recorded.commit(tx).await?;
        Ok(())
    }

    // ---- dead letters ----

    /// A page of the dead letters matching `filter`, oldest id first, after `after`.
    pub async fn dead_letters(
        &self,
        filter: &DeadLetterFilter,
        after: Option<JobId>,
        limit: i64,
    ) -> Result<Vec<JobRecord>> {
        if let Some(q) = &filter.queue
            && let Some(redis) = self.redis_queue(q)
        {
            let kind = filter.kind.as_deref();
            return Ok(redis
                .list_jobs(q, Some(JobState::Dead), kind, after, limit)
                .await?);
        }
        cowans_store::list_dead(&self.inner.pool, filter, after, limit).await
    }

    /// How many dead letters `queue` has (of `kind`, if given): the count a purge expects.
    pub async fn count_dead(&self, queue: &QueueName, kind: Option<&str>) -> Result<u64> {
        if let Some(redis) = self.redis_queue(queue.as_str()) {
            let Some(kind) = kind else {
                // Per state, the size of a sorted set.
                let counts = redis.count_by_state(queue.as_str()).await?;
                let dead = counts.iter().find(|(s, _)| *s == JobState::Dead);
                return Ok(dead.map_or(0, |(_, n)| (*n).max(0) as u64));
            };
            let mut n = 0;
            let mut after = None;
            loop {
                let page = redis
                    .list_jobs(
                        queue.as_str(),
                        Some(JobState::Dead),
                        Some(kind),
                        after,
                        1000,
                    )
                    .await?;
                n += page.len() as u64;
                match page.last() {
                    Some(last) if page.len() == 1000 => after = Some(last.id),
                    _ => return Ok(n),
                }
            }
        }
        let filter = DeadLetterFilter {
            queue: Some(queue.to_string()),
            kind: kind.map(str::to_owned),
        };
        cowans_store::count_dead(&self.inner.pool, &filter).await
    }

    /// Re-drives dead letters of `queue`; returns how many went back.
    pub async fn redrive(&self, actor: &Actor, queue: &QueueName, what: Redrive) -> Result<u64> {
        if let Some(redis) = self.redis_queue(queue.as_str()) {
            return self.redrive_on_redis(redis, actor, queue, what).await;
        }
        let mut tx = self.inner.pool.begin().await?;
        let (count, details) = match &what {
            Redrive::Ids(ids) => {
                let n = cowans_store::redrive_ids_in(&mut *tx, Some(queue.as_str()), ids)
                    .await?
                    .len() as u64;
                let ids: Vec<i64> = ids.iter().map(|i| i.0).collect();
                (n, json!({ "ids": ids, "redriven": n }))
            }
            Redrive::All { kind } => {
                let filter = DeadLetterFilter {
                    queue: Some(queue.to_string()),
                    kind: kind.clone(),
                };
                let n = cowans_store::redrive_matching(&mut *tx, &filter).await?;
                (n, json!({ "kind": kind, "redriven": n }))
            }
        };
        let recorded = self
            .record(
                &mut tx,
                actor,
                "dead.redrive",
                Some(format!("queue:{queue}")),
                details,
            )
            .await?;
        recorded.commit(tx).await?;
        Ok(count)
    }

    /// Deletes the dead letters of `queue` (of `kind`, if given), but only if there are exactly
    /// `expected` of them: `Conflict` with `{expected, actual}` otherwise, and nothing deleted.
    pub async fn purge(
        &self,
        actor: &Actor,
        queue: &QueueName,
        kind: Option<String>,
        expected: u64,
    ) -> Result<u64> {
        if let Some(redis) = self.redis_queue(queue.as_str()) {
            let n = redis
                .purge_dead(queue.as_str(), kind.as_deref(), expected)
                .await?;
            let entry = NewAudit::by(
                actor,
                "dead.purge",
                Some(format!("queue:{queue}")),
                json!({ "kind": kind, "purged": n }),
            );
            let events = (n > 0)
                .then(|| Event::DeadPurged {
                    queue: queue.to_string(),
                    count: n,
                })
                .into_iter()
                .collect();
            self.audit_after("dead.purge", vec![entry], events).await;
            return Ok(n);
        }
        let filter = DeadLetterFilter {
            queue: Some(queue.to_string()),
            kind,
        };
        let mut tx = self.inner.pool.begin().await?;
        let n = cowans_store::purge_dead(&mut *tx, &filter, Some(expected)).await?;
        let details = json!({ "kind": filter.kind, "purged": n });
        let recorded = self
            .record(
                &mut tx,
                actor,
                "dead.purge",
                Some(format!("queue:{queue}")),
                details,
            )
            .await?;
        recorded.commit(tx).await?;
        Ok(n)
    }

    // ---- queues ----

    /// The leader's summary of every queue.
    pub async fn queues(&self) -> Result<Vec<QueueStats>> {
        Ok(self
            .inner
            .backends
            .queue_stats(None, self.inner.lease_ttl)
            .await?)
    }

    /// One queue's summary (`NotFound` until the leader has counted it).
    pub async fn queue(&self, queue: &QueueName) -> Result<QueueStats> {
        self.inner
            .backends
            .queue_stats(Some(queue.as_str()), self.inner.lease_ttl)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                StoreError::not_found(format!(
                    "a summary of queue {queue} (no jobs yet, or the leader has not counted it)"
                ))
            })
    }

    /// Counts every queue now instead of waiting for the leader (`ctl queues`).
    pub async fn refresh_queue_stats(&self) -> Result<()> {
        Ok(self.inner.backends.refresh_queue_stats().await?)
    }

    /// Pauses (`true`) or resumes a queue for the whole fleet.
    pub async fn set_paused(&self, actor: &Actor, queue: &QueueName, paused: bool) -> Result<()> {
        if let Some(redis) = self.redis_queue(queue.as_str()) {
            return self.set_paused_on_redis(redis, actor, queue, paused).await;
        }
        let mut tx = self.inner.pool.begin().await?;
        cowans_store::set_paused(&mut *tx, queue, paused).await?;
        let action = if paused {
            "queue.pause"
        } else {
            "queue.resume"
        };
        let recorded = self
            .record(
                &mut tx,
                actor,
                action,
                Some(format!("queue:{queue}")),
                json!({}),
            )
            .await?;
        recorded.commit(tx).await?;
        Ok(())
    }

    /// A queue's paused state and fleet-wide limits, as its backend holds them.
    pub async fn limits(&self, queue: &QueueName) -> Result<cowans_core::queue::QueueControl> {
        Ok(self.inner.backends.queue_control(queue.as_str()).await?)
    }

    /// Sets (or with `None`, removes) a queue's fleet-wide limits. Limits already in force are
    /// left alone: nothing is written, audited or announced (every worker applies its settings'
    /// limits at start).
    pub async fn set_limits(
        &self,
        actor: &Actor,
        queue: &QueueName,
        concurrency: Option<u32>,
        rate: Option<RateLimit>,
    ) -> Result<()> {
        if let Some(redis) = self.redis_queue(queue.as_str()) {
            if !redis.set_limits(queue, concurrency, rate).await? {
                return Ok(());
            }
            let entry = NewAudit::by(
                actor,
                "queue.limits",
                Some(format!("queue:{queue}")),
                limits_details(concurrency, rate),
            );
            let event = Event::queue_limits(queue.as_str(), concurrency, rate);
            self.audit_after("queue.limits", vec![entry], vec![event])
                .await;
            return Ok(());
        }
        let mut tx = self.inner.pool.begin().await?;
        if !cowans_store::set_queue_limits(&mut *tx, queue, concurrency, rate).await? {
            return Ok(());
        }
        let details = limits_details(concurrency, rate);
        let recorded = self
            .record(
                &mut tx,
                actor,
                "queue.limits",
                Some(format!("queue:{queue}")),
                details,
            )
            .await?;
        recorded.commit(tx).await?;
        Ok(())
    }

    // ---- audit ----

    /// Failed attempts grouped by kind and error pattern (of `kind` and `class` when given),
    /// most recently seen first.
    pub async fn error_groups(
        &self,
        kind: Option<&str>,
        class: Option<&str>,
        limit: i64,
    ) -> Result<Vec<cowans_store::ErrorGroup>> {
        cowans_store::list_error_groups(&self.inner.pool, kind, class, limit).await
    }

    /// Audit entries, newest first, before `before`.
    pub async fn audit_log(&self, before: Option<i64>, limit: i64) -> Result<Vec<AuditEntry>> {
        cowans_store::list_audit(&self.inner.pool, before, limit).await
    }

    /// Writes `actor`'s `action` to the audit log inside `tx` (an application's own actions use
    /// this too, in the transaction that makes their change); [`Recorded::commit`] commits and
    /// counts it.
    pub async fn record(
        &self,
        tx: &mut sqlx::PgConnection,
        actor: &Actor,
        action: &'static str,
        target: Option<String>,
        details: Value,
    ) -> Result<Recorded> {
        cowans_store::audit(tx, &NewAudit::by(actor, action, target, details)).await?;
        Ok(Recorded(action))
    }
}

/// An action written to the audit log, to be counted when its transaction commits.
#[must_use = "commit the transaction with `Recorded::commit`, which counts the action"]
pub struct Recorded(&'static str);

impl Recorded {
    /// Commits the action's transaction, then counts it in `cowans_actions_total`.
    pub async fn commit(self, tx: sqlx::Transaction<'_, Postgres>) -> Result<()> {
        tx.commit().await?;
        metrics::action(self.0);
        Ok(())
    }
}

/// The audit details of a `queue.limits` action.
fn limits_details(concurrency: Option<u32>, rate: Option<RateLimit>) -> Value {
    json!({
        "concurrency_limit": concurrency,
        "rate_jobs": rate.map(|r| r.jobs),
        "rate_period_ms": rate.map(|r| r.period.as_millis() as u64),
        "rate_by_key": rate.is_some_and(|r| r.by_key),
    })
}

/// Counts an inserted job (not a duplicate) in `cowans_jobs_enqueued_total`.
pub(crate) fn count_enqueued(job: &NewJob, done: &Enqueued) {
    if !done.duplicate {
        metrics::enqueued(job.queue.as_str(), &job.kind, 1);
    }
}

/// Counts a single submit (audited as `job.submit` in its insert's statement) and its job.
pub(crate) fn count_submitted(job: &NewJob, done: &Enqueued) {
    metrics::action("job.submit");
    count_enqueued(job, done);
}

fn count_all(jobs: &[NewJob], done: &[Enqueued]) {
    let mut counts: std::collections::HashMap<(&str, &str), u64> = Default::default();
    for (j, _) in jobs.iter().zip(done).filter(|(_, d)| !d.duplicate) {
        *counts
            .entry((j.queue.as_str(), j.kind.as_str()))
            .or_default() += 1;
    }
    for ((q, k), n) in counts {
        metrics::enqueued(q, k, n);
    }
}

/// An error several waiters must each receive: domain errors are copied, an unexpected database
/// failure becomes an opaque one (its cause was logged once).
pub(crate) fn shareable(e: StoreError) -> impl Fn() -> StoreError {
    move || match &e {
        StoreError::Invalid { field, message } => {
            StoreError::invalid(field.clone(), message.clone())
        }
        StoreError::NotFound { what } => StoreError::not_found(what.clone()),
        StoreError::Conflict { message, details } => StoreError::Conflict {
            message: message.clone(),
            details: details.clone(),
        },
        StoreError::StaleLease => StoreError::StaleLease,
        StoreError::Unavailable { message } => StoreError::Unavailable {
            message: message.clone(),
        },
        StoreError::Database(_) | StoreError::Migrate(_) => {
            StoreError::Database(sqlx::Error::Protocol("the group commit failed".to_owned()))
        }
    }
}
