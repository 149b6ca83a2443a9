//! The registry of live worker processes.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use crate::{Result, WorkerInfo};

pub async fn register_worker(pool: &PgPool, info: &WorkerInfo) -> Result<()> {
    upsert_worker(pool, info).await
}

pub(crate) async fn upsert_worker<'e>(
    conn: impl sqlx::PgExecutor<'e>,
    info: &WorkerInfo,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO cowans_workers (id, hostname, pid, queues, concurrency) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (id) DO UPDATE SET last_seen = now()",
    )
    .bind(info.id)
    .bind(&info.hostname)
    .bind(info.pid as i32)
    .bind(&info.queues)
    .bind(info.concurrency as i32)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn deregister_worker(pool: &PgPool, id: Uuid) -> Result<()> {
    sqlx::query("DELETE FROM cowans_workers WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Removes processes not seen for `older_than` (they crashed); returns how many.
pub async fn forget_stale_workers(pool: &PgPool, older_than: Duration) -> Result<u64> {
    let done = sqlx::query(
        "DELETE FROM cowans_workers WHERE last_seen < now() - $1 * interval '1 millisecond'",
    )
    .bind(older_than.as_millis() as f64)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
