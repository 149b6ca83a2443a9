//! Queues on two backends behind one driver: [`Backends`] sends each queue's calls to the
//! backend its settings name (`backend = "redis"`), each job's to the backend its id names
//! ([`Backend::of_job`]), and fleet-wide calls to both. Postgres is the primary: it holds the
//! leader lease, cron, batches and the audit log, so the engine's leader runs every queue's
//! maintenance (promote, rescue, prune) through this one driver.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cowans_core::{
    Event, JobId, JobState, QueueName,
    event::BatchCounts,
    queue::{
        Backend, ClaimCursor, ClaimedJob, Driver, Enqueued, Failed, Granted, JobRecord, LeaderTerm,
        LeaseRef, LimitResult, Limiter, NewJob, Permit, Promotion, Pruned, QueueControl,
        QueueResult, QueueStats, RateLimit, Rescued, Retention, Settled, WakeupSink, WorkerInfo,
    },
};
use uuid::Uuid;

/// The backends of a fleet and which queues live on Redis. Cheap to clone.
#[derive(Clone)]
pub struct Backends {
    postgres: Arc<dyn Driver>,
    redis: Option<Arc<dyn Driver>>,
    /// The fleet-wide limits of the Redis queues.
    redis_limiter: Option<Arc<dyn Limiter>>,
    on_redis: Arc<HashSet<String>>,
}

impl Backends {
    /// Every queue on `postgres`.
    pub fn postgres(postgres: Arc<dyn Driver>) -> Self {
        Self {
            postgres,
            redis: None,
            redis_limiter: None,
            on_redis: Default::default(),
        }
    }

    /// `queues` on `redis` (their limits kept by `limiter`), every other queue on `postgres`.
    pub fn with_redis(
        postgres: Arc<dyn Driver>,
        redis: Arc<dyn Driver>,
        limiter: Arc<dyn Limiter>,
        queues: impl IntoIterator<Item = QueueName>,
    ) -> Self {
        Self {
            postgres,
            redis: Some(redis),
            redis_limiter: Some(limiter),
            on_redis: Arc::new(queues.into_iter().map(|q| q.to_string()).collect()),
        }
    }

    /// The same routes with another Postgres driver (the engine's, on its own pool).
    pub fn on_postgres(&self, postgres: Arc<dyn Driver>) -> Self {
        Self {
            postgres,
            redis: self.redis.clone(),
            redis_limiter: self.redis_limiter.clone(),
            on_redis: self.on_redis.clone(),
        }
    }

    /// The fleet-wide limits of every queue: `postgres`'s for Postgres queues, the Redis
    /// limiter's for Redis queues (`postgres` alone when no Redis is configured).
    pub fn limiter(&self, postgres: Arc<dyn Limiter>) -> Arc<dyn Limiter> {
        match &self.redis_limiter {
            Some(redis) => Arc::new(RoutedLimiter {
                postgres,
                redis: redis.clone(),
                on_redis: self.on_redis.clone(),
            }),
            None => postgres,
        }
    }

    /// The backend storing `queue`.
    pub fn backend_of(&self, queue: &str) -> Backend {
        if self.on_redis.contains(queue) {
            Backend::Redis
        } else {
            Backend::Postgres
        }
    }

    /// The driver of `queue`.
    pub fn for_queue(&self, queue: &str) -> &Arc<dyn Driver> {
        match (&self.redis, self.backend_of(queue)) {
            (Some(r), Backend::Redis) => r,
            _ => &self.postgres,
        }
    }

    /// The driver of the job with this id (`None`: a Redis id and no Redis configured).
    pub fn for_job(&self, id: JobId) -> Option<&Arc<dyn Driver>> {
        match Backend::of_job(id) {
            Backend::Postgres => Some(&self.postgres),
            Backend::Redis => self.redis.as_ref(),
        }
    }

    /// The Redis driver, when one is configured.
    pub fn redis(&self) -> Option<&Arc<dyn Driver>> {
        self.redis.as_ref()
    }

    /// A fleet-wide pass's Redis part: `None` (logged) when Redis fails, so Postgres' part of
    /// the pass (rescue, prune, ...) never waits for Redis to come back.
    async fn redis_part<T, F, Fut>(&self, what: &str, f: F) -> Option<T>
    where
        F: FnOnce(Arc<dyn Driver>) -> Fut,
        Fut: Future<Output = QueueResult<T>>,
    {
        let r = self.redis.clone()?;
        match f(r).await {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(error = %e, "Redis {what} failed; Postgres' part went ahead");
                None
            }
        }
    }

    /// Announces `job.dead` for these Redis jobs on Postgres (Redis cannot reach the live
    /// streams): read back for their kind, batch and last error. Best effort, like every
    /// event: a failure is logged, never fails the transition that already happened.
    async fn announce_dead_on_redis(&self, ids: &[JobId]) {
        let Some(redis) = &self.redis else { return };
        if ids.is_empty() {
            return;
        }
        // Read back at once (the connection pipelines them): a flood of dead letters must not
        // hold up the acks behind it one round trip per job.
        let read = futures::future::join_all(
            ids.iter()
                .map(|&id| async move { (id, redis.job(id).await) }),
        )
        .await;
        let mut events = Vec::with_capacity(ids.len());
        for (id, job) in read {
            match job {
                Ok(Some(job)) => {
                    let last = job.errors.last();
                    events.push(Event::JobDead {
                        job_id: id,
                        queue: job.queue,
                        kind: job.kind,
                        batch_id: job.batch_id,
                        attempt: last.map_or(job.attempt, |e| e.attempt),
                        error: Event::short_error(last.map_or("", |e| e.error.as_str())),
                    })
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, job = %id, "cannot read a dead Redis job to announce it")
                }
            }
        }
        if let Err(e) = self.postgres.announce(&events).await {
            tracing::warn!(error = %e, jobs = events.len(), "could not announce Redis jobs' job.dead events");
        }
    }

    /// Where each of `jobs` goes, by its queue.
    pub(crate) fn split_jobs(&self, jobs: &[NewJob]) -> JobSplit {
        let (redis, postgres) = (0..jobs.len())
            .partition(|&i| self.backend_of(jobs[i].queue.as_str()) == Backend::Redis);
        JobSplit { postgres, redis }
    }

    /// `items` split by the backend of their job id: (Postgres', Redis').
    fn split_ids<T: Clone>(&self, items: &[T], id: impl Fn(&T) -> JobId) -> (Vec<T>, Vec<T>) {
        let mut pg = Vec::new();
        let mut rd = Vec::new();
        for item in items {
            match Backend::of_job(id(item)) {
                Backend::Postgres => pg.push(item.clone()),
                Backend::Redis => rd.push(item.clone()),
            }
        }
        (pg, rd)
    }

    /// Runs `f` on Postgres with the Postgres part and on Redis with the Redis part (each only
    /// when its part is not empty), at once; concatenates the answers.
    async fn both<T, R, F, Fut>(&self, (pg, rd): (Vec<T>, Vec<T>), f: F) -> QueueResult<Vec<R>>
    where
        F: Fn(Arc<dyn Driver>, Vec<T>) -> Fut,
        Fut: Future<Output = QueueResult<Vec<R>>>,
    {
        let redis = match (&self.redis, rd.is_empty()) {
            (Some(r), false) => Some(f(r.clone(), rd)),
            _ => None,
        };
        let postgres = (!pg.is_empty()).then(|| f(self.postgres.clone(), pg));
        let (a, b) = futures::join!(
            async {
                match postgres {
                    Some(p) => p.await,
                    None => Ok(Vec::new()),
                }
            },
            async {
                match redis {
                    Some(r) => r.await,
                    None => Ok(Vec::new()),
                }
            }
        );
        let mut out = a?;
        out.extend(b?);
        Ok(out)
    }
}

/// A call's jobs split by backend: their indexes in the call, in order.
pub(crate) struct JobSplit {
    pub(crate) postgres: Vec<usize>,
    pub(crate) redis: Vec<usize>,
}

impl JobSplit {
    /// The jobs of one backend.
    pub(crate) fn pick(&self, jobs: &[NewJob], backend: Backend) -> Vec<NewJob> {
        let idx = match backend {
            Backend::Postgres => &self.postgres,
            Backend::Redis => &self.redis,
        };
        idx.iter().map(|&i| jobs[i].clone()).collect()
    }

    /// Both backends' answers back in the call's order.
    pub(crate) fn merge(&self, postgres: Vec<Enqueued>, redis: Vec<Enqueued>) -> Vec<Enqueued> {
        let mut out = vec![
            Enqueued {
                id: JobId(0),
                duplicate: false
            };
            self.postgres.len() + self.redis.len()
        ];
        let placed = self
            .postgres
            .iter()
            .zip(postgres)
            .chain(self.redis.iter().zip(redis));
        for (&i, e) in placed {
            out[i] = e;
        }
        out
    }
}

#[async_trait]
impl Driver for Backends {
    /// The primary's: the leader's Postgres-side upkeep (cron, batches, index upkeep) runs.
    fn backend(&self) -> &'static str {
        self.postgres.backend()
    }

    fn backend_of(&self, queue: &str) -> Backend {
        Backends::backend_of(self, queue)
    }

    /// Each backend's part is all or none; a call with jobs of both is not atomic across them.
    async fn enqueue(&self, jobs: &[NewJob]) -> QueueResult<Vec<Enqueued>> {
        let Some(redis) = &self.redis else {
            return self.postgres.enqueue(jobs).await;
        };
        let split = self.split_jobs(jobs);
        if split.redis.is_empty() {
            return self.postgres.enqueue(jobs).await;
        }
        if split.postgres.is_empty() {
            return redis.enqueue(jobs).await;
        }
        let (pg_jobs, rd_jobs) = (
            split.pick(jobs, Backend::Postgres),
            split.pick(jobs, Backend::Redis),
        );
        let (a, b) = futures::join!(self.postgres.enqueue(&pg_jobs), redis.enqueue(&rd_jobs));
        Ok(split.merge(a?, b?))
    }

    async fn claim(
        &self,
        queue: &QueueName,
        limit: usize,
        worker: Uuid,
        lease_ttl: Duration,
        after: Option<&ClaimCursor>,
    ) -> QueueResult<Vec<ClaimedJob>> {
        self.for_queue(queue.as_str())
            .claim(queue, limit, worker, lease_ttl, after)
            .await
    }

    async fn complete(&self, refs: &[LeaseRef], delete: bool) -> QueueResult<Vec<JobId>> {
        self.both(self.split_ids(refs, |r| r.id), |d, part| async move {
            d.complete(&part, delete).await
        })
        .await
    }

    async fn settle_failures(&self, worker: Uuid, failed: &[Failed]) -> QueueResult<Vec<Settled>> {
        let (pg, rd) = self.split_ids(failed, |f| f.lease.id);
        let (mut settled, on_redis) = futures::join!(
            async {
                if pg.is_empty() {
                    Ok(Vec::new())
                } else {
                    self.postgres.settle_failures(worker, &pg).await
                }
            },
            async {
                match (&self.redis, rd.is_empty()) {
                    (Some(r), false) => r.settle_failures(worker, &rd).await,
                    _ => Ok(Vec::new()),
                }
            },
        );
        // Redis' dead letters are announced even when Postgres' part failed: they are settled.
        if let Ok(on_redis) = &on_redis {
            let dead: Vec<JobId> = on_redis
                .iter()
                .filter(|s| s.state == JobState::Dead)
                .map(|s| s.id)
                .collect();
            self.announce_dead_on_redis(&dead).await;
        }
        if let Ok(s) = &mut settled {
            s.extend(on_redis?);
        }
        settled
    }

    async fn release(&self, refs: &[LeaseRef]) -> QueueResult<Vec<JobId>> {
        self.both(self.split_ids(refs, |r| r.id), |d, part| async move {
            d.release(&part).await
        })
        .await
    }

    async fn defer(&self, jobs: &[(LeaseRef, DateTime<Utc>)]) -> QueueResult<Vec<i64>> {
        self.both(self.split_ids(jobs, |(r, _)| r.id), |d, part| async move {
            d.defer(&part).await
        })
        .await
    }

    async fn promote_due(&self, queues: &[QueueName], limit: i64) -> QueueResult<Promotion> {
        let (rd, pg): (Vec<QueueName>, Vec<QueueName>) = queues
            .iter()
            .cloned()
            .partition(|q| self.backend_of(q.as_str()) == Backend::Redis);
        let promoted = self
            .both((pg, rd), |d, part| async move {
                Ok(vec![d.promote_due(&part, limit).await?])
            })
            .await?;
        Ok(Promotion {
            promoted: promoted.iter().map(|p| p.promoted).sum(),
            next_due: promoted.iter().filter_map(|p| p.next_due).min(),
        })
    }

    async fn queue_control(&self, queue: &str) -> QueueResult<QueueControl> {
        self.for_queue(queue).queue_control(queue).await
    }

    async fn set_paused(&self, queue: &QueueName, paused: bool) -> QueueResult<()> {
        self.for_queue(queue.as_str())
            .set_paused(queue, paused)
            .await
    }

    async fn set_limits(
        &self,
        queue: &QueueName,
        concurrency: Option<u32>,
        rate: Option<RateLimit>,
    ) -> QueueResult<bool> {
        self.for_queue(queue.as_str())
            .set_limits(queue, concurrency, rate)
            .await
    }

    /// Marks the worker alive on both backends (each counts its live workers) and extends each
    /// backend's leases.
    async fn heartbeat(
        &self,
        worker: &WorkerInfo,
        running: &[LeaseRef],
        lease_ttl: Duration,
    ) -> QueueResult<Vec<JobId>> {
        let (pg, rd) = self.split_ids(running, |r| r.id);
        let Some(redis) = &self.redis else {
            return self.postgres.heartbeat(worker, &pg, lease_ttl).await;
        };
        let (a, b) = futures::join!(
            self.postgres.heartbeat(worker, &pg, lease_ttl),
            redis.heartbeat(worker, &rd, lease_ttl)
        );
        let mut held = a?;
        match b {
            Ok(b) => held.extend(b),
            // Unknown is not lost: the handlers go on (their acks are fenced if the leases
            // did expire meanwhile), and Postgres' leases were extended all the same.
            Err(e) => {
                tracing::warn!(error = %e, "cannot extend the Redis leases; trying again at the next heartbeat");
                held.extend(rd.iter().map(|r| r.id));
            }
        }
        Ok(held)
    }

    async fn rescue_expired(&self, limit: i64) -> QueueResult<Rescued> {
        let mut out = self.postgres.rescue_expired(limit).await?;
        if let Some(more) = self
            .redis_part("rescue", |r| async move { r.rescue_expired(limit).await })
            .await
        {
            self.announce_dead_on_redis(&more.dead_ids).await;
            out.retried.extend(more.retried);
            out.dead.extend(more.dead);
            out.dead_ids.extend(more.dead_ids);
        }
        Ok(out)
    }

    async fn register_worker(&self, info: &WorkerInfo) -> QueueResult<()> {
        self.postgres.register_worker(info).await?;
        if let Some(r) = &self.redis {
            r.register_worker(info).await?;
        }
        Ok(())
    }

    async fn deregister_worker(&self, id: Uuid) -> QueueResult<()> {
        let pg = self.postgres.deregister_worker(id).await;
        if let Some(r) = &self.redis {
            r.deregister_worker(id).await?;
        }
        pg
    }

    async fn forget_stale_workers(&self, older_than: Duration) -> QueueResult<u64> {
        let n = self.postgres.forget_stale_workers(older_than).await?;
        let more = self
            .redis_part("forget stale workers", |r| async move {
                r.forget_stale_workers(older_than).await
            })
            .await;
        Ok(n + more.unwrap_or(0))
    }

    async fn try_lead(
        &self,
        role: &str,
        holder: Uuid,
        ttl: Duration,
    ) -> QueueResult<Option<LeaderTerm>> {
        self.postgres.try_lead(role, holder, ttl).await
    }

    async fn resign_leader(&self, role: &str, holder: Uuid) -> QueueResult<()> {
        self.postgres.resign_leader(role, holder).await
    }

    async fn prune(&self, retention: Retention, limit: i64) -> QueueResult<Pruned> {
        let mut out = self.postgres.prune(retention, limit).await?;
        if let Some(more) = self
            .redis_part("prune", |r| async move { r.prune(retention, limit).await })
            .await
        {
            out.finished += more.finished;
            out.dead += more.dead;
            out.batches += more.batches;
        }
        Ok(out)
    }

    async fn refresh_queue_stats(&self) -> QueueResult<()> {
        self.postgres.refresh_queue_stats().await?;
        self.redis_part(
            "refresh stats",
            |r| async move { r.refresh_queue_stats().await },
        )
        .await;
        Ok(())
    }

    /// One queue from its backend; every queue from both, a queue known to both (moved from
    /// one to the other) once, from the backend its settings name now.
    async fn queue_stats(
        &self,
        queue: Option<&str>,
        live_within: Duration,
    ) -> QueueResult<Vec<QueueStats>> {
        if let Some(q) = queue {
            return self.for_queue(q).queue_stats(Some(q), live_within).await;
        }
        let mut all: Vec<QueueStats> = self
            .postgres
            .queue_stats(None, live_within)
            .await?
            .into_iter()
            .filter(|s| self.backend_of(&s.queue) == Backend::Postgres)
            .collect();
        let redis = self
            .redis_part("queue stats", |r| async move {
                r.queue_stats(None, live_within).await
            })
            .await;
        all.extend(
            redis
                .unwrap_or_default()
                .into_iter()
                .filter(|s| self.backend_of(&s.queue) == Backend::Redis),
        );
        all.sort_by(|a, b| a.queue.cmp(&b.queue));
        Ok(all)
    }

    async fn count_by_state(&self, queue: &str) -> QueueResult<Vec<(JobState, i64)>> {
        self.for_queue(queue).count_by_state(queue).await
    }

    async fn job(&self, id: JobId) -> QueueResult<Option<JobRecord>> {
        match self.for_job(id) {
            Some(d) => d.job(id).await,
            None => Ok(None),
        }
    }

    async fn cancel(&self, id: JobId) -> QueueResult<JobState> {
        match self.for_job(id) {
            Some(d) => d.cancel(id).await,
            None => Err(cowans_core::queue::QueueError::NotFound {
                what: format!("job {id}"),
            }),
        }
    }

    async fn list_jobs(
        &self,
        queue: &str,
        state: Option<JobState>,
        kind: Option<&str>,
        after: Option<JobId>,
        limit: i64,
    ) -> QueueResult<Vec<JobRecord>> {
        self.for_queue(queue)
            .list_jobs(queue, state, kind, after, limit)
            .await
    }

    async fn purge_dead(&self, queue: &str, kind: Option<&str>, expected: u64) -> QueueResult<u64> {
        self.for_queue(queue)
            .purge_dead(queue, kind, expected)
            .await
    }

    async fn redrive(&self, ids: &[JobId]) -> QueueResult<Vec<JobId>> {
        self.both(self.split_ids(ids, |id| *id), |d, part| async move {
            d.redrive(&part).await
        })
        .await
    }

    async fn retry(&self, id: JobId) -> QueueResult<()> {
        match self.for_job(id) {
            Some(d) => d.retry(id).await,
            None => Err(cowans_core::queue::QueueError::not_found(format!(
                "job {id}"
            ))),
        }
    }

    async fn count_batches(
        &self,
        queue: &str,
        batches: &[i64],
    ) -> QueueResult<HashMap<i64, BatchCounts>> {
        self.for_queue(queue).count_batches(queue, batches).await
    }

    async fn batch_jobs(&self, queue: &str, batch: i64) -> QueueResult<Vec<JobId>> {
        self.for_queue(queue).batch_jobs(queue, batch).await
    }

    async fn close_batches(&self, queue: &str, batches: &[i64]) -> QueueResult<()> {
        self.for_queue(queue).close_batches(queue, batches).await
    }

    async fn announce(&self, events: &[Event]) -> QueueResult<()> {
        self.postgres.announce(events).await
    }

    async fn listen(&self, sink: Arc<dyn WakeupSink>) {
        match &self.redis {
            Some(r) => {
                futures::join!(self.postgres.listen(sink.clone()), r.listen(sink));
            }
            None => self.postgres.listen(sink).await,
        }
    }
}

/// Limits by scope (a queue name): a Redis queue's in Redis, every other in Postgres.
struct RoutedLimiter {
    postgres: Arc<dyn Limiter>,
    redis: Arc<dyn Limiter>,
    on_redis: Arc<HashSet<String>>,
}

impl RoutedLimiter {
    fn of(&self, scope: &str) -> &Arc<dyn Limiter> {
        if self.on_redis.contains(scope) {
            &self.redis
        } else {
            &self.postgres
        }
    }
}

#[async_trait]
impl Limiter for RoutedLimiter {
    async fn acquire(
        &self,
        scope: &Arc<str>,
        limit: u32,
        want: u32,
        holder: Uuid,
        ttl: Duration,
    ) -> LimitResult<Vec<Permit>> {
        self.of(scope)
            .acquire(scope, limit, want, holder, ttl)
            .await
    }

    async fn release(&self, permits: &[Permit]) -> LimitResult<()> {
        let (rd, pg): (Vec<Permit>, Vec<Permit>) = permits
            .iter()
            .cloned()
            .partition(|p| self.on_redis.contains(&*p.scope));
        // Each backend's whatever the other answers: a permit not given back holds a slot
        // until it expires.
        let pg = if pg.is_empty() {
            Ok(())
        } else {
            self.postgres.release(&pg).await
        };
        let rd = if rd.is_empty() {
            Ok(())
        } else {
            self.redis.release(&rd).await
        };
        pg.and(rd)
    }

    async fn extend(&self, holder: Uuid, ttl: Duration) -> LimitResult<()> {
        let (pg, rd) = futures::join!(
            self.postgres.extend(holder, ttl),
            self.redis.extend(holder, ttl)
        );
        pg.and(rd)
    }

    async fn release_all(&self, holder: Uuid) -> LimitResult<()> {
        let pg = self.postgres.release_all(holder).await;
        self.redis.release_all(holder).await?;
        pg
    }

    async fn take(
        &self,
        scope: &str,
        rate: RateLimit,
        keys: &[String],
        wants: &[u32],
    ) -> LimitResult<Vec<Granted>> {
        self.of(scope).take(scope, rate, keys, wants).await
    }

    async fn refund(&self, scope: &str, rate: RateLimit, key: &str, n: u32) -> LimitResult<()> {
        self.of(scope).refund(scope, rate, key, n).await
    }
}
