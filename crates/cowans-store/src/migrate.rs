//! Connecting and migrating.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::Result;

/// The forward-only migrations in the repository's `migrations/`, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Opens a pool. `max_connections` should cover the worker's concurrency for handlers that use
/// the pool plus a handful for the producer, completer and maintenance.
pub async fn connect(options: PgConnectOptions, max_connections: u32) -> Result<sqlx::PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// Applies pending migrations. sqlx takes a Postgres advisory lock for the duration, so several
/// processes starting at once migrate exactly once.
pub async fn migrate(pool: &sqlx::PgPool) -> Result<()> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// How many embedded migrations the database has not applied (0 = current).
pub async fn migrations_pending(pool: &sqlx::PgPool) -> Result<usize> {
    let table_exists: bool =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(pool)
            .await?;
    if !table_exists {
        return Ok(MIGRATOR.iter().count());
    }
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await?;
    Ok(MIGRATOR
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .count())
}
