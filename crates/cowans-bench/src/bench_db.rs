//! A throw-away database per benchmark run, on the server `DATABASE_URL` names.

use anyhow::Context;
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool, postgres::PgConnectOptions};

pub struct BenchDb {
    admin: PgConnectOptions,
    server_url: String,
    pub name: String,
    pub options: PgConnectOptions,
}

impl BenchDb {
    pub async fn create() -> anyhow::Result<BenchDb> {
        let url = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        Self::create_on(url).await
    }

    /// A database on the server `url` names (its path is the database to connect to first).
    pub async fn create_on(url: String) -> anyhow::Result<BenchDb> {
        let admin = cowans_store::connect_options(&url)
            .context("DATABASE_URL is not a Postgres URL")?
            .disable_statement_logging();
        let name = format!("cowans_bench_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect_with(&admin)
            .await
            .context("cannot reach the Postgres server named by DATABASE_URL")?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await?;
        let options = admin.clone().database(&name);
        Ok(BenchDb {
            admin,
            server_url: url,
            name,
            options,
        })
    }

    /// This database's URL (for processes the benchmark starts).
    pub fn url(&self) -> anyhow::Result<String> {
        let mut url = url::Url::parse(&self.server_url).context("DATABASE_URL is not a URL")?;
        url.set_path(&self.name);
        Ok(url.to_string())
    }

    pub async fn pool(&self, size: u32) -> anyhow::Result<PgPool> {
        Ok(cowans_store::pool_options()
            .max_connections(size)
            .connect_with(self.options.clone())
            .await?)
    }

    pub async fn drop_database(self) {
        if let Ok(mut conn) = PgConnection::connect_with(&self.admin).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .execute(&mut conn)
            .await;
        }
    }
}
