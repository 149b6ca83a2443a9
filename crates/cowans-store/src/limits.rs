//! The Postgres limiter's statements: concurrency permits (a row per slot, taken with SKIP
//! LOCKED so concurrent claimers never wait on each other) and rate buckets (GCRA, one row per
//! scope and key, in `cowans_rate_take`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use cowans_core::{QueueName, WAKEUP_CHANNEL, Wakeup};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{Granted, LeaseRef, Result};

/// A held concurrency permit; `token` fences its release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PermitRow {
    pub slot: i32,
    pub token: i64,
}

const ACQUIRE: &str = r#"
WITH free AS (
    SELECT slot FROM cowans_permits
    WHERE scope = $1 AND slot < $2 AND (holder IS NULL OR expires_at < now())
    ORDER BY slot
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE cowans_permits p
SET holder = $4, token = cowans_fence(), expires_at = now() + $5 * interval '1 millisecond'
FROM free WHERE p.scope = $1 AND p.slot = free.slot
RETURNING p.slot, p.token
"#;

/// Makes sure `scope` has slot rows `0..limit` (call when a limit is set or seen to change).
pub async fn ensure_permit_slots(pool: &PgPool, scope: &str, limit: u32) -> Result<()> {
    sqlx::query(
        "INSERT INTO cowans_permits (scope, slot) SELECT $1, s FROM generate_series(0, $2 - 1) AS s \
         ON CONFLICT DO NOTHING",
    )
    .bind(scope)
    .bind(limit as i32)
    .execute(pool)
    .await?;
    Ok(())
}

/// Takes up to `want` of the `limit` permits of `scope` for `holder`, each valid for `ttl`
/// unless extended. Expired permits (their holder crashed) count as free.
pub async fn acquire_permits(
    pool: &PgPool,
    scope: &str,
    limit: u32,
    want: u32,
    holder: Uuid,
    ttl: Duration,
) -> Result<Vec<PermitRow>> {
    if want == 0 || limit == 0 {
        return Ok(Vec::new());
    }
    let rows: Vec<(i32, i64)> = sqlx::query_as(ACQUIRE)
        .bind(scope)
        .bind(limit as i32)
        .bind(want as i64)
        .bind(holder)
        .bind(ttl.as_millis() as f64)
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(slot, token)| PermitRow { slot, token })
        .collect())
}

/// Gives permits back (fenced by their token: a permit taken over after expiry stays taken) and
/// tells every process waiting on the scope (`Wakeup::PermitsFreed`), so they race for them on
/// equal terms. One statement: the wake-up is encoded up front and sent only if a permit was freed.
pub async fn release_permits(pool: &PgPool, scope: &str, permits: &[PermitRow]) -> Result<()> {
    if permits.is_empty() {
        return Ok(());
    }
    let (slots, tokens): (Vec<i32>, Vec<i64>) = permits.iter().map(|p| (p.slot, p.token)).unzip();
    // Scopes are queue names; a scope that is not one has no producer to wake.
    let wake = QueueName::new(scope)
        .ok()
        .map(|queue| Wakeup::PermitsFreed { queue }.encode());
    sqlx::query(
        "WITH freed AS (UPDATE cowans_permits p SET holder = NULL, token = NULL, expires_at = NULL \
         FROM unnest($2::integer[], $3::bigint[]) AS r(slot, token) \
         WHERE p.scope = $1 AND p.slot = r.slot AND p.token = r.token RETURNING p.slot) \
         SELECT pg_notify($4, $5) WHERE $5 IS NOT NULL AND EXISTS (SELECT 1 FROM freed)",
    )
    .bind(scope)
    .bind(slots)
    .bind(tokens)
    .bind(WAKEUP_CHANNEL)
    .bind(wake)
    .execute(pool)
    .await?;
    Ok(())
}

/// Extends every permit `holder` has (its heartbeat).
pub async fn extend_permits(pool: &PgPool, holder: Uuid, ttl: Duration) -> Result<()> {
    sqlx::query(
        "UPDATE cowans_permits SET expires_at = now() + $2 * interval '1 millisecond' WHERE holder = $1",
    )
    .bind(holder)
    .bind(ttl.as_millis() as f64)
    .execute(pool)
    .await?;
    Ok(())
}

/// Gives back every permit `holder` has (its shutdown).
pub async fn release_holder_permits(pool: &PgPool, holder: Uuid) -> Result<()> {
    sqlx::query(
        "UPDATE cowans_permits SET holder = NULL, token = NULL, expires_at = NULL WHERE holder = $1",
    )
    .bind(holder)
    .execute(pool)
    .await?;
    Ok(())
}

/// Takes up to `wants[i]` tokens for `keys[i]` from buckets of `limit` per `period`.
pub async fn rate_take(
    pool: &PgPool,
    scope: &str,
    limit: u32,
    period: Duration,
    keys: &[String],
    wants: &[u32],
) -> Result<Vec<Granted>> {
    let wants: Vec<i32> = wants.iter().map(|w| *w as i32).collect();
    let rows: Vec<(String, i32, DateTime<Utc>)> =
        sqlx::query_as("SELECT key, granted, next_at FROM cowans_rate_take($1, $2, $3, $4, $5)")
            .bind(scope)
            .bind(keys)
            .bind(wants)
            .bind(limit as i32)
            .bind(period.as_secs_f64() * 1000.0)
            .fetch_all(pool)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(key, granted, next_at)| Granted {
            key,
            granted: granted.max(0) as u32,
            next_at,
        })
        .collect())
}

/// Returns `n` unused tokens of `key` to its bucket.
pub async fn rate_refund(
    pool: &PgPool,
    scope: &str,
    limit: u32,
    period: Duration,
    key: &str,
    n: u32,
) -> Result<()> {
    let step_ms = period.as_secs_f64() * 1000.0 / f64::from(limit.max(1));
    sqlx::query(
        "UPDATE cowans_rate_buckets SET tat = tat - $3 * interval '1 millisecond' \
         WHERE scope = $1 AND key = $2",
    )
    .bind(scope)
    .bind(key)
    .bind(step_ms * f64::from(n))
    .execute(pool)
    .await?;
    Ok(())
}

/// Puts claimed jobs back to wait until `at` (a rate limit said "not yet"); the attempt is not
/// counted. Returns the ids still held.
pub async fn defer(pool: &PgPool, jobs: &[(LeaseRef, DateTime<Utc>)]) -> Result<Vec<i64>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids = Vec::with_capacity(jobs.len());
    let mut leases = Vec::with_capacity(jobs.len());
    let mut ats = Vec::with_capacity(jobs.len());
    for (r, at) in jobs {
        ids.push(r.id.0);
        leases.push(r.lease);
        ats.push(*at);
    }
    let done: Vec<i64> = sqlx::query_scalar(concat!(
        "UPDATE cowans_jobs j SET state = 'scheduled', run_at = d.at, attempt = greatest(j.attempt - 1, 0), \
         lease_expires_at = NULL \
         FROM unnest($1::bigint[], $2::bigint[], $3::timestamptz[]) AS d(id, lease, at) WHERE ",
        still_held!("d"),
        " RETURNING j.id"
    ))
    .bind(ids)
    .bind(leases)
    .bind(ats)
    .fetch_all(pool)
    .await?;
    Ok(done)
}
