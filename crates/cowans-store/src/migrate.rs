//! Connecting and migrating.

use std::{net::IpAddr, str::FromStr, time::Duration};

use sqlx::{
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions, PgSslMode},
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

/// Parses a Postgres URL. Without an `sslmode` (in the URL or in `PGSSLMODE`), a server on
/// this machine (a loopback address or a Unix socket) is spoken to in plain text: `prefer`, the
/// default elsewhere, negotiates TLS with it, which protects nothing on loopback and cost ~11 %
/// of the engine's drain throughput. A remote server keeps `prefer`; `sslmode=require` or
/// `verify-full` in the URL is honoured everywhere.
pub fn connect_options(url: &str) -> std::result::Result<PgConnectOptions, sqlx::Error> {
    options_of(url, std::env::var_os("PGSSLMODE").is_some())
}

fn options_of(url: &str, env_sslmode: bool) -> std::result::Result<PgConnectOptions, sqlx::Error> {
    let options = PgConnectOptions::from_str(url)?;
    let named = env_sslmode
        || url.split_once('?').is_some_and(|(_, query)| {
            query
                .split('&')
                .any(|p| p.starts_with("sslmode=") || p.starts_with("ssl-mode="))
        });
    Ok(if !named && is_local(options.get_host()) {
        options.ssl_mode(PgSslMode::Disable)
    } else {
        options
    })
}

fn is_local(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || IpAddr::from_str(host).is_ok_and(|ip| ip.is_loopback())
}

/// Opens a pool. `max_connections` should cover the worker's concurrency for handlers that use
/// the pool plus a handful for the producer, completer and maintenance. JIT is off: its
/// compilation (100 ms and more) costs the short statements of a queue and a catalog far more
/// than it could save.
pub async fn connect(options: PgConnectOptions, max_connections: u32) -> Result<sqlx::PgPool> {
    let options = options.options([("jit", "off")]);
    let pool = pool_options()
        .max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// The options every pool of ours starts from. sqlx's default checks each connection with a
/// round trip to the server before handing it out (`test_before_acquire`), which on a queue's
/// hot path (a claim, an ack, an enqueue: each one statement on a just-returned connection)
/// doubles the round trips of the call. Here only a connection that sat idle for
/// [`IDLE_BEFORE_CHECK`] or more is checked: that is where a server restart or a dropped
/// socket hides. A connection that broke in between fails its statement, as it could have
/// right after a check.
pub fn pool_options() -> PgPoolOptions {
    PgPoolOptions::new()
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= IDLE_BEFORE_CHECK {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

/// How long a pooled connection may sit idle before it is checked on its way out of the pool.
pub const IDLE_BEFORE_CHECK: Duration = Duration::from_secs(1);

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_server_is_spoken_to_in_plain_text_unless_the_url_says_otherwise() {
        let mode = |url: &str| options_of(url, false).unwrap().get_ssl_mode();
        assert!(matches!(
            mode("postgres://u@127.0.0.1/db"),
            PgSslMode::Disable
        ));
        assert!(matches!(
            mode("postgres://u@localhost:5432/db"),
            PgSslMode::Disable
        ));
        assert!(matches!(mode("postgres://u@[::1]/db"), PgSslMode::Disable));
        assert!(matches!(
            mode("postgres://u@127.0.0.1/db?sslmode=require"),
            PgSslMode::Require
        ));
        assert!(matches!(
            mode("postgres://u@db.example.com/db"),
            PgSslMode::Prefer
        ));
        assert!(matches!(
            mode("postgres://u@10.0.0.5/db"),
            PgSslMode::Prefer
        ));
        // PGSSLMODE set: sqlx already read it; we leave it alone.
        let by_env = options_of("postgres://u@127.0.0.1/db", true).unwrap();
        assert!(
            !matches!(by_env.get_ssl_mode(), PgSslMode::Disable)
                || std::env::var("PGSSLMODE").as_deref() == Ok("disable")
        );
    }
}
