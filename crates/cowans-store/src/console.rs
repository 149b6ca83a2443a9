//! The web console's sessions (`cowans_console_sessions`): opened at login, looked up per page,
//! closed at logout; expired ones are removed when new ones open.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::Result;

/// A live session.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ConsoleSession {
    pub actor: String,
    pub role: String,
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

/// Opens a session for `actor` until `expires_at`, removing expired ones.
#[allow(clippy::too_many_arguments)]
pub async fn open_console_session(
    conn: &mut sqlx::PgConnection,
    token_hash: &[u8],
    actor: &str,
    role: &str,
    api_key_id: Option<i64>,
    csrf: &str,
    client_addr: Option<&str>,
    expires_at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "WITH gone AS (DELETE FROM cowans_console_sessions WHERE expires_at < now()) \
         INSERT INTO cowans_console_sessions \
           (token_hash, actor, role, api_key_id, csrf, client_addr, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(token_hash)
    .bind(actor)
    .bind(role)
    .bind(api_key_id)
    .bind(csrf)
    .bind(client_addr)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The live session with this token hash: not expired, and its API key (if it was opened with
/// one) not revoked.
pub async fn find_console_session(
    pool: &PgPool,
    token_hash: &[u8],
) -> Result<Option<ConsoleSession>> {
    Ok(sqlx::query_as(
        "SELECT s.actor, s.role, s.csrf, s.expires_at FROM cowans_console_sessions s \
         LEFT JOIN cowans_api_keys k ON k.id = s.api_key_id \
         WHERE s.token_hash = $1 AND s.expires_at > now() \
           AND (s.api_key_id IS NULL OR k.revoked_at IS NULL)",
    )
    .bind(token_hash)
    .fetch_optional(pool)
    .await?)
}

/// Closes the session; false if there was none.
pub async fn close_console_session(
    conn: &mut sqlx::PgConnection,
    token_hash: &[u8],
) -> Result<bool> {
    let done = sqlx::query("DELETE FROM cowans_console_sessions WHERE token_hash = $1")
        .bind(token_hash)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}
