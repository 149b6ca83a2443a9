//! What the HTTP API keeps: API keys (hashed) and the audit log.

use chrono::{DateTime, Utc};
use cowans_core::Actor;
use serde_json::Value;
use sqlx::PgPool;

use crate::{Result, StoreError};

/// A stored API key (never the key itself).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub async fn create_api_key(
    conn: &mut sqlx::PgConnection,
    name: &str,
    role: &str,
    key_hash: &[u8],
    prefix: &str,
) -> Result<ApiKeyRow> {
    if name.trim().is_empty() || name.chars().count() > 200 {
        return Err(StoreError::invalid("name", "must be 1 to 200 characters"));
    }
    if !matches!(role, "viewer" | "operator" | "admin") {
        return Err(StoreError::invalid(
            "role",
            format!("is {role:?}; it must be viewer, operator or admin"),
        ));
    }
    Ok(sqlx::query_as(
        "INSERT INTO cowans_api_keys (name, role, key_hash, prefix) VALUES ($1, $2, $3, $4) \
         RETURNING id, name, role, prefix, created_at, revoked_at",
    )
    .bind(name)
    .bind(role)
    .bind(key_hash)
    .bind(prefix)
    .fetch_one(conn)
    .await?)
}

/// The live key with this hash (revoked keys are not found). `last_used_at` is refreshed at most
/// once a minute, so authenticating stays a read on the hot path.
pub async fn find_api_key(pool: &PgPool, key_hash: &[u8]) -> Result<Option<ApiKeyRow>> {
    Ok(sqlx::query_as(
        "WITH k AS (SELECT id, name, role, prefix, created_at, revoked_at, last_used_at \
           FROM cowans_api_keys WHERE key_hash = $1 AND revoked_at IS NULL), \
         touched AS (UPDATE cowans_api_keys SET last_used_at = now() WHERE id IN \
           (SELECT id FROM k WHERE last_used_at IS NULL OR last_used_at < now() - interval '1 minute')) \
         SELECT id, name, role, prefix, created_at, revoked_at FROM k",
    )
    .bind(key_hash)
    .fetch_optional(pool)
    .await?)
}

pub async fn revoke_api_key(conn: &mut sqlx::PgConnection, id: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE cowans_api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// One audited call.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub target: Option<String>,
    pub client_addr: Option<String>,
    pub details: Value,
}

/// Writes one audit entry (inside the caller's transaction, if any).
pub async fn audit(conn: &mut sqlx::PgConnection, entry: &NewAudit) -> Result<()> {
    audit_many(conn, std::slice::from_ref(entry)).await
}

/// An audit entry to write.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAudit {
    pub actor: String,
    pub role: String,
    pub action: String,
    pub target: Option<String>,
    pub client_addr: Option<String>,
    pub details: Value,
}

impl NewAudit {
    /// `actor` did `action` to `target` (`job:42`, `queue:shopify`).
    pub fn by(actor: &Actor, action: &str, target: Option<String>, details: Value) -> Self {
        Self {
            actor: actor.name.clone(),
            role: actor.role.as_str().to_owned(),
            action: action.to_owned(),
            target,
            client_addr: actor.client_addr.clone(),
            details,
        }
    }
}

/// Writes many audit entries in one statement (inside the caller's transaction, if any).
pub async fn audit_many(conn: &mut sqlx::PgConnection, entries: &[NewAudit]) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let col =
        |f: fn(&NewAudit) -> Option<&str>| -> Vec<Option<&str>> { entries.iter().map(f).collect() };
    let details: Vec<&Value> = entries.iter().map(|e| &e.details).collect();
    sqlx::query(
        "INSERT INTO cowans_audit (actor, role, action, target, client_addr, details) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[])",
    )
    .bind(col(|e| Some(&e.actor)))
    .bind(col(|e| Some(&e.role)))
    .bind(col(|e| Some(&e.action)))
    .bind(col(|e| e.target.as_deref()))
    .bind(col(|e| e.client_addr.as_deref()))
    .bind(details)
    .execute(conn)
    .await?;
    Ok(())
}

/// Audit entries, newest first, before `before` (keyset pagination).
pub async fn list_audit(pool: &PgPool, before: Option<i64>, limit: i64) -> Result<Vec<AuditEntry>> {
    Ok(sqlx::query_as(
        "SELECT id, at, actor, role, action, target, client_addr, details FROM cowans_audit \
         WHERE ($1::bigint IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
    )
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
