//! Leader election: one row per role, held by a worker process until its lease runs out.
//!
//! A row with a term works through connection poolers (unlike session advisory locks) and
//! survives a leader's crash: another process takes over once `expires_at` passes.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use crate::{LeaderTerm, Result};

const LEAD: &str = r#"
INSERT INTO cowans_leaders AS l (role, holder, term, expires_at)
VALUES ($1, $2, 1, now() + $3 * interval '1 millisecond')
ON CONFLICT (role) DO UPDATE
SET holder = excluded.holder,
    term = CASE WHEN l.holder = excluded.holder THEN l.term ELSE l.term + 1 END,
    expires_at = excluded.expires_at
WHERE l.holder = excluded.holder OR l.expires_at < now()
RETURNING term
"#;

/// Takes or renews the role for `ttl`. `Some(term)` if this process leads now.
pub async fn try_lead(
    pool: &PgPool,
    role: &str,
    holder: Uuid,
    ttl: Duration,
) -> Result<Option<LeaderTerm>> {
    let term: Option<i64> = sqlx::query_scalar(LEAD)
        .bind(role)
        .bind(holder)
        .bind(ttl.as_millis() as f64)
        .fetch_optional(pool)
        .await?;
    Ok(term.map(LeaderTerm))
}

/// Gives the role up at once (graceful shutdown), so another process need not wait for the TTL.
/// The row stays (expired), so the next holder's term is still a new one.
pub async fn resign_leader(pool: &PgPool, role: &str, holder: Uuid) -> Result<()> {
    sqlx::query(
        "UPDATE cowans_leaders SET expires_at = '-infinity' WHERE role = $1 AND holder = $2",
    )
    .bind(role)
    .bind(holder)
    .execute(pool)
    .await?;
    Ok(())
}
