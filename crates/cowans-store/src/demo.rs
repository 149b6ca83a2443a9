//! Statements of the built-in demo kinds.

use cowans_core::JobId;
use sqlx::PgExecutor;

use crate::Result;

/// Records the effect of a `demo.effect` job (call it in the transaction that completes it).
pub async fn record_effect<'e>(executor: impl PgExecutor<'e>, job: JobId, key: &str) -> Result<()> {
    sqlx::query("INSERT INTO cowans_demo_effects (job_id, key) VALUES ($1, $2)")
        .bind(job.0)
        .bind(key)
        .execute(executor)
        .await?;
    Ok(())
}

/// How many effects were recorded per key (tests assert exactly-once on this).
pub async fn effect_counts(pool: &sqlx::PgPool) -> Result<Vec<(String, i64)>> {
    Ok(
        sqlx::query_as("SELECT key, count(*) FROM cowans_demo_effects GROUP BY key ORDER BY key")
            .fetch_all(pool)
            .await?,
    )
}
