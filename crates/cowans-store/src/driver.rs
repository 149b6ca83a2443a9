//! [`PgDriver`]: the engine's [`Driver`] over this crate's statements, plus the LISTEN loop that
//! turns NOTIFY payloads into wake-ups.

use std::{collections::HashMap, sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cowans_core::{
    Event, JobId, JobState, QueueName, WAKEUP_CHANNEL, Wakeup,
    event::BatchCounts,
    queue::{
        ClaimCursor, ClaimedJob, Driver, Enqueued, Failed, JobRecord, LeaderTerm, LeaseRef, NewJob,
        Promotion, Pruned, QueueControl, QueueResult, QueueStats, RateLimit, Rescued, Retention,
        Settled, WakeupSink, WorkerInfo,
    },
};
use sqlx::{PgPool, postgres::PgListener};
use uuid::Uuid;

/// The Postgres queue backend. Cheap to clone (a pool handle).
#[derive(Clone, Debug)]
pub struct PgDriver {
    pool: PgPool,
}

impl PgDriver {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl Driver for PgDriver {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn enqueue(&self, jobs: &[NewJob]) -> QueueResult<Vec<Enqueued>> {
        Ok(crate::enqueue_autocommit(&self.pool, jobs).await?)
    }

    async fn claim(
        &self,
        queue: &QueueName,
        limit: usize,
        worker: Uuid,
        lease_ttl: Duration,
        after: Option<&ClaimCursor>,
    ) -> QueueResult<Vec<ClaimedJob>> {
        Ok(crate::claim(&self.pool, queue, limit, worker, lease_ttl, after).await?)
    }

    async fn complete(&self, refs: &[LeaseRef], delete: bool) -> QueueResult<Vec<JobId>> {
        Ok(crate::complete(&self.pool, refs, delete).await?)
    }

    async fn settle_failures(&self, worker: Uuid, failed: &[Failed]) -> QueueResult<Vec<Settled>> {
        Ok(crate::settle_failures(&self.pool, worker, failed).await?)
    }

    async fn release(&self, refs: &[LeaseRef]) -> QueueResult<Vec<JobId>> {
        Ok(crate::release(&self.pool, refs).await?)
    }

    async fn defer(&self, jobs: &[(LeaseRef, DateTime<Utc>)]) -> QueueResult<Vec<i64>> {
        Ok(crate::defer(&self.pool, jobs).await?)
    }

    async fn promote_due(&self, queues: &[QueueName], limit: i64) -> QueueResult<Promotion> {
        Ok(crate::promote_due(&self.pool, queues, limit).await?)
    }

    async fn queue_control(&self, queue: &str) -> QueueResult<QueueControl> {
        Ok(crate::queue_control(&self.pool, queue).await?)
    }

    async fn set_paused(&self, queue: &QueueName, paused: bool) -> QueueResult<()> {
        Ok(crate::set_paused(&self.pool, queue, paused).await?)
    }

    async fn set_limits(
        &self,
        queue: &QueueName,
        concurrency: Option<u32>,
        rate: Option<RateLimit>,
    ) -> QueueResult<bool> {
        Ok(crate::set_queue_limits(&self.pool, queue, concurrency, rate).await?)
    }

    async fn heartbeat(
        &self,
        worker: &WorkerInfo,
        running: &[LeaseRef],
        lease_ttl: Duration,
    ) -> QueueResult<Vec<JobId>> {
        Ok(crate::heartbeat(&self.pool, worker, running, lease_ttl).await?)
    }

    async fn rescue_expired(&self, limit: i64) -> QueueResult<Rescued> {
        Ok(crate::rescue_expired(&self.pool, limit).await?)
    }

    async fn register_worker(&self, info: &WorkerInfo) -> QueueResult<()> {
        Ok(crate::register_worker(&self.pool, info).await?)
    }

    async fn deregister_worker(&self, id: Uuid) -> QueueResult<()> {
        Ok(crate::deregister_worker(&self.pool, id).await?)
    }

    async fn forget_stale_workers(&self, older_than: Duration) -> QueueResult<u64> {
        Ok(crate::forget_stale_workers(&self.pool, older_than).await?)
    }

    async fn try_lead(
        &self,
        role: &str,
        holder: Uuid,
        ttl: Duration,
    ) -> QueueResult<Option<LeaderTerm>> {
        Ok(crate::try_lead(&self.pool, role, holder, ttl).await?)
    }

    async fn resign_leader(&self, role: &str, holder: Uuid) -> QueueResult<()> {
        Ok(crate::resign_leader(&self.pool, role, holder).await?)
    }

    async fn prune(&self, retention: Retention, limit: i64) -> QueueResult<Pruned> {
        Ok(crate::prune(&self.pool, retention, limit).await?)
    }

    async fn refresh_queue_stats(&self) -> QueueResult<()> {
        Ok(crate::refresh_queue_stats(&self.pool).await?)
    }

    async fn queue_stats(
        &self,
        queue: Option<&str>,
        live_within: Duration,
    ) -> QueueResult<Vec<QueueStats>> {
        Ok(crate::queue_stats(&self.pool, queue, live_within).await?)
    }

    async fn count_by_state(&self, queue: &str) -> QueueResult<Vec<(JobState, i64)>> {
        Ok(crate::count_by_state(&self.pool, queue).await?)
    }

    async fn job(&self, id: JobId) -> QueueResult<Option<JobRecord>> {
        Ok(crate::get_job(&self.pool, id).await?)
    }

    async fn cancel(&self, id: JobId) -> QueueResult<JobState> {
        Ok(crate::cancel_job(&self.pool, id).await?.was)
    }

    async fn list_jobs(
        &self,
        queue: &str,
        state: Option<JobState>,
        kind: Option<&str>,
        after: Option<JobId>,
        limit: i64,
    ) -> QueueResult<Vec<JobRecord>> {
        let filter = crate::JobFilter {
            queue: Some(queue.to_owned()),
            state,
            kind: kind.map(str::to_owned),
            batch: None,
        };
        Ok(crate::list_jobs(&self.pool, &filter, after, limit).await?)
    }

    async fn purge_dead(&self, queue: &str, kind: Option<&str>, expected: u64) -> QueueResult<u64> {
        let filter = crate::DeadLetterFilter {
            queue: Some(queue.to_owned()),
            kind: kind.map(str::to_owned),
        };
        Ok(crate::purge_dead(&self.pool, &filter, Some(expected)).await?)
    }

    async fn redrive(&self, ids: &[JobId]) -> QueueResult<Vec<JobId>> {
        Ok(crate::redrive_ids(&self.pool, ids).await?)
    }

    async fn retry(&self, id: JobId) -> QueueResult<()> {
        Ok(crate::retry_job(&self.pool, id).await?)
    }

    async fn count_batches(
        &self,
        queue: &str,
        batches: &[i64],
    ) -> QueueResult<HashMap<i64, BatchCounts>> {
        Ok(crate::count_batch_jobs(&self.pool, batches, Some(queue)).await?)
    }

    async fn batch_jobs(&self, queue: &str, batch: i64) -> QueueResult<Vec<JobId>> {
        Ok(crate::batch_job_ids(&self.pool, batch, queue).await?)
    }

    async fn announce(&self, events: &[Event]) -> QueueResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut conn = self.pool.acquire().await.map_err(crate::StoreError::from)?;
        Ok(crate::announce(&mut conn, &[], events).await?)
    }

    async fn listen(&self, sink: Arc<dyn WakeupSink>) {
        let mut listener: Option<PgListener> = None;
        loop {
            let current = match listener.as_mut() {
                Some(l) => l,
                None => match connect(&self.pool).await {
                    Ok(l) => {
                        // Anything sent while we were not listening is lost: look now.
                        sink.missed();
                        listener.insert(l)
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for job notifications, polling meanwhile");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                },
            };
            match current.try_recv().await {
                Ok(Some(n)) => match Wakeup::parse(n.payload()) {
                    Some(w) => sink.wake(w),
                    None => tracing::debug!(payload = n.payload(), "ignoring unknown notification"),
                },
                Ok(None) => {
                    // The connection dropped; sqlx reconnects on the next call.
                    tracing::warn!("notification connection lost, reconnecting");
                    sink.missed();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "notification listener failed, reconnecting");
                    listener = None;
                }
            }
        }
    }
}

async fn connect(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut l = PgListener::connect_with(pool).await?;
    l.listen(WAKEUP_CHANNEL).await?;
    Ok(l)
}
