//! Reading jobs back: one job in full, and counts by state.

use chrono::{DateTime, Utc};
use cowans_core::{Event, JobId, JobState, queue::JobRecord};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{Result, StoreError};

#[derive(sqlx::FromRow)]
pub(crate) struct JobRow {
    id: i64,
    queue: String,
    kind: String,
    args: Value,
    state: String,
    priority: i16,
    attempt: i32,
    max_attempts: i32,
    run_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    attempted_at: Option<DateTime<Utc>>,
    finalized_at: Option<DateTime<Utc>>,
    lease: Option<i64>,
    worker_id: Option<Uuid>,
    errors: Value,
    unique_key: Option<String>,
    batch_id: Option<i64>,
    rate_key: Option<String>,
}

/// The column list of `JobRow`, as a literal so statements stay static strings.
macro_rules! job_columns {
    () => {
        "id, queue, kind, args, state::text AS state, priority, attempt, max_attempts, run_at, \
         created_at, attempted_at, finalized_at, lease, worker_id, errors, unique_key, batch_id, rate_key"
    };
}
pub(crate) use job_columns;

impl TryFrom<JobRow> for JobRecord {
    type Error = StoreError;
    fn try_from(row: JobRow) -> Result<Self> {
        let state = JobState::parse(&row.state).ok_or_else(|| {
            StoreError::invalid("state", format!("unknown state {:?}", row.state))
        })?;
        let errors = serde_json::from_value(row.errors)
            .map_err(|e| StoreError::invalid("errors", e.to_string()))?;
        Ok(JobRecord {
            id: JobId(row.id),
            queue: row.queue,
            kind: row.kind,
            args: row.args,
            state,
            priority: row.priority,
            attempt: row.attempt,
            max_attempts: row.max_attempts,
            run_at: row.run_at,
            created_at: row.created_at,
            attempted_at: row.attempted_at,
            finalized_at: row.finalized_at,
            lease: row.lease,
            worker_id: row.worker_id,
            errors,
            unique_key: row.unique_key,
            batch_id: row.batch_id,
            rate_key: row.rate_key,
        })
    }
}

pub async fn get_job(pool: &PgPool, id: JobId) -> Result<Option<JobRecord>> {
    let row: Option<JobRow> = sqlx::query_as(concat!(
        "SELECT ",
        job_columns!(),
        " FROM cowans_jobs WHERE id = $1"
    ))
    .bind(id.0)
    .fetch_optional(pool)
    .await?;
    row.map(JobRecord::try_from).transpose()
}

/// Jobs per state in `queue` (every state listed, zero included). This counts rows: fine for
/// tests and small queues; the cheap summary for dashboards is the leader's stats job.
pub async fn count_by_state(pool: &PgPool, queue: &str) -> Result<Vec<(JobState, i64)>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT state::text, count(*) FROM cowans_jobs WHERE queue = $1 GROUP BY state",
    )
    .bind(queue)
    .fetch_all(pool)
    .await?;
    Ok(JobState::ALL
        .into_iter()
        .map(|s| {
            let n = rows
                .iter()
                .find(|(name, _)| name == s.as_str())
                .map_or(0, |(_, n)| *n);
            (s, n)
        })
        .collect())
}

/// Which jobs a listing shows. Empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub queue: Option<String>,
    pub state: Option<JobState>,
    pub kind: Option<String>,
    /// Jobs of this batch.
    pub batch: Option<i64>,
}

/// A page of jobs in id order after `after` (keyset pagination).
pub async fn list_jobs(
    pool: &PgPool,
    filter: &JobFilter,
    after: Option<JobId>,
    limit: i64,
) -> Result<Vec<JobRecord>> {
    let rows: Vec<JobRow> = sqlx::query_as(concat!(
        "SELECT ",
        job_columns!(),
        " FROM cowans_jobs WHERE ($1::text IS NULL OR queue = $1) \
          AND ($2::text IS NULL OR state = $2::cowans_job_state) AND ($3::text IS NULL OR kind = $3) \
          AND ($6::bigint IS NULL OR batch_id = $6) AND id > $4 ORDER BY id LIMIT $5"
    ))
    .bind(&filter.queue)
    .bind(filter.state.map(JobState::as_str))
    .bind(&filter.kind)
    .bind(after.map_or(0, |a| a.0))
    .bind(limit)
    .bind(filter.batch)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(JobRecord::try_from).collect()
}

/// The state of job `id`, if it exists.
pub(crate) async fn state_of(conn: &mut sqlx::PgConnection, id: JobId) -> Result<Option<JobState>> {
    let state: Option<String> =
        sqlx::query_scalar("SELECT state::text FROM cowans_jobs WHERE id = $1")
            .bind(id.0)
            .fetch_optional(conn)
            .await?;
    Ok(state.as_deref().and_then(JobState::parse))
}

/// Runs a dead or cancelled job again from its first attempt (history kept), announced as
/// `job.retried` in the same transaction. [`StoreError::NotFound`] when there is no such job;
/// [`StoreError::Conflict`] when it is not dead or cancelled, or a live job holds its unique key.
pub async fn retry_job<'c, A>(conn: A, id: JobId) -> Result<()>
where
    A: sqlx::Acquire<'c, Database = sqlx::Postgres>,
{
    let mut tx = conn.begin().await?;
    let moved: Option<(String, String, Option<i64>)> = sqlx::query_as(
        "UPDATE cowans_jobs SET state = 'available', attempt = 0, run_at = now(), \
         finalized_at = NULL, lease_expires_at = NULL \
         WHERE id = $1 AND state IN ('dead', 'cancelled') RETURNING queue, kind, batch_id",
    )
    .bind(id.0)
    .fetch_optional(&mut *tx)
    .await
    .map_err(|e| match StoreError::from(e) {
        StoreError::Conflict { .. } => {
            StoreError::conflict(format!("a live job holds the unique key of job {id}"))
        }
        other => other,
    })?;
    let Some((queue, kind, batch_id)) = moved else {
        return Err(match state_of(&mut tx, id).await? {
            None => StoreError::not_found(format!("job {id}")),
            Some(s) => StoreError::conflict(format!(
                "job {id} is {s}; only dead or cancelled jobs can be retried"
            )),
        });
    };
    let wake = crate::announce::runnable([queue.as_str()]);
    let event = Event::JobRetried {
        job_id: id,
        queue,
        kind,
        batch_id,
    };
    crate::announce(&mut tx, &wake, &[event]).await?;
    tx.commit().await?;
    Ok(())
}
