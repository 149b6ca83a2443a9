//! Batches: a group of jobs created in one call, counted by state, announced as they progress,
//! and finished exactly once with an optional callback job.
//!
//! Counts are taken from the jobs themselves (by the `cowans_jobs_batch` index), never kept as
//! separate counters, so they stay right whatever crashes or races happen; the leader refreshes
//! a snapshot of open batches every few seconds and publishes a progress event when it changes.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use cowans_core::{Event, JobId, JobState, QueueName};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::{Enqueued, NewJob, Result, StoreError, enqueue::validate_all};

/// A job enqueued once when every job of the batch has finished. Its args become
/// `{"batch_id": .., "counts": {..}, "args": <these args>}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BatchCallback {
    pub queue: QueueName,
    pub kind: String,
    #[serde(default)]
    pub args: Value,
}

/// Jobs per state.
pub type Counts = cowans_core::event::BatchCounts;

/// A batch and where its jobs are.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchProgress {
    pub id: i64,
    pub description: String,
    pub total: i64,
    pub counts: Counts,
    pub created_at: DateTime<Utc>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub callback_job_id: Option<JobId>,
    /// An open batch's Redis queues, whose jobs [`BatchProgress::counts`] does not count yet.
    pub redis_queues: Vec<String>,
}

impl BatchProgress {
    pub fn count(&self, state: JobState) -> i64 {
        self.counts.get(state.as_str()).copied().unwrap_or(0)
    }

    /// Jobs waiting for a retry after a failed attempt.
    pub fn failed(&self) -> i64 {
        self.counts.get("failed").copied().unwrap_or(0)
    }

    /// Jobs in a final state.
    pub fn finished_jobs(&self) -> i64 {
        final_jobs(&self.counts)
    }
}

/// Longest batch description accepted, in characters.
pub const MAX_DESCRIPTION: usize = 4096;

/// Creates a batch of `jobs` in one transaction. Jobs that turn out to be duplicates of existing
/// unique jobs are not part of the batch (their results say so); `total` counts the others.
pub async fn create_batch<'c, A>(
    conn: A,
    description: &str,
    jobs: &[NewJob],
    callback: Option<&BatchCallback>,
) -> Result<(i64, Vec<Enqueued>)>
where
    A: sqlx::Acquire<'c, Database = sqlx::Postgres>,
{
    validate_all(jobs)?;
    let mut tx = conn.begin().await?;
    let id = open_batch(&mut tx, description, jobs.len(), callback, &[]).await?;
    let results = crate::enqueue_many(&mut *tx, &in_batch(id, jobs)).await?;
    set_batch_total(&mut tx, id, jobs.len(), &results).await?;
    tx.commit().await?;
    Ok((id, results))
}

/// `jobs`, each marked as a job of batch `id`.
pub fn in_batch(id: i64, jobs: &[NewJob]) -> Vec<NewJob> {
    jobs.iter()
        .cloned()
        .map(|mut j| {
            j.batch_id = Some(id);
            j
        })
        .collect()
}

/// Checks a batch's description and callback, then stores the batch (of `total` jobs, some of
/// them on the Redis queues `redis_queues`) inside the caller's transaction; its jobs follow.
pub async fn open_batch(
    tx: &mut sqlx::PgConnection,
    description: &str,
    total: usize,
    callback: Option<&BatchCallback>,
    redis_queues: &[String],
) -> Result<i64> {
    let chars = description.chars().count();
    if chars > MAX_DESCRIPTION || description.contains('\0') {
        return Err(StoreError::invalid(
            "description",
            format!(
                "must be at most {MAX_DESCRIPTION} characters without \\u0000 (it is {chars} characters)"
            ),
        ));
    }
    if let Some(cb) = callback {
        cowans_core::validate_kind(&cb.kind)
            .map_err(|e| StoreError::invalid("callback.kind", e.to_string()))?;
        if let Some(path) = cowans_core::unstorable::nul_at(&cb.args, "callback.args") {
            return Err(StoreError::invalid(
                path,
                "contains a \\u0000 character, which Postgres cannot store in JSON",
            ));
        }
    }
    let id = sqlx::query_scalar(
        "INSERT INTO cowans_batches (description, total, callback, redis_queues) \
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(description)
    .bind(total as i32)
    .bind(callback.map(|c| json!(c)))
    .bind(redis_queues)
    .fetch_one(&mut *tx)
    .await?;
    Ok(id)
}

/// Lowers a batch's total (of `planned` jobs) by the jobs that turned out to be duplicates.
pub async fn set_batch_total(
    tx: &mut sqlx::PgConnection,
    id: i64,
    planned: usize,
    results: &[Enqueued],
) -> Result<()> {
    let duplicates = results.iter().filter(|r| r.duplicate).count();
    if duplicates > 0 {
        sqlx::query("UPDATE cowans_batches SET total = $2 WHERE id = $1")
            .bind(id)
            .bind((planned - duplicates) as i32)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

type BatchRow = (
    i64,
    String,
    i32,
    Value,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<i64>,
    Vec<String>,
);

macro_rules! batch_select {
    () => {
        "SELECT id, description, total, counts, created_at, cancelled_at, finished_at, \
                callback_job_id, redis_queues FROM cowans_batches "
    };
}

/// A batch with the counts of its Postgres jobs (finished batches answer with the counts they
/// finished with, since their jobs may have been pruned since). An open batch with jobs on
/// Redis queues (`redis_queues`) has those counted there by the caller.
pub async fn batch_progress(pool: &PgPool, id: i64) -> Result<Option<BatchProgress>> {
    let rows: Vec<BatchRow> = sqlx::query_as(concat!(batch_select!(), "WHERE id = $1"))
        .bind(id)
        .fetch_all(pool)
        .await?;
    Ok(progress_of(pool, rows).await?.pop())
}

/// The newest `limit` batches before id `before`, newest first, as [`batch_progress`] tells
/// them (the open ones counted in one grouped scan).
pub async fn recent_batches(
    pool: &PgPool,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<BatchProgress>> {
    let rows: Vec<BatchRow> = sqlx::query_as(concat!(
        batch_select!(),
        "WHERE id < $1 ORDER BY id DESC LIMIT $2"
    ))
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    progress_of(pool, rows).await
}

/// Batches' rows with their counts: stored for finished ones, counted for open ones.
async fn progress_of(pool: &PgPool, rows: Vec<BatchRow>) -> Result<Vec<BatchProgress>> {
    let open: Vec<i64> = rows.iter().filter(|r| r.6.is_none()).map(|r| r.0).collect();
    let mut counted = if open.is_empty() {
        HashMap::new()
    } else {
        count_batch_jobs(pool, &open, None).await?
    };
    Ok(rows
        .into_iter()
        .map(
            |(id, description, total, stored, created_at, cancelled_at, finished_at, cb, redis)| {
                let (counts, redis_queues) = if finished_at.is_some() {
                    (
                        serde_json::from_value(stored).unwrap_or_default(),
                        Vec::new(),
                    )
                } else {
                    (counted.remove(&id).unwrap_or_default(), redis)
                };
                BatchProgress {
                    id,
                    description,
                    total: i64::from(total),
                    counts,
                    created_at,
                    cancelled_at,
                    finished_at,
                    callback_job_id: cb.map(JobId),
                    redis_queues,
                }
            },
        )
        .collect())
}

/// Per batch: jobs per state (of `queue` only, when given), plus `failed` (jobs whose last
/// attempt failed and that wait for a retry; already counted under `scheduled` or `available`;
/// permanently failed jobs are `dead`). One grouped scan of the `(batch_id, state)` index for
/// all the batches.
pub async fn count_batch_jobs(
    pool: &PgPool,
    ids: &[i64],
    queue: Option<&str>,
) -> Result<HashMap<i64, Counts>> {
    let rows: Vec<(i64, String, i64, i64)> = sqlx::query_as(
        "SELECT batch_id, state::text, count(*), \
                count(*) FILTER (WHERE attempt > 0 AND state IN ('available', 'scheduled')) \
         FROM cowans_jobs WHERE batch_id = ANY($1) AND ($2::text IS NULL OR queue = $2) \
         GROUP BY batch_id, state",
    )
    .bind(ids)
    .bind(queue)
    .fetch_all(pool)
    .await?;
    let mut all: HashMap<i64, Counts> = HashMap::new();
    let purged: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT b.id, sum(p.n::bigint)::bigint FROM cowans_batches b, \
                jsonb_each_text(b.dead_purged) AS p(queue, n) \
         WHERE b.id = ANY($1) AND ($2::text IS NULL OR p.queue = $2) GROUP BY b.id",
    )
    .bind(ids)
    .bind(queue)
    .fetch_all(pool)
    .await?;
    for (batch, n) in purged {
        *all.entry(batch)
            .or_default()
            .entry(JobState::Dead.as_str().to_owned())
            .or_default() += n;
    }
    for (batch, state, n, failed) in rows {
        let counts = all.entry(batch).or_default();
        *counts.entry(state).or_default() += n;
        if failed > 0 {
            *counts.entry("failed".to_owned()).or_default() += failed;
        }
    }
    Ok(all)
}

/// Keeps the count of purged dead letters of batches that have not finished (`(batch, queue)`
/// of each deleted job), so their progress still counts them.
pub(crate) async fn count_purged(
    tx: &mut sqlx::PgConnection,
    gone: &[(Option<i64>, String)],
) -> Result<()> {
    let mut per: HashMap<(i64, &str), i64> = HashMap::new();
    for (batch, queue) in gone {
        if let Some(b) = batch {
            *per.entry((*b, queue.as_str())).or_default() += 1;
        }
    }
    for ((batch, queue), n) in per {
        sqlx::query(
            "UPDATE cowans_batches SET dead_purged = jsonb_set(dead_purged, ARRAY[$2], \
             to_jsonb(COALESCE((dead_purged->>$2)::bigint, 0) + $3)) \
             WHERE id = $1 AND finished_at IS NULL",
        )
        .bind(batch)
        .bind(queue)
        .bind(n)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// The ids of a batch's jobs in `queue`.
pub async fn batch_job_ids(pool: &PgPool, batch: i64, queue: &str) -> Result<Vec<JobId>> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM cowans_jobs WHERE batch_id = $1 AND queue = $2 ORDER BY id",
    )
    .bind(batch)
    .bind(queue)
    .fetch_all(pool)
    .await?;
    Ok(ids.into_iter().map(JobId).collect())
}

/// Adds `more` to `counts`, state by state.
pub fn add_counts(counts: &mut Counts, more: &Counts) {
    for (state, n) in more {
        *counts.entry(state.clone()).or_default() += n;
    }
}

/// Jobs of `counts` in a final state.
pub fn final_jobs(counts: &Counts) -> i64 {
    JobState::ALL
        .into_iter()
        .filter(|s| s.is_final())
        .map(|s| counts.get(s.as_str()).copied().unwrap_or(0))
        .sum()
}

/// What one refresh pass saw and did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchRefresh {
    /// Batches whose counts changed (a progress event was published for each).
    pub progressed: Vec<i64>,
    /// Batches that finished in this pass (callback enqueued, if any).
    pub finished: Vec<i64>,
}

/// A batch that has not finished, as the leader last counted it.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenBatch {
    pub id: i64,
    pub total: i64,
    /// The counts last stored (and announced).
    pub counted: Counts,
    pub callback: Option<BatchCallback>,
    /// The Redis queues holding some of its jobs.
    pub redis_queues: Vec<String>,
}

/// The oldest `limit` batches that have not finished.
pub async fn open_batches(pool: &PgPool, limit: i64) -> Result<Vec<OpenBatch>> {
    type Row = (i64, i32, Value, Option<Value>, Vec<String>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, total, counts, callback, redis_queues FROM cowans_batches \
         WHERE finished_at IS NULL ORDER BY id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, total, counted, callback, redis_queues)| OpenBatch {
            id,
            total: i64::from(total),
            counted: serde_json::from_value(counted).unwrap_or_default(),
            callback: callback.and_then(|c| serde_json::from_value(c).ok()),
            redis_queues,
        })
        .collect())
}

/// Stores and announces a batch's new `counts`; when `done`, finishes it — once, whoever else
/// tries. Its callback job, if any, is enqueued in the same transaction when its queue is on
/// Postgres (`callback_here`); otherwise it is left pending for [`pending_callbacks`]. Returns
/// whether this call did it (false: another leader finished it first).
pub async fn settle_batch(
    pool: &PgPool,
    batch: &OpenBatch,
    counts: &Counts,
    done: bool,
    callback_here: bool,
) -> Result<bool> {
    let (id, total) = (batch.id, batch.total);
    let event = if done {
        Event::BatchFinished {
            batch_id: id,
            total,
            counts: counts.clone(),
        }
    } else {
        Event::BatchProgress {
            batch_id: id,
            total,
            counts: counts.clone(),
        }
    };
    let mut tx = pool.begin().await?;
    let updated = sqlx::query(
        "UPDATE cowans_batches SET counts = $2, counted_at = now(), \
         finished_at = CASE WHEN $3 THEN now() END WHERE id = $1 AND finished_at IS NULL",
    )
    .bind(id)
    .bind(json!(counts))
    .bind(done)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        return Ok(false);
    }
    if done
        && callback_here
        && let Some(cb) = &batch.callback
    {
        let job = NewJob::new(
            cb.queue.clone(),
            cb.kind.clone(),
            callback_args(id, counts, cb),
        );
        let job = crate::enqueue(&mut *tx, &job).await?.id;
        set_callback_job(&mut tx, id, job).await?;
    }
    crate::announce(&mut tx, &[], &[event]).await?;
    tx.commit().await?;
    Ok(true)
}

/// Finished batches whose callback job (on a Redis queue) has not been recorded yet: `(id,
/// callback, final counts)`.
pub async fn pending_callbacks(
    pool: &PgPool,
    limit: i64,
) -> Result<Vec<(i64, BatchCallback, Counts)>> {
    let rows: Vec<(i64, Value, Value)> = sqlx::query_as(
        "SELECT id, callback, counts FROM cowans_batches \
         WHERE finished_at IS NOT NULL AND callback IS NOT NULL AND callback_job_id IS NULL \
         ORDER BY id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, cb, counts)| {
            let cb = serde_json::from_value(cb).ok()?;
            Some((id, cb, serde_json::from_value(counts).unwrap_or_default()))
        })
        .collect())
}

/// Records a finished batch's callback job (once: the first recorded stays).
pub async fn set_callback_job(conn: &mut sqlx::PgConnection, id: i64, job: JobId) -> Result<()> {
    sqlx::query(
        "UPDATE cowans_batches SET callback_job_id = $2 WHERE id = $1 AND callback_job_id IS NULL",
    )
    .bind(id)
    .bind(job.0)
    .execute(conn)
    .await?;
    Ok(())
}

/// What a batch's callback job carries.
pub fn callback_args(batch_id: i64, counts: &Counts, cb: &BatchCallback) -> Value {
    json!({ "batch_id": batch_id, "counts": counts, "args": cb.args })
}

/// Finished batches whose keys on Redis have not been released yet: `(id, redis queues)`.
pub async fn finished_on_redis(pool: &PgPool, limit: i64) -> Result<Vec<(i64, Vec<String>)>> {
    Ok(sqlx::query_as(
        "SELECT id, redis_queues FROM cowans_batches \
         WHERE finished_at IS NOT NULL AND redis_queues <> '{}' ORDER BY id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Records that a finished batch's keys on Redis were released.
pub async fn released_on_redis(pool: &PgPool, id: i64) -> Result<()> {
    sqlx::query("UPDATE cowans_batches SET redis_queues = '{}' WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}
