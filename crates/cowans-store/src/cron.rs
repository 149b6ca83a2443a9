//! Periodic jobs: their definitions, and the compare-and-set that enqueues a tick's jobs exactly
//! once however many schedulers race for it.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;

use crate::{NewJob, Result};

/// A periodic job as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CronRow {
    pub name: String,
    pub schedule: String,
    pub timezone: String,
    pub queue: String,
    pub kind: String,
    pub args: Value,
    /// Missed ticks run on top of the latest one after a gap (0 = skip missed ticks).
    pub catch_up: i32,
    /// The last tick enqueued (or when the entry was created).
    pub last_tick: Option<DateTime<Utc>>,
}

/// Creates or updates a periodic job. A new entry starts counting ticks from now; an existing
/// one keeps its last tick.
pub async fn upsert_cron(conn: impl sqlx::PgExecutor<'_>, row: &CronRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO cowans_cron (name, schedule, timezone, queue, kind, args, catch_up, last_tick) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, now()) \
         ON CONFLICT (name) DO UPDATE SET schedule = $2, timezone = $3, queue = $4, kind = $5, args = $6, \
         catch_up = $7, updated_at = now()",
    )
    .bind(&row.name)
    .bind(&row.schedule)
    .bind(&row.timezone)
    .bind(&row.queue)
    .bind(&row.kind)
    .bind(&row.args)
    .bind(row.catch_up)
    .execute(conn)
    .await?;
    Ok(())
}

/// One periodic job by name.
pub async fn get_cron(conn: impl sqlx::PgExecutor<'_>, name: &str) -> Result<Option<CronRow>> {
    Ok(sqlx::query_as(
        "SELECT name, schedule, timezone, queue, kind, args, catch_up, last_tick FROM cowans_cron WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(conn)
    .await?)
}

pub async fn list_cron(pool: &PgPool) -> Result<Vec<CronRow>> {
    Ok(sqlx::query_as(
        "SELECT name, schedule, timezone, queue, kind, args, catch_up, last_tick FROM cowans_cron ORDER BY name",
    )
    .fetch_all(pool)
    .await?)
}

pub async fn delete_cron(conn: impl sqlx::PgExecutor<'_>, name: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM cowans_cron WHERE name = $1")
        .bind(name)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Moves `name`'s last tick from `seen` to `to` and enqueues `jobs`, in one transaction, only if
/// nobody moved it first. Returns whether this call won.
pub async fn advance_cron(
    pool: &PgPool,
    name: &str,
    seen: Option<DateTime<Utc>>,
    to: DateTime<Utc>,
    jobs: &[NewJob],
) -> Result<bool> {
    let mut tx = pool.begin().await?;
    let won = sqlx::query(
        "UPDATE cowans_cron SET last_tick = $3 WHERE name = $1 AND last_tick IS NOT DISTINCT FROM $2",
    )
    .bind(name)
    .bind(seen)
    .bind(to)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !won {
        return Ok(false);
    }
    crate::enqueue_many(&mut *tx, jobs).await?;
    tx.commit().await?;
    Ok(true)
}
