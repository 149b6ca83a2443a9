//! Acks: completing, failing, retrying and handing back jobs. Every statement here is conditional
//! on `state = 'running' AND lease = <the claim's lease>`: that is the fencing that stops a
//! worker which lost its lease from touching a job another worker now runs.

use std::time::Duration;

use chrono::{DateTime, Utc};
use cowans_core::JobId;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use crate::Result;

/// A claim as the ack statements see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseRef {
    pub id: JobId,
    pub lease: i64,
}

fn split(refs: &[LeaseRef]) -> (Vec<i64>, Vec<i64>) {
    refs.iter().map(|r| (r.id.0, r.lease)).unzip()
}

const COMPLETE: &str = r#"
UPDATE cowans_jobs j
SET state = 'completed', finalized_at = now(), lease_expires_at = NULL
FROM unnest($1::bigint[], $2::bigint[]) AS c(id, lease)
WHERE j.id = c.id AND j.state = 'running' AND j.lease = c.lease
RETURNING j.id
"#;

/// Completes a batch of jobs; returns the ids that were still held (the others were fenced off:
/// rescued, cancelled, or already completed in the handler's own transaction).
pub async fn complete(pool: &PgPool, refs: &[LeaseRef]) -> Result<Vec<JobId>> {
    if refs.is_empty() {
        return Ok(Vec::new());
    }
    let (ids, leases) = split(refs);
    let done: Vec<i64> = sqlx::query_scalar(COMPLETE)
        .bind(ids)
        .bind(leases)
        .fetch_all(pool)
        .await?;
    Ok(done.into_iter().map(JobId).collect())
}

/// Completes one job inside the handler's own transaction, so the handler's effect and the
/// completion commit together (exactly-once effects). Returns false when the lease was lost: the
/// handler should then roll back, because another worker owns the job now.
pub async fn complete_in_tx<'e>(executor: impl PgExecutor<'e>, lease: LeaseRef) -> Result<bool> {
    let done: Option<i64> = sqlx::query_scalar(
        "UPDATE cowans_jobs SET state = 'completed', finalized_at = now(), lease_expires_at = NULL \
         WHERE id = $1 AND state = 'running' AND lease = $2 RETURNING id",
    )
    .bind(lease.id.0)
    .bind(lease.lease)
    .fetch_optional(executor)
    .await?;
    Ok(done.is_some())
}

/// A failed attempt and what to do about it, decided by the worker from the retry policy.
#[derive(Debug, Clone)]
pub struct Failed {
    pub lease: LeaseRef,
    pub attempt: i32,
    pub error: String,
    /// `Some(delay)`: retry after the delay (zero = runnable at once). `None`: dead-letter.
    pub retry_in: Option<Duration>,
}

// Jobs that went dead are announced on the events channel (`job.dead`, for the API's live
// streams) in the same statement; the notify lock is only taken when there are some.
const SETTLE: &str = r#"
WITH settled AS (
UPDATE cowans_jobs j
SET state = f.state::cowans_job_state,
    run_at = CASE WHEN f.delay_ms IS NULL THEN j.run_at
                  ELSE now() + f.delay_ms * interval '1 millisecond' END,
    finalized_at = CASE WHEN f.state = 'dead' THEN now() END,
    lease_expires_at = NULL,
    errors = j.errors || jsonb_build_array(jsonb_build_object(
        'attempt', f.attempt, 'at', now(), 'worker', $7::text, 'error', f.error))
FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::float8[], $5::integer[], $6::text[])
    AS f(id, lease, state, delay_ms, attempt, error)
WHERE j.id = f.id AND j.state = 'running' AND j.lease = f.lease
RETURNING j.id, j.queue, j.kind, j.batch_id, f.state, j.run_at, f.attempt, f.error
), announced AS (
    SELECT count(pg_notify('cowans_events', json_build_object(
        'type', 'job.dead', 'job_id', id, 'queue', queue, 'kind', kind, 'batch_id', batch_id,
        'attempt', attempt, 'error', left(error, 1000))::text)) AS n
    FROM settled WHERE state = 'dead'
)
SELECT id, queue, state, run_at FROM settled CROSS JOIN announced
"#;

/// Records failed attempts: each becomes scheduled (retry with backoff), available (retry at
/// once) or dead, with the error appended to its history. Returns, for the rows still held,
/// `(id, queue, new state, run_at)` so the caller can wake producers and count outcomes.
pub async fn settle_failures(
    pool: &PgPool,
    worker_id: Uuid,
    failures: &[Failed],
) -> Result<Vec<(JobId, String, String, DateTime<Utc>)>> {
    if failures.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids = Vec::new();
    let mut leases = Vec::new();
    let mut states = Vec::new();
    let mut delays: Vec<Option<f64>> = Vec::new();
    let mut attempts = Vec::new();
    let mut errors = Vec::new();
    for f in failures {
        ids.push(f.lease.id.0);
        leases.push(f.lease.lease);
        attempts.push(f.attempt);
        errors.push(f.error.as_str());
        match f.retry_in {
            None => {
                states.push("dead");
                delays.push(None);
            }
            Some(d) if d.is_zero() => {
                states.push("available");
                delays.push(Some(0.0));
            }
            Some(d) => {
                states.push("scheduled");
                // Capped at ten years so a huge requested delay cannot overflow the timestamp.
                delays.push(Some((d.as_secs_f64() * 1000.0).min(3.15e11)));
            }
        }
    }
    let rows: Vec<(i64, String, String, DateTime<Utc>)> = sqlx::query_as(SETTLE)
        .bind(ids)
        .bind(leases)
        .bind(states)
        .bind(delays)
        .bind(attempts)
        .bind(errors)
        .bind(worker_id.to_string())
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, q, s, r)| (JobId(id), q, s, r))
        .collect())
}

const RELEASE: &str = r#"
WITH released AS (
    UPDATE cowans_jobs j
    SET state = 'available', attempt = greatest(j.attempt - 1, 0), lease_expires_at = NULL
    FROM unnest($1::bigint[], $2::bigint[]) AS r(id, lease)
    WHERE j.id = r.id AND j.state = 'running' AND j.lease = r.lease
    RETURNING j.id, j.queue
), notified AS (
    SELECT count(pg_notify('cowans_jobs', 'r:' || queue)) AS n
    FROM (SELECT DISTINCT queue FROM released) q
)
SELECT released.id FROM released CROSS JOIN notified
"#;

/// Hands jobs back without counting the attempt (graceful shutdown past its deadline, or jobs
/// claimed but never started). Other workers are notified at once.
pub async fn release(pool: &PgPool, refs: &[LeaseRef]) -> Result<Vec<JobId>> {
    if refs.is_empty() {
        return Ok(Vec::new());
    }
    let (ids, leases) = split(refs);
    let released: Vec<i64> = sqlx::query_scalar(RELEASE)
        .bind(ids)
        .bind(leases)
        .fetch_all(pool)
        .await?;
    Ok(released.into_iter().map(JobId).collect())
}
