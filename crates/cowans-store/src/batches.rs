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
        JobState::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .map(|s| self.count(s))
            .sum()
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
    let mut tx = conn.begin().await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO cowans_batches (description, total, callback) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(description)
    .bind(jobs.len() as i32)
    .bind(callback.map(|c| json!(c)))
    .fetch_one(&mut *tx)
    .await?;
    let jobs: Vec<NewJob> = jobs
        .iter()
        .cloned()
        .map(|mut j| {
            j.batch_id = Some(id);
            j
        })
        .collect();
    let results = crate::enqueue_many(&mut *tx, &jobs).await?;
    let inserted = results.iter().filter(|r| !r.duplicate).count();
    if inserted != jobs.len() {
        sqlx::query("UPDATE cowans_batches SET total = $2 WHERE id = $1")
            .bind(id)
            .bind(inserted as i32)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok((id, results))
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
);

/// A batch with live counts (finished batches answer with the counts they finished with, since
/// their jobs may have been pruned since).
pub async fn batch_progress(pool: &PgPool, id: i64) -> Result<Option<BatchProgress>> {
    let row: Option<BatchRow> = sqlx::query_as(
        "SELECT id, description, total, counts, created_at, cancelled_at, finished_at, callback_job_id \
         FROM cowans_batches WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some((id, description, total, stored, created_at, cancelled_at, finished_at, cb)) = row
    else {
        return Ok(None);
    };
    let counts = if finished_at.is_some() {
        serde_json::from_value(stored).unwrap_or_default()
    } else {
        count_jobs(pool, &[id])
            .await?
            .remove(&id)
            .unwrap_or_default()
    };
    Ok(Some(BatchProgress {
        id,
        description,
        total: i64::from(total),
        counts,
        created_at,
        cancelled_at,
        finished_at,
        callback_job_id: cb.map(JobId),
    }))
}

/// Per batch: jobs per state, plus `failed` (jobs whose last attempt failed and that wait for a
/// retry; already counted under `scheduled` or `available`; permanently failed jobs are `dead`).
/// One grouped scan of the `(batch_id, state)` index for all the batches.
async fn count_jobs(pool: &PgPool, ids: &[i64]) -> Result<HashMap<i64, Counts>> {
    let rows: Vec<(i64, String, i64, i64)> = sqlx::query_as(
        "SELECT batch_id, state::text, count(*), \
                count(*) FILTER (WHERE attempt > 0 AND state IN ('available', 'scheduled')) \
         FROM cowans_jobs WHERE batch_id = ANY($1) GROUP BY batch_id, state",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?;
    let mut all: HashMap<i64, Counts> = HashMap::new();
    for (batch, state, n, failed) in rows {
        let counts = all.entry(batch).or_default();
        counts.insert(state, n);
        if failed > 0 {
            *counts.entry("failed".to_owned()).or_default() += failed;
        }
    }
    Ok(all)
}

/// What one refresh pass saw and did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchRefresh {
    /// Batches whose counts changed (a progress event was published for each).
    pub progressed: Vec<i64>,
    /// Batches that finished in this pass (callback enqueued, if any).
    pub finished: Vec<i64>,
}

/// Leader only: recounts open batches, stores and announces changed counts, and finishes the
/// batches whose jobs are all final — each exactly once, with its callback job enqueued in the
/// same transaction.
pub async fn refresh_batches(pool: &PgPool, limit: i64) -> Result<BatchRefresh> {
    let open: Vec<(i64, i32, Value, Option<Value>)> = sqlx::query_as(
        "SELECT id, total, counts, callback FROM cowans_batches WHERE finished_at IS NULL ORDER BY id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let ids: Vec<i64> = open.iter().map(|(id, ..)| *id).collect();
    let mut live = count_jobs(pool, &ids).await?;
    let mut out = BatchRefresh::default();
    for (id, total, stored, callback) in open {
        let counts = live.remove(&id).unwrap_or_default();
        let stored: Counts = serde_json::from_value(stored).unwrap_or_default();
        let final_jobs: i64 = JobState::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .map(|s| counts.get(s.as_str()).copied().unwrap_or(0))
            .sum();
        let done = final_jobs >= i64::from(total);
        if !done && counts == stored {
            continue;
        }
        let mut tx = pool.begin().await?;
        let total = i64::from(total);
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
            continue; // another leader finished it
        }
        if done
            && let Some(cb) = callback
            && let Ok(cb) = serde_json::from_value::<BatchCallback>(cb)
        {
            let job = NewJob::new(
                cb.queue,
                cb.kind,
                json!({ "batch_id": id, "counts": counts, "args": cb.args }),
            );
            let enq = crate::enqueue(&mut *tx, &job).await?;
            sqlx::query("UPDATE cowans_batches SET callback_job_id = $2 WHERE id = $1")
                .bind(id)
                .bind(enq.id.0)
                .execute(&mut *tx)
                .await?;
        }
        crate::announce(&mut tx, &[], &[event]).await?;
        tx.commit().await?;
        if done {
            out.finished.push(id);
        } else {
            out.progressed.push(id);
        }
    }
    Ok(out)
}
