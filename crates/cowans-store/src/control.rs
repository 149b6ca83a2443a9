//! Operator control over jobs and queues: cancel jobs, pause and resume queues, and the
//! fleet-wide limits of a queue. Changes are announced on the NOTIFY channel (`c:<job id>` for a
//! running job that was cancelled, `q:<queue>` when a queue's control row changed).

use std::time::Duration;

use cowans_core::{JobId, JobState};
use sqlx::PgPool;

use crate::{Result, StoreError};

// `$announce` adds a `job.cancelled` event per job on the events channel, in the same
// statement (so it is ordered with everything else the job goes through). Batch cancels do not
// announce each job: the batch's own events cover them.
macro_rules! cancel_sql {
    ($target:literal, $announce:literal) => {
        concat!(
            "WITH target AS (SELECT id, state AS was FROM cowans_jobs WHERE ",
            $target,
            " AND state IN ('available', 'scheduled', 'running') FOR UPDATE), \
             moved AS (UPDATE cowans_jobs j SET state = 'cancelled', finalized_at = now(), lease_expires_at = NULL \
             FROM target WHERE j.id = target.id RETURNING j.id, j.queue, j.kind, j.batch_id, target.was), \
             notified AS (SELECT count(pg_notify('cowans_jobs', 'c:' || id)) AS n FROM moved WHERE was = 'running'), \
             announced AS (SELECT count(pg_notify('cowans_events', json_build_object('type', 'job.cancelled', \
               'job_id', id, 'queue', queue, 'kind', kind, 'batch_id', batch_id, 'was', was)::text)) AS n \
               FROM moved WHERE ",
            $announce,
            ") SELECT moved.id, moved.was::text FROM moved CROSS JOIN notified CROSS JOIN announced ORDER BY moved.id"
        )
    };
}
const CANCEL_IDS: &str = cancel_sql!("id = ANY($1)", "true");
const CANCEL_BATCH: &str = cancel_sql!("batch_id = $1", "false");

/// A job that a cancel call stopped, and the state it was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled {
    pub id: JobId,
    /// `Running`: its worker is told to stop and its result will be discarded.
    pub was: JobState,
}

/// Cancels jobs that have not finished. Waiting jobs are cancelled at once; running ones too (so
/// they are never retried and their result is discarded by the lease fencing), and their worker
/// is signalled, and each is announced as `job.cancelled` on the events channel. Jobs already
/// finished are left alone (not in the answer).
pub async fn cancel_jobs(pool: &PgPool, ids: &[JobId]) -> Result<Vec<Cancelled>> {
    let ids: Vec<i64> = ids.iter().map(|i| i.0).collect();
    let rows: Vec<(i64, String)> = sqlx::query_as(CANCEL_IDS).bind(ids).fetch_all(pool).await?;
    cancelled(rows)
}

/// Cancels every unfinished job of a batch and marks the batch cancelled.
pub async fn cancel_batch(pool: &PgPool, batch_id: i64) -> Result<Vec<Cancelled>> {
    let mut tx = pool.begin().await?;
    let found = sqlx::query(
        "UPDATE cowans_batches SET cancelled_at = coalesce(cancelled_at, now()) WHERE id = $1",
    )
    .bind(batch_id)
    .execute(&mut *tx)
    .await?;
    if found.rows_affected() == 0 {
        return Err(StoreError::invalid(
            "batch_id",
            format!("batch {batch_id} does not exist"),
        ));
    }
    let rows: Vec<(i64, String)> = sqlx::query_as(CANCEL_BATCH)
        .bind(batch_id)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    cancelled(rows)
}

fn cancelled(rows: Vec<(i64, String)>) -> Result<Vec<Cancelled>> {
    rows.into_iter()
        .map(|(id, was)| {
            let was = JobState::parse(&was)
                .ok_or_else(|| StoreError::invalid("state", format!("unknown state {was:?}")))?;
            Ok(Cancelled { id: JobId(id), was })
        })
        .collect()
}

/// A rate limit: `jobs` per `period`, for the whole queue or per job `rate_key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub jobs: u32,
    pub period: Duration,
    pub by_key: bool,
}

/// A queue's cluster-wide control row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueControl {
    pub paused: bool,
    /// Most jobs running at once across the fleet.
    pub concurrency_limit: Option<u32>,
    pub rate: Option<RateLimit>,
}

type ControlRow = (bool, Option<i32>, Option<i32>, Option<i64>, bool);

/// The control row of `queue` (the default when it has none).
pub async fn queue_control(pool: &PgPool, queue: &str) -> Result<QueueControl> {
    let row: Option<ControlRow> = sqlx::query_as(
        "SELECT paused, concurrency_limit, rate_limit, rate_period_ms, rate_by_key \
         FROM cowans_queues WHERE name = $1",
    )
    .bind(queue)
    .fetch_optional(pool)
    .await?;
    Ok(row.map_or_else(
        QueueControl::default,
        |(paused, conc, rate, period, by_key)| QueueControl {
            paused,
            concurrency_limit: conc.map(|c| c as u32),
            rate: rate.zip(period).map(|(jobs, period)| RateLimit {
                jobs: jobs as u32,
                period: Duration::from_millis(period as u64),
                by_key,
            }),
        },
    ))
}

/// Pauses (`true`) or resumes a queue for every worker process; survives restarts. Workers are
/// told at once; the claim statement itself refuses a paused queue, so nothing is claimed from
/// it after this returns.
pub async fn set_paused(pool: &PgPool, queue: &str, paused: bool) -> Result<()> {
    sqlx::query(
        "WITH up AS (INSERT INTO cowans_queues (name, paused, paused_at) VALUES ($1, $2, CASE WHEN $2 THEN now() END) \
         ON CONFLICT (name) DO UPDATE SET paused = $2, paused_at = CASE WHEN $2 THEN now() END, updated_at = now() \
         RETURNING name) \
         SELECT pg_notify('cowans_jobs', 'q:' || name) FROM up",
    )
    .bind(queue)
    .bind(paused)
    .execute(pool)
    .await?;
    Ok(())
}

/// Sets (or with `None`, removes) a queue's fleet-wide concurrency and rate limits.
pub async fn set_queue_limits(
    pool: &PgPool,
    queue: &str,
    concurrency: Option<u32>,
    rate: Option<RateLimit>,
) -> Result<()> {
    if concurrency == Some(0) {
        return Err(StoreError::invalid(
            "concurrency_limit",
            "must be at least 1",
        ));
    }
    if let Some(r) = rate
        && (r.jobs == 0 || r.period.is_zero())
    {
        return Err(StoreError::invalid(
            "rate_limit",
            "jobs and period must be at least 1",
        ));
    }
    sqlx::query(
        "WITH up AS (INSERT INTO cowans_queues AS q (name, concurrency_limit, rate_limit, rate_period_ms, rate_by_key) \
         VALUES ($1, $2, $3, $4, coalesce($5, false)) \
         ON CONFLICT (name) DO UPDATE SET concurrency_limit = $2, rate_limit = $3, rate_period_ms = $4, \
         rate_by_key = coalesce($5, false), updated_at = now() RETURNING name) \
         SELECT pg_notify('cowans_jobs', 'q:' || name) FROM up",
    )
    .bind(queue)
    .bind(concurrency.map(|c| c as i32))
    .bind(rate.map(|r| r.jobs as i32))
    .bind(rate.map(|r| r.period.as_millis() as i64))
    .bind(rate.map(|r| r.by_key))
    .execute(pool)
    .await?;
    Ok(())
}
