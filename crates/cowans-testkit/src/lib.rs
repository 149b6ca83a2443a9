//! Dev-only helpers for tests: a fresh, migrated Postgres database per test that is dropped when
//! the test ends, waiting on a condition with a deadline instead of sleeping, and an SMTP sink
//! ([`smtp::SmtpSink`]) that keeps what real clients deliver, and a TCP relay the test can take
//! down ([`tcp_proxy::TcpProxy`]) to put a real server out of reach, and a throw-away 3-primary
//! Redis Cluster of real processes ([`redis_cluster::RedisCluster`]), and a single Redis server a test
//! can crash and restart ([`redis_server::RedisServer`]).
//!
//! The server comes from `COWANS_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). A test never touches a database it did not
//! create: it creates `cowans_test_<uuid>` and drops only that one.

pub mod redis_cluster;
pub mod redis_server;
pub mod smtp;
pub mod tcp_proxy;

use std::{future::Future, time::Duration};

use sqlx::{ConnectOptions, Connection, PgConnection, PgPool, postgres::PgConnectOptions};

/// The admin URL tests connect to in order to create their own databases.
pub fn server_url() -> String {
    std::env::var("COWANS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database made for one test, migrated, dropped on `Drop`.
pub struct TestDb {
    pub name: String,
    pub pool: PgPool,
    options: PgConnectOptions,
    admin: PgConnectOptions,
}

impl TestDb {
    /// Creates a fresh database with the engine's tables. Panics with the reason (and what to do)
    /// if the Postgres server is not reachable: a test that needs a missing service must fail
    /// loudly.
    pub async fn new() -> TestDb {
        Self::with_apps(&[]).await
    }

    /// Like [`TestDb::new`], with the tables of these applications too (their migrators, e.g.
    /// `&cowans_store::demo::MIGRATOR`).
    pub async fn with_apps(apps: &[&'static sqlx::migrate::Migrator]) -> TestDb {
        let url = server_url();
        let admin = cowans_store::connect_options(&url)
            .unwrap_or_else(|e| panic!("COWANS_TEST_DATABASE_URL is not a valid URL: {e}"))
            .disable_statement_logging();
        let name = format!("cowans_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect_with(&admin).await.unwrap_or_else(|e| {
            panic!("cannot reach Postgres for tests ({e}); start it (./ops/dev-services.sh) or set COWANS_TEST_DATABASE_URL")
        });
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        conn.close().await.ok();
        let options = admin.clone().database(&name);
        let pool = cowans_store::pool_options()
            .max_connections(20)
            .connect_with(options.clone())
            .await
            .expect("connect to test database");
        cowans_store::migrate(&pool, apps, &[])
            .await
            .expect("migrate test database");
        TestDb {
            name,
            pool,
            options,
            admin,
        }
    }

    /// A URL for child processes (the worker binary) to reach this database.
    pub fn url(&self) -> String {
        let mut url = url::Url::parse(&server_url()).expect("server URL was parsed before");
        url.set_path(&self.name);
        url.to_string()
    }

    /// Connection options for this database.
    pub fn options(&self) -> PgConnectOptions {
        self.options.clone()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let admin = self.admin.clone();
        // Drop runs outside any async context guarantee; use a private runtime on a thread.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for test cleanup");
            // No pool.close() here: it would wait for connections held by tasks of the test's
            // own runtime, which is blocked in this drop. WITH (FORCE) ends them instead.
            rt.block_on(async move {
                let mut conn = PgConnection::connect_with(&admin).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await?;
                Ok::<_, sqlx::Error>(())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `deadline`.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
