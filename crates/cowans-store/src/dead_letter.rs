//! The dead-letter set: list, re-drive (one, many, or all matching a filter) and purge.

use cowans_core::JobId;
use sqlx::PgPool;

use crate::{JobRecord, Result, jobs::JobRow, jobs::job_columns};

/// Which dead letters an operation applies to. Empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterFilter {
    pub queue: Option<String>,
    pub kind: Option<String>,
}

/// A page of dead letters, oldest id first, after `after` (keyset pagination).
pub async fn list_dead(
    pool: &PgPool,
    filter: &DeadLetterFilter,
    after: Option<JobId>,
    limit: i64,
) -> Result<Vec<JobRecord>> {
    let rows: Vec<JobRow> = sqlx::query_as(concat!(
        "SELECT ",
        job_columns!(),
        " FROM cowans_jobs \
         WHERE state = 'dead' AND ($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR kind = $2) \
           AND id > $3 \
         ORDER BY id LIMIT $4"
    ))
    .bind(&filter.queue)
    .bind(&filter.kind)
    .bind(after.map_or(0, |a| a.0))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(JobRecord::try_from).collect()
}

// A dead letter with a unique key comes back only if no live job holds the key, and only one
// dead letter per key (the oldest) comes back at a time.
macro_rules! key_free {
    ($candidates:literal) => {
        concat!(
            " AND (j.unique_key IS NULL OR (NOT EXISTS (SELECT 1 FROM cowans_jobs o WHERE o.queue = j.queue \
             AND o.unique_key = j.unique_key AND o.id <> j.id AND (o.unique_states & cowans_state_bit(o.state)) <> 0) \
             AND j.id = (SELECT min(d.id) FROM cowans_jobs d WHERE d.queue = j.queue AND d.unique_key = j.unique_key \
             AND d.state = 'dead' AND ",
            $candidates,
            ")))"
        )
    };
}

// Re-driven jobs start over: attempt 0, runnable now. Their error history stays.
macro_rules! redrive_set {
    () => {
        "SET state = 'available', attempt = 0, run_at = now(), finalized_at = NULL"
    };
}

/// Re-drives the listed dead letters; ids that are not dead letters are ignored, and so are dead
/// letters whose unique key a live job holds. Returns the ids re-driven.
pub async fn redrive_ids(pool: &PgPool, ids: &[JobId]) -> Result<Vec<JobId>> {
    redrive_ids_in(pool, None, ids).await
}

/// Like [`redrive_ids`], only for dead letters of `queue`.
pub async fn redrive_ids_in(
    pool: &PgPool,
    queue: Option<&str>,
    ids: &[JobId],
) -> Result<Vec<JobId>> {
    let ids: Vec<i64> = ids.iter().map(|i| i.0).collect();
    let done: Vec<i64> = sqlx::query_scalar(concat!(
        "WITH moved AS (UPDATE cowans_jobs j ", redrive_set!(), " WHERE j.id = ANY($1) AND j.state = 'dead' AND ($2::text IS NULL OR j.queue = $2)",
        key_free!("d.id = ANY($1)"),
        " RETURNING j.id, j.queue), \
         notified AS (SELECT count(pg_notify('cowans_jobs', 'r:' || queue)) AS n FROM (SELECT DISTINCT queue FROM moved) q) \
         SELECT id FROM moved CROSS JOIN notified ORDER BY id"
    ))
    .bind(ids)
    .bind(queue)
    .fetch_all(pool)
    .await?;
    Ok(done.into_iter().map(JobId).collect())
}

/// Re-drives every dead letter matching the filter; returns how many.
pub async fn redrive_matching(pool: &PgPool, filter: &DeadLetterFilter) -> Result<u64> {
    let n: i64 = sqlx::query_scalar(concat!(
        "WITH moved AS (UPDATE cowans_jobs j ", redrive_set!(), " \
           WHERE j.state = 'dead' AND ($1::text IS NULL OR j.queue = $1) AND ($2::text IS NULL OR j.kind = $2)",
        key_free!("($2::text IS NULL OR d.kind = $2)"),
        " RETURNING j.queue), \
         notified AS (SELECT count(pg_notify('cowans_jobs', 'r:' || queue)) AS n FROM (SELECT DISTINCT queue FROM moved) q) \
         SELECT (SELECT count(*) FROM moved) FROM notified"
    ))
    .bind(&filter.queue)
    .bind(&filter.kind)
    .fetch_one(pool)
    .await?;
    Ok(n as u64)
}

/// Deletes every dead letter matching the filter; returns how many.
pub async fn purge_dead(pool: &PgPool, filter: &DeadLetterFilter) -> Result<u64> {
    let done = sqlx::query(
        "DELETE FROM cowans_jobs WHERE state = 'dead' \
         AND ($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR kind = $2)",
    )
    .bind(&filter.queue)
    .bind(&filter.kind)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Deletes the dead letters matching the filter only if there are exactly `expected` of them
/// (an operator confirms what they saw); otherwise deletes nothing and returns the real count.
pub async fn purge_dead_expected(
    pool: &PgPool,
    filter: &DeadLetterFilter,
    expected: u64,
) -> Result<std::result::Result<u64, u64>> {
    let mut tx = pool.begin().await?;
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM cowans_jobs WHERE state = 'dead' \
         AND ($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR kind = $2) FOR UPDATE",
    )
    .bind(&filter.queue)
    .bind(&filter.kind)
    .fetch_all(&mut *tx)
    .await?;
    if ids.len() as u64 != expected {
        return Ok(Err(ids.len() as u64));
    }
    let done = sqlx::query("DELETE FROM cowans_jobs WHERE id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Ok(done.rows_affected()))
}
