//! Connecting to Postgres with errors that say where and what to do, password hidden.

use secrecy::{ExposeSecret, SecretString};
use sqlx::{Connection, PgConnection, PgPool, Postgres, migrate::MigrateDatabase};

use crate::{apps::Migrations, settings::DatabaseSettings};

/// The URL with its password replaced by `***`, safe to print.
pub fn redact(url: &SecretString) -> String {
    redact_str(url.expose_secret())
}

fn redact_str(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            // libpq also takes secrets as query parameters.
            let secret = |k: &str| matches!(k, "password" | "sslpassword");
            if u.query_pairs().any(|(k, _)| secret(&k)) {
                let pairs: Vec<(String, String)> = u
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if secret(&k) {
                            "***".to_owned()
                        } else {
                            v.into_owned()
                        };
                        (k.into_owned(), v)
                    })
                    .collect();
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        Err(_) => "<unparseable database.url>".to_owned(),
    }
}

/// Creates the database named in the URL if the server does not have it yet (for `migrate`).
pub async fn create_if_missing(settings: &DatabaseSettings) -> anyhow::Result<bool> {
    let shown = redact(&settings.url);
    let url = settings.url.expose_secret();
    let exists = Postgres::database_exists(url).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot connect to Postgres at {shown}: {}; start the server or fix database.url (COWANS__DATABASE__URL)",
            root_cause(&e)
        )
    })?;
    if !exists {
        Postgres::create_database(url).await.map_err(|e| {
            anyhow::anyhow!("cannot create the database of {shown}: {}", root_cause(&e))
        })?;
    }
    Ok(!exists)
}

/// Opens the pool and, if configured, migrates the engine's tables and those of the enabled
/// applications (see [`crate::apps::migrations`]).
pub async fn connect(settings: &DatabaseSettings, apps: &Migrations) -> anyhow::Result<PgPool> {
    let shown = redact(&settings.url);
    let options = cowans_store::connect_options(settings.url.expose_secret()).map_err(|e| {
        anyhow::anyhow!(
            "database.url {shown} is not a valid Postgres URL: {}",
            root_cause(&e)
        )
    })?;
    // One plain connection first: a refused or unknown host fails at once instead of after the
    // pool's acquire timeout.
    let probe = PgConnection::connect_with(&options).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot connect to Postgres at {shown}: {}; start the server or fix database.url (COWANS__DATABASE__URL)",
            root_cause(&e)
        )
    })?;
    let _ = probe.close().await;
    let pool = cowans_store::connect(options, settings.max_connections)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot connect to Postgres at {shown}: {}; start the server or fix database.url (COWANS__DATABASE__URL)",
                root_cause(&e)
            )
        })?;
    if settings.auto_migrate {
        cowans_store::migrate(&pool, &apps.run, &apps.known)
            .await
            .map_err(|e| anyhow::anyhow!("migrating {shown} failed: {}", root_cause(&e)))?;
    }
    Ok(pool)
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg = format!("{msg}: {text}");
        }
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        let shown = redact(&"postgres://app:s3cret@db.example:5432/cowans".into());
        assert!(!shown.contains("s3cret"));
        assert!(shown.contains("app:***@db.example"));
        assert_eq!(
            redact(&"postgres://postgres@localhost/x".into()),
            "postgres://postgres@localhost/x"
        );
        let shown = redact(&"postgres://app@db/x?sslmode=require&password=s3cret".into());
        assert!(
            !shown.contains("s3cret") && shown.contains("sslmode=require"),
            "{shown}"
        );
    }
}
