//! Leases: the heartbeat that keeps a worker's jobs its own, and the rescuer that takes jobs back
//! from workers that stopped heart-beating.

use std::time::Duration;

use cowans_core::{Event, JobId, JobState};
use sqlx::PgPool;

use crate::{LeaseRef, Rescued, Result, WorkerInfo};
use cowans_core::queue::LEASE_EXPIRED;

const EXTEND: &str = concat!(
    "UPDATE cowans_jobs j SET lease_expires_at = now() + $3 * interval '1 millisecond' ",
    "FROM unnest($1::bigint[], $2::bigint[]) AS h(id, lease) WHERE ",
    still_held!("h"),
    " RETURNING j.id"
);

/// One heartbeat of a worker process: marks the process alive and extends the lease of every
/// job it still runs. Returns the ids whose lease it still holds; a job missing from the answer
/// was rescued or cancelled meanwhile, and its result will be discarded by the fencing.
pub async fn heartbeat(
    pool: &PgPool,
    worker: &WorkerInfo,
    running: &[LeaseRef],
    lease_ttl: Duration,
) -> Result<Vec<JobId>> {
    let mut tx = pool.begin().await?;
    // An upsert: after an outage longer than the janitor's horizon the leader has forgotten this
    // process, and its first heartbeat back registers it again.
    crate::workers::upsert_worker(&mut *tx, worker).await?;
    let held: Vec<i64> = if running.is_empty() {
        Vec::new()
    } else {
        let (ids, leases): (Vec<i64>, Vec<i64>) = running.iter().map(|r| (r.id.0, r.lease)).unzip();
        sqlx::query_scalar(EXTEND)
            .bind(ids)
            .bind(leases)
            .bind(lease_ttl.as_millis() as f64)
            .fetch_all(&mut *tx)
            .await?
    };
    tx.commit().await?;
    Ok(held.into_iter().map(JobId).collect())
}

// Rescued jobs are runnable at once rather than after a backoff: a crashed worker is rarely the
// job's fault, and the rescuer (which may run in a process that does not know the job's kind)
// has no retry policy for it. They keep their place (`run_at` unchanged): they were at the head
// of their queue when claimed, and sending them behind a backlog would add the whole backlog's
// wait to a job that already lost one lease's worth of time.
const RESCUE: &str = r#"
WITH expired AS (
    SELECT id FROM cowans_jobs
    WHERE state = 'running' AND lease_expires_at < now()
    ORDER BY lease_expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE cowans_jobs j
SET state = CASE WHEN j.attempt >= j.max_attempts THEN 'dead' ELSE 'available' END::cowans_job_state,
    finalized_at = CASE WHEN j.attempt >= j.max_attempts THEN now() END,
    lease_expires_at = NULL,
    errors = j.errors || jsonb_build_array(jsonb_build_object(
        'attempt', j.attempt, 'at', now(), 'worker', j.worker_id::text, 'error', $2::text))
FROM expired WHERE j.id = expired.id
RETURNING j.id, j.queue, j.kind, j.batch_id, j.attempt, j.state::text
"#;

type RescuedRow = (i64, String, String, Option<i64>, i32, String);

/// Turns up to `limit` expired leases into retries (their producers woken) or dead letters
/// (announced as `job.dead`), in one transaction. Every worker process runs it; concurrent runs
/// skip each other's rows.
pub async fn rescue_expired(pool: &PgPool, limit: i64) -> Result<Rescued> {
    let mut tx = pool.begin().await?;
    let rows: Vec<RescuedRow> = sqlx::query_as(RESCUE)
        .bind(limit)
        .bind(LEASE_EXPIRED)
        .fetch_all(&mut *tx)
        .await?;
    let mut out = Rescued::default();
    let mut dead = Vec::new();
    for (id, queue, kind, batch_id, attempt, state) in &rows {
        if JobState::parse(state) == Some(JobState::Dead) {
            out.dead.push((queue.clone(), kind.clone()));
            out.dead_ids.push(JobId(*id));
            dead.push(Event::JobDead {
                job_id: JobId(*id),
                queue: queue.clone(),
                kind: kind.clone(),
                batch_id: *batch_id,
                attempt: *attempt,
                error: LEASE_EXPIRED.to_owned(),
            });
        } else {
            out.retried.push((queue.clone(), kind.clone()));
        }
    }
    let wake = crate::announce::runnable(
        rows.iter()
            .filter(|r| JobState::parse(&r.5) != Some(JobState::Dead))
            .map(|r| r.1.as_str()),
    );
    crate::announce(&mut tx, &wake, &dead).await?;
    tx.commit().await?;
    Ok(out)
}
