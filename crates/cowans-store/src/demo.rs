//! Statements and tables of the demo application (`cowans-demo`).

use cowans_core::JobId;
use sqlx::PgExecutor;

use crate::Result;

/// The demo application's table (`migrations/demo/`), created only where it is enabled.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate::Migrator {
    ignore_missing: true,
    ..sqlx::migrate!("../../migrations/demo")
};

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
