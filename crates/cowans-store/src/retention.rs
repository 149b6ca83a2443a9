//! Retention: finished jobs are deleted after their window, in bounded batches, by the leader.

use sqlx::PgPool;

use crate::{Pruned, Result, Retention};

// Jobs of a batch that has not finished are kept: the batch's counts come from them.
macro_rules! prune_sql {
    ($states:literal) => {
        concat!(
            "WITH doomed AS (SELECT id FROM cowans_jobs WHERE finalized_at < now() - $1 * interval '1 millisecond' \
             AND state IN ",
            $states,
            " AND (batch_id IS NULL OR EXISTS (SELECT 1 FROM cowans_batches b WHERE b.id = batch_id \
             AND b.finished_at IS NOT NULL)) ORDER BY finalized_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
             DELETE FROM cowans_jobs j USING doomed WHERE j.id = doomed.id"
        )
    };
}
const PRUNE_FINISHED: &str = prune_sql!("('completed', 'cancelled')");
const PRUNE_DEAD: &str = prune_sql!("('dead')");

/// Deletes at most `limit` finished jobs and `limit` dead letters past their window, and
/// finished batches and error groups unseen for the dead-letter window. Call again while it returns `limit`.
pub async fn prune(pool: &PgPool, retention: Retention, limit: i64) -> Result<Pruned> {
    let finished = sqlx::query(PRUNE_FINISHED)
        .bind(retention.finished.as_millis() as f64)
        .bind(limit)
        .execute(pool)
        .await?
        .rows_affected();
    let dead = sqlx::query(PRUNE_DEAD)
        .bind(retention.dead.as_millis() as f64)
        .bind(limit)
        .execute(pool)
        .await?
        .rows_affected();
    let batches = sqlx::query(
        "DELETE FROM cowans_batches WHERE finished_at < now() - $1 * interval '1 millisecond' \
         AND NOT EXISTS (SELECT 1 FROM cowans_jobs WHERE batch_id = cowans_batches.id) \
         AND redis_queues = '{}' AND (callback IS NULL OR callback_job_id IS NOT NULL)",
    )
    .bind(retention.dead.as_millis() as f64)
    .execute(pool)
    .await?
    .rows_affected();
    crate::error_groups::prune_error_groups(pool, retention.dead).await?;
    Ok(Pruned {
        finished,
        dead,
        batches,
    })
}
