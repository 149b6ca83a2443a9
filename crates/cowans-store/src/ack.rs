//! Acks: completing, failing, retrying and handing back jobs. Every statement here is conditional
//! on `state = 'running' AND lease = <the claim's lease>`: that is the fencing that stops a
//! worker which lost its lease from touching a job another worker now runs.

use chrono::{DateTime, Utc};
use cowans_core::{Event, JobId, JobState};
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use crate::{Failed, LeaseRef, Result, Settled, StoreError};

fn split(refs: &[LeaseRef]) -> (Vec<i64>, Vec<i64>) {
    refs.iter().map(|r| (r.id.0, r.lease)).unzip()
}

const COMPLETE: &str = concat!(
    "UPDATE cowans_jobs j SET state = 'completed', finalized_at = now(), lease_expires_at = NULL ",
    "FROM unnest($1::bigint[], $2::bigint[]) AS c(id, lease) WHERE ",
    still_held!("c"),
    " RETURNING j.id"
);

// Completion when finished jobs are kept for no time: the row is deleted (no new tuple, no
// index entries, nothing for the retention pass to delete later), except where a completed row
// still means something: a job of a batch (its counts come from the jobs) and a unique job whose
// key holds while completed. Both parts see the same snapshot and disjoint rows. Rows are found
// by `id = ANY(ids)` (the primary key, whatever the statistics say) and their lease looked up by
// position: joined to `unnest` (even with the `still_held!` fence), the planner sometimes
// scanned the whole table once per acked id (measured: a 2,000-job ack running for 20 s; a
// 50,000-job drain at 1,239 jobs/s). Looking leases up by position is quadratic in the batch
// (46 ms for 2,000 against 15 for the join) but has no plan to go wrong.
const COMPLETE_DELETING: &str = r#"
WITH gone AS (
    DELETE FROM cowans_jobs j
    WHERE j.id = ANY($1::bigint[]) AND j.state = 'running'
      AND j.lease = ($2::bigint[])[array_position($1::bigint[], j.id)]
      AND j.batch_id IS NULL
      AND (j.unique_key IS NULL OR (j.unique_states & cowans_state_bit('completed')) = 0)
    RETURNING j.id
),
kept AS (
    UPDATE cowans_jobs j
    SET state = 'completed', finalized_at = now(), lease_expires_at = NULL
    WHERE j.id = ANY($1::bigint[]) AND j.state = 'running'
      AND j.lease = ($2::bigint[])[array_position($1::bigint[], j.id)]
      AND NOT (j.batch_id IS NULL
        AND (j.unique_key IS NULL OR (j.unique_states & cowans_state_bit('completed')) = 0))
    RETURNING j.id
)
SELECT id FROM gone UNION ALL SELECT id FROM kept
"#;

/// Completes a batch of jobs; returns the ids that were still held (the others were fenced off:
/// rescued, cancelled, or already completed in the handler's own transaction). `delete`: finished
/// jobs are kept for no time, so completed rows are deleted at once where nothing needs them.
pub async fn complete(pool: &PgPool, refs: &[LeaseRef], delete: bool) -> Result<Vec<JobId>> {
    if refs.is_empty() {
        return Ok(Vec::new());
    }
    let (ids, leases) = split(refs);
    let done: Vec<i64> = sqlx::query_scalar(if delete { COMPLETE_DELETING } else { COMPLETE })
        .bind(ids)
        .bind(leases)
        .fetch_all(pool)
        .await?;
    Ok(done.into_iter().map(JobId).collect())
}

/// Completes one job inside the handler's own transaction, so the handler's effect and the
/// completion commit together (exactly-once effects). [`StoreError::StaleLease`] when the lease
/// was lost: another worker owns the job now, so the handler must roll back (dropping the
/// transaction does).
pub async fn complete_in_tx<'e>(executor: impl PgExecutor<'e>, lease: LeaseRef) -> Result<()> {
    let done: Option<i64> = sqlx::query_scalar(
        "UPDATE cowans_jobs SET state = 'completed', finalized_at = now(), lease_expires_at = NULL \
         WHERE id = $1 AND state = 'running' AND lease = $2 RETURNING id",
    )
    .bind(lease.id.0)
    .bind(lease.lease)
    .fetch_optional(executor)
    .await?;
    done.map(drop).ok_or(StoreError::StaleLease)
}

const SETTLE: &str = concat!(
    r#"
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
WHERE "#,
    still_held!("f"),
    r#"
RETURNING j.id, j.queue, j.kind, j.batch_id, f.state, j.run_at, f.attempt,
    CASE WHEN f.state = 'dead' THEN f.error END
"#
);

type SettledRow = (
    i64,
    String,
    String,
    Option<i64>,
    String,
    DateTime<Utc>,
    i32,
    Option<String>,
);

/// Records failed attempts: each becomes scheduled (retry with backoff), available (retry at
/// once) or dead, with the error appended to its history. Jobs that went dead are announced
/// (`job.dead`) in the same transaction, so no later event of theirs can overtake it; batches
/// without a dead letter take one statement. Returns the rows still held (the others were
/// fenced off), for the caller to wake producers and count outcomes.
pub async fn settle_failures(
    pool: &PgPool,
    worker_id: Uuid,
    failures: &[Failed],
) -> Result<Vec<Settled>> {
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
        let state = f.next_state();
        states.push(state.as_str());
        delays.push(match (state, f.retry_in) {
            (JobState::Dead, _) | (_, None) => None,
            // Capped at ten years so a huge requested delay cannot overflow the timestamp.
            (_, Some(d)) => Some((d.as_secs_f64() * 1000.0).min(3.15e11)),
        });
    }
    let query = sqlx::query_as::<_, SettledRow>(SETTLE)
        .bind(ids)
        .bind(leases)
        .bind(states)
        .bind(delays)
        .bind(attempts)
        .bind(errors)
        .bind(worker_id.to_string());
    let rows = if failures.iter().any(|f| f.retry_in.is_none()) {
        let mut tx = pool.begin().await?;
        let rows = query.fetch_all(&mut *tx).await?;
        // Built from the rows the update matched (the held lease's attempt and error, not a
        // fenced one's).
        let dead: Vec<Event> = rows
            .iter()
            .filter_map(|(id, queue, kind, batch_id, _, _, attempt, error)| {
                Some(Event::JobDead {
                    job_id: JobId(*id),
                    queue: queue.clone(),
                    kind: kind.clone(),
                    batch_id: *batch_id,
                    attempt: *attempt,
                    error: Event::short_error(error.as_deref()?),
                })
            })
            .collect();
        crate::announce(&mut tx, &[], &dead).await?;
        tx.commit().await?;
        rows
    } else {
        query.fetch_all(pool).await?
    };
    Ok(rows
        .into_iter()
        .filter_map(|(id, queue, _, _, state, run_at, ..)| {
            Some(Settled {
                id: JobId(id),
                queue,
                state: JobState::parse(&state)?,
                run_at,
            })
        })
        .collect())
}

const RELEASE: &str = concat!(
    "UPDATE cowans_jobs j SET state = 'available', attempt = greatest(j.attempt - 1, 0), ",
    "lease_expires_at = NULL FROM unnest($1::bigint[], $2::bigint[]) AS r(id, lease) WHERE ",
    still_held!("r"),
    " RETURNING j.id, j.queue"
);

/// Hands jobs back without counting the attempt (graceful shutdown past its deadline, or jobs
/// claimed but never started). Producers of their queues are woken at once.
pub async fn release(pool: &PgPool, refs: &[LeaseRef]) -> Result<Vec<JobId>> {
    if refs.is_empty() {
        return Ok(Vec::new());
    }
    let (ids, leases) = split(refs);
    let mut conn = pool.acquire().await?;
    let released: Vec<(i64, String)> = sqlx::query_as(RELEASE)
        .bind(ids)
        .bind(leases)
        .fetch_all(&mut *conn)
        .await?;
    let wake = crate::announce::runnable(released.iter().map(|(_, q)| q.as_str()));
    crate::announce::after_commit(&mut conn, &wake).await;
    Ok(released.into_iter().map(|(id, _)| JobId(id)).collect())
}
