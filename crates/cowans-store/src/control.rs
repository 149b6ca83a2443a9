//! Operator control over jobs and queues: cancel jobs, pause and resume queues, and the
//! fleet-wide limits of a queue. Each change is announced in its own transaction: the running
//! job's handler is told (`Wakeup::Cancel`), producers re-read the queue's control row
//! (`Wakeup::Control`), and the live streams get the event.

use std::time::Duration;

use cowans_core::{Event, JobId, JobState, QueueName, Wakeup};
use sqlx::{Acquire, PgPool, Postgres};

use crate::{QueueControl, RateLimit, Result, StoreError};

macro_rules! cancel_sql {
    ($target:literal) => {
        concat!(
            "WITH target AS (SELECT id, state AS was FROM cowans_jobs WHERE ",
            $target,
            " AND state IN ('available', 'scheduled', 'running') FOR UPDATE) \
             UPDATE cowans_jobs j SET state = 'cancelled', finalized_at = now(), lease_expires_at = NULL \
             FROM target WHERE j.id = target.id \
             RETURNING j.id, j.queue, j.kind, j.batch_id, target.was::text"
        )
    };
}
const CANCEL_IDS: &str = cancel_sql!("id = ANY($1)");
const CANCEL_BATCH: &str = cancel_sql!("batch_id = $1");

type CancelledRow = (i64, String, String, Option<i64>, String);

/// A job that a cancel call stopped, and the state it was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled {
    pub id: JobId,
    /// `Running`: its worker is told to stop and its result will be discarded.
    pub was: JobState,
}

/// Cancels jobs that have not finished. Waiting jobs are cancelled at once; running ones too (so
/// they are never retried and their result is discarded by the lease fencing), and their worker
/// is signalled; each is announced as `job.cancelled`. Jobs already finished are left alone (not
/// in the answer).
pub async fn cancel_jobs<'c, A>(conn: A, ids: &[JobId]) -> Result<Vec<Cancelled>>
where
    A: Acquire<'c, Database = Postgres>,
{
    let ids: Vec<i64> = ids.iter().map(|i| i.0).collect();
    let mut tx = conn.begin().await?;
    let rows: Vec<CancelledRow> = sqlx::query_as(CANCEL_IDS)
        .bind(ids)
        .fetch_all(&mut *tx)
        .await?;
    let (done, wake) = cancelled(&rows)?;
    let events: Vec<Event> = rows
        .iter()
        .zip(&done)
        .map(|((_, queue, kind, batch_id, _), c)| Event::JobCancelled {
            job_id: c.id,
            queue: queue.clone(),
            kind: kind.clone(),
            batch_id: *batch_id,
            was: c.was,
        })
        .collect();
    crate::announce(&mut tx, &wake, &events).await?;
    tx.commit().await?;
    Ok(done)
}

/// Cancels one job: [`StoreError::NotFound`] if there is no such job, [`StoreError::Conflict`]
/// (naming its state) if it has already finished.
pub async fn cancel_job<'c, A>(conn: A, id: JobId) -> Result<Cancelled>
where
    A: Acquire<'c, Database = Postgres>,
{
    let mut tx = conn.begin().await?;
    let done = cancel_jobs(&mut *tx, &[id]).await?;
    let Some(c) = done.first().copied() else {
        let state = crate::jobs::state_of(&mut tx, id).await?;
        return Err(match state {
            None => StoreError::not_found(format!("job {id}")),
            Some(s) => StoreError::conflict(format!("job {id} is {s} and cannot be cancelled")),
        });
    };
    tx.commit().await?;
    Ok(c)
}

/// Cancels every unfinished job of a batch and marks the batch cancelled (announced once, as
/// `batch.cancelled`, not per job, counting the `cancelled_elsewhere` the caller cancelled on
/// Redis). [`StoreError::NotFound`] if there is no such batch.
pub async fn cancel_batch<'c, A>(
    conn: A,
    batch_id: i64,
    cancelled_elsewhere: u64,
) -> Result<Vec<Cancelled>>
where
    A: Acquire<'c, Database = Postgres>,
{
    let mut tx = conn.begin().await?;
    let found = sqlx::query(
        "UPDATE cowans_batches SET cancelled_at = coalesce(cancelled_at, now()) WHERE id = $1",
    )
    .bind(batch_id)
    .execute(&mut *tx)
    .await?;
    if found.rows_affected() == 0 {
        return Err(StoreError::not_found(format!("batch {batch_id}")));
    }
    let rows: Vec<CancelledRow> = sqlx::query_as(CANCEL_BATCH)
        .bind(batch_id)
        .fetch_all(&mut *tx)
        .await?;
    let (done, wake) = cancelled(&rows)?;
    let event = Event::BatchCancelled {
        batch_id,
        cancelled_jobs: done.len() as u64 + cancelled_elsewhere,
    };
    crate::announce(&mut tx, &wake, &[event]).await?;
    tx.commit().await?;
    Ok(done)
}

/// The cancelled jobs, and a `Cancel` wake-up for each that was running.
fn cancelled(rows: &[CancelledRow]) -> Result<(Vec<Cancelled>, Vec<Wakeup>)> {
    let mut done = Vec::with_capacity(rows.len());
    let mut wake = Vec::new();
    for (id, _, _, _, was) in rows {
        let was = JobState::parse(was)
            .ok_or_else(|| StoreError::invalid("state", format!("unknown state {was:?}")))?;
        if was == JobState::Running {
            wake.push(Wakeup::Cancel { job: JobId(*id) });
        }
        done.push(Cancelled {
            id: JobId(*id),
            was,
        });
    }
    Ok((done, wake))
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
/// it after this returns. Announced as `queue.paused` / `queue.resumed`.
pub async fn set_paused<'c, A>(conn: A, queue: &QueueName, paused: bool) -> Result<()>
where
    A: Acquire<'c, Database = Postgres>,
{
    let mut tx = conn.begin().await?;
    sqlx::query(
        "INSERT INTO cowans_queues (name, paused, paused_at) VALUES ($1, $2, CASE WHEN $2 THEN now() END) \
         ON CONFLICT (name) DO UPDATE SET paused = $2, paused_at = CASE WHEN $2 THEN now() END, updated_at = now()",
    )
    .bind(queue.as_str())
    .bind(paused)
    .execute(&mut *tx)
    .await?;
    let name = queue.to_string();
    let event = if paused {
        Event::QueuePaused { queue: name }
    } else {
        Event::QueueResumed { queue: name }
    };
    let wake = Wakeup::Control {
        queue: queue.clone(),
    };
    crate::announce(&mut tx, &[wake], &[event]).await?;
    tx.commit().await?;
    Ok(())
}

/// Sets (or with `None`, removes) a queue's fleet-wide concurrency and rate limits; announced
/// as `queue.limits`. Returns false, and announces nothing, when those limits were already in
/// force.
pub async fn set_queue_limits<'c, A>(
    conn: A,
    queue: &QueueName,
    concurrency: Option<u32>,
    rate: Option<RateLimit>,
) -> Result<bool>
where
    A: Acquire<'c, Database = Postgres>,
{
    RateLimit::check_limits(concurrency, rate)?;
    let mut tx = conn.begin().await?;
    let changed: Option<String> = sqlx::query_scalar(
        "INSERT INTO cowans_queues AS q (name, concurrency_limit, rate_limit, rate_period_ms, rate_by_key) \
         VALUES ($1, $2, $3, $4, coalesce($5, false)) \
         ON CONFLICT (name) DO UPDATE SET concurrency_limit = $2, rate_limit = $3, rate_period_ms = $4, \
         rate_by_key = coalesce($5, false), updated_at = now() \
         WHERE (q.concurrency_limit, q.rate_limit, q.rate_period_ms, q.rate_by_key) \
         IS DISTINCT FROM (EXCLUDED.concurrency_limit, EXCLUDED.rate_limit, EXCLUDED.rate_period_ms, EXCLUDED.rate_by_key) \
         RETURNING name",
    )
    .bind(queue.as_str())
    .bind(concurrency.map(|c| c as i32))
    .bind(rate.map(|r| r.jobs as i32))
    .bind(rate.map(|r| r.period.as_millis() as i64))
    .bind(rate.map(|r| r.by_key))
    .fetch_optional(&mut *tx)
    .await?;
    if changed.is_none() {
        return Ok(false);
    }
    let event = Event::queue_limits(queue.as_str(), concurrency, rate);
    let wake = Wakeup::Control {
        queue: queue.clone(),
    };
    crate::announce(&mut tx, &[wake], &[event]).await?;
    tx.commit().await?;
    Ok(true)
}
