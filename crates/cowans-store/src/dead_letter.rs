//! The dead-letter set: list, re-drive (one, many, or all matching a filter) and purge.

use std::collections::BTreeMap;

use cowans_core::{Event, JobId};
use sqlx::{Acquire, PgPool, Postgres};

use crate::{JobRecord, Result, StoreError, jobs::JobRow, jobs::job_columns};

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

/// How many dead letters match `filter`.
pub async fn count_dead(pool: &PgPool, filter: &DeadLetterFilter) -> Result<u64> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM cowans_jobs \
         WHERE state = 'dead' AND ($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR kind = $2)",
    )
    .bind(&filter.queue)
    .bind(&filter.kind)
    .fetch_one(pool)
    .await?;
    Ok(n.max(0) as u64)
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
pub async fn redrive_ids<'c, A>(conn: A, ids: &[JobId]) -> Result<Vec<JobId>>
where
    A: Acquire<'c, Database = Postgres>,
{
    redrive_ids_in(conn, None, ids).await
}

/// Like [`redrive_ids`], only for dead letters of `queue`.
pub async fn redrive_ids_in<'c, A>(
    conn: A,
    queue: Option<&str>,
    ids: &[JobId],
) -> Result<Vec<JobId>>
where
    A: Acquire<'c, Database = Postgres>,
{
    let ids: Vec<i64> = ids.iter().map(|i| i.0).collect();
    let mut tx = conn.begin().await?;
    let moved: Vec<(i64, String)> = sqlx::query_as(concat!(
        "UPDATE cowans_jobs j ",
        redrive_set!(),
        " WHERE j.id = ANY($1) AND j.state = 'dead' AND ($2::text IS NULL OR j.queue = $2)",
        key_free!("d.id = ANY($1)"),
        " RETURNING j.id, j.queue"
    ))
    .bind(ids)
    .bind(queue)
    .fetch_all(&mut *tx)
    .await?;
    announce_redriven(&mut tx, moved.iter().map(|(_, q)| q.as_str())).await?;
    tx.commit().await?;
    let mut ids: Vec<JobId> = moved.into_iter().map(|(id, _)| JobId(id)).collect();
    ids.sort();
    Ok(ids)
}

/// Re-drives every dead letter matching the filter; returns how many.
pub async fn redrive_matching<'c, A>(conn: A, filter: &DeadLetterFilter) -> Result<u64>
where
    A: Acquire<'c, Database = Postgres>,
{
    let mut tx = conn.begin().await?;
    let moved: Vec<String> = sqlx::query_scalar(concat!(
        "UPDATE cowans_jobs j ", redrive_set!(), " \
           WHERE j.state = 'dead' AND ($1::text IS NULL OR j.queue = $1) AND ($2::text IS NULL OR j.kind = $2)",
        key_free!("($2::text IS NULL OR d.kind = $2)"),
        " RETURNING j.queue"
    ))
    .bind(&filter.queue)
    .bind(&filter.kind)
    .fetch_all(&mut *tx)
    .await?;
    announce_redriven(&mut tx, moved.iter().map(String::as_str)).await?;
    tx.commit().await?;
    Ok(moved.len() as u64)
}

/// Wakes the producers of the queues re-driven jobs went back to and announces a
/// `dead.redriven` per queue.
async fn announce_redriven<'a>(
    conn: &mut sqlx::PgConnection,
    queues: impl Iterator<Item = &'a str> + Clone,
) -> Result<()> {
    let wake = crate::announce::runnable(queues.clone());
    let events = per_queue(queues, |queue, count| Event::DeadRedriven { queue, count });
    crate::announce(conn, &wake, &events).await
}

/// One event per queue, with how many of `queues` name it.
fn per_queue<'a>(
    queues: impl Iterator<Item = &'a str>,
    event: impl Fn(String, u64) -> Event,
) -> Vec<Event> {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for q in queues {
        *counts.entry(q).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(queue, n)| event(queue.to_owned(), n))
        .collect()
}

/// Deletes the dead letters matching the filter; returns how many. With `expected`, deletes
/// them only if there are exactly that many (an operator confirms what they saw), otherwise
/// nothing, answering [`StoreError::Conflict`] with `{expected, actual}` in its details.
/// Announced as `dead.purged` per queue.
pub async fn purge_dead<'c, A>(
    conn: A,
    filter: &DeadLetterFilter,
    expected: Option<u64>,
) -> Result<u64>
where
    A: Acquire<'c, Database = Postgres>,
{
    let mut tx = conn.begin().await?;
    let found: Vec<(i64, String)> = sqlx::query_as(
        "SELECT id, queue FROM cowans_jobs WHERE state = 'dead' \
         AND ($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR kind = $2) FOR UPDATE",
    )
    .bind(&filter.queue)
    .bind(&filter.kind)
    .fetch_all(&mut *tx)
    .await?;
    let actual = found.len() as u64;
    if let Some(expected) = expected
        && expected != actual
    {
        return Err(StoreError::Conflict {
            message: format!("{actual} dead letters match, not {expected}; nothing was purged"),
            details: serde_json::json!({ "expected": expected, "actual": actual }),
        });
    }
    let ids: Vec<i64> = found.iter().map(|(id, _)| *id).collect();
    let gone: Vec<(Option<i64>, String)> =
        sqlx::query_as("DELETE FROM cowans_jobs WHERE id = ANY($1) RETURNING batch_id, queue")
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?;
    crate::batches::count_purged(&mut tx, &gone).await?;
    let queues = found.iter().map(|(_, q)| q.as_str());
    let events = per_queue(queues, |queue, count| Event::DeadPurged { queue, count });
    crate::announce(&mut tx, &[], &events).await?;
    tx.commit().await?;
    Ok(actual)
}
