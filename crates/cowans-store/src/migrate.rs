//! Connecting and migrating.

use std::time::Duration;

use sqlx::{
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::Result;

/// The engine's forward-only migrations (`migrations/*.sql`: jobs, control, API keys and audit),
/// embedded at build time. Applications' tables live in `migrations/<app>/` with their own
/// migrators ([`crate::demo::MIGRATOR`], ...), applied only where the application is enabled.
/// All share sqlx's `_sqlx_migrations` table (versions are unique across them), so each migrator
/// ignores the others' rows; [`migrate`] checks instead that every applied version is one the
/// build knows (the engine's, or any application's, enabled or not).
pub static MIGRATOR: Migrator = Migrator {
    ignore_missing: true,
    ..sqlx::migrate!("../../migrations")
};

/// Opens a pool. `max_connections` should cover the worker's concurrency for handlers that use
/// the pool plus a handful for the producer, completer and maintenance. JIT is off: its
/// compilation (100 ms and more) costs the short statements of a queue and a catalog far more
/// than it could save.
pub async fn connect(options: PgConnectOptions, max_connections: u32) -> Result<sqlx::PgPool> {
    let options = options.options([("jit", "off")]);
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// Applies the engine's pending migrations, then those of `run` (the enabled applications'
/// migrators). sqlx takes a Postgres advisory lock for each run, so several processes starting
/// at once migrate exactly once. Fails if the database has a migration that neither the engine
/// nor any of `known` (every application migrator of the build) has: it was migrated by a newer
/// version.
pub async fn migrate(
    pool: &sqlx::PgPool,
    run: &[&'static Migrator],
    known: &[&'static Migrator],
) -> Result<()> {
    MIGRATOR.run(pool).await?;
    for m in run {
        m.run(pool).await?;
    }
    let known = |v: i64| {
        std::iter::once(&MIGRATOR)
            .chain(run.iter().copied())
            .chain(known.iter().copied())
            .any(|m| m.version_exists(v))
    };
    if let Some(unknown) = applied(pool).await?.into_iter().find(|v| !known(*v)) {
        return Err(sqlx::migrate::MigrateError::VersionMissing(unknown).into());
    }
    Ok(())
}

/// How many migrations of the engine and of `apps` the database has not applied (0 = current).
pub async fn migrations_pending(pool: &sqlx::PgPool, apps: &[&'static Migrator]) -> Result<usize> {
    let applied = applied(pool).await?;
    Ok(std::iter::once(&MIGRATOR)
        .chain(apps.iter().copied())
        .flat_map(|m| m.iter())
        .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
        .count())
}

async fn applied(pool: &sqlx::PgPool) -> Result<Vec<i64>> {
    let table_exists: bool =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(pool)
            .await?;
    if !table_exists {
        return Ok(Vec::new());
    }
    Ok(
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await?,
    )
}
