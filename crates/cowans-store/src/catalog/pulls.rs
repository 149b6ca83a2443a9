//! Pulls: one row per full or incremental pull of a shop, with its progress.

use chrono::{DateTime, Utc};
use sqlx::{Acquire, PgConnection, PgPool};

use crate::{Result, StoreError};

/// A pull of a shop's catalog.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PullRow {
    pub id: i64,
    pub shop_id: i64,
    /// `full` or `incremental`.
    pub kind: String,
    /// `running`, `completed` or `failed`.
    pub state: String,
    pub job_id: Option<i64>,
    pub bulk_operation: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub lines: i64,
    pub products: i64,
    pub variants: i64,
    pub deleted: i64,
    pub error: Option<String>,
}

macro_rules! pull_columns {
    () => {
        "id, shop_id, kind, state, job_id, bulk_operation, started_at, finished_at, lines, \
         products, variants, deleted, error"
    };
}

/// Records a new running pull; [`StoreError::Conflict`] (details: the running pull's id) if one
/// of that kind is already running for the shop.
pub async fn start_pull(conn: &mut PgConnection, shop_id: i64, kind: &str) -> Result<PullRow> {
    let mut tx = conn.begin().await?;
    // A pull whose job ended without closing it (cancelled while queued, timed out, lost) would
    // otherwise block every later pull of its kind: it failed.
    sqlx::query(
        "UPDATE cowans_pulls p SET state = 'failed', finished_at = now(), \
           error = 'its job ended without finishing it' \
         WHERE p.shop_id = $1 AND p.kind = $2 AND p.state = 'running' AND p.job_id IS NOT NULL \
           AND NOT EXISTS (SELECT 1 FROM cowans_jobs j WHERE j.id = p.job_id \
                 AND j.state IN ('available', 'scheduled', 'running'))",
    )
    .bind(shop_id)
    .bind(kind)
    .execute(&mut *tx)
    .await?;
    let inserted: std::result::Result<PullRow, sqlx::Error> = sqlx::query_as(concat!(
        "INSERT INTO cowans_pulls (shop_id, kind) VALUES ($1, $2) RETURNING ",
        pull_columns!()
    ))
    .bind(shop_id)
    .bind(kind)
    .fetch_one(&mut *tx)
    .await;
    match inserted {
        Ok(row) => {
            tx.commit().await?;
            Ok(row)
        }
        Err(e) => match StoreError::from(e) {
            StoreError::Conflict { .. } => {
                drop(tx);
                let running: Option<i64> = sqlx::query_scalar(
                    "SELECT id FROM cowans_pulls WHERE shop_id = $1 AND kind = $2 AND state = 'running'",
                )
                .bind(shop_id)
                .bind(kind)
                .fetch_optional(&mut *conn)
                .await?;
                Err(StoreError::Conflict {
                    message: format!("a {kind} pull of this shop is already running"),
                    details: serde_json::json!({ "pull_id": running }),
                })
            }
            other => Err(other),
        },
    }
}

/// Links a pull to the job that runs it.
pub async fn set_pull_job(conn: &mut PgConnection, pull_id: i64, job_id: i64) -> Result<()> {
    sqlx::query("UPDATE cowans_pulls SET job_id = $2 WHERE id = $1")
        .bind(pull_id)
        .bind(job_id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn get_pull(pool: &PgPool, id: i64) -> Result<Option<PullRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        pull_columns!(),
        " FROM cowans_pulls WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// A pull, inside the caller's transaction.
pub async fn get_pull_in(conn: &mut PgConnection, id: i64) -> Result<Option<PullRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        pull_columns!(),
        " FROM cowans_pulls WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// A shop's pulls, newest first.
pub async fn list_pulls(pool: &PgPool, shop_id: i64, limit: i64) -> Result<Vec<PullRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        pull_columns!(),
        " FROM cowans_pulls WHERE shop_id = $1 ORDER BY id DESC LIMIT $2"
    ))
    .bind(shop_id)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn set_pull_bulk_operation(pool: &PgPool, pull_id: i64, operation: &str) -> Result<()> {
    sqlx::query("UPDATE cowans_pulls SET bulk_operation = $2 WHERE id = $1")
        .bind(pull_id)
        .bind(operation)
        .execute(pool)
        .await?;
    Ok(())
}

/// A running pull's counters so far.
pub async fn record_pull_progress(
    pool: &PgPool,
    pull_id: i64,
    lines: i64,
    products: i64,
    variants: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE cowans_pulls SET lines = $2, products = $3, variants = $4 WHERE id = $1 AND state = 'running'",
    )
    .bind(pull_id)
    .bind(lines)
    .bind(products)
    .bind(variants)
    .execute(pool)
    .await?;
    Ok(())
}

/// Ends a pull as `completed` or `failed`; returns false if it had already ended.
pub async fn finish_pull(
    conn: &mut PgConnection,
    pull_id: i64,
    failed: Option<&str>,
    deleted: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE cowans_pulls SET state = CASE WHEN $2::text IS NULL THEN 'completed' ELSE 'failed' END, \
           error = $2, deleted = $3, finished_at = now() WHERE id = $1 AND state = 'running'",
    )
    .bind(pull_id)
    .bind(failed)
    .bind(deleted)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Where incremental pulls of a shop resume.
pub async fn set_incremental_from(pool: &PgPool, shop_id: i64, from: DateTime<Utc>) -> Result<()> {
    sqlx::query(
        "UPDATE cowans_shops SET incremental_from = greatest(coalesce(incremental_from, $2), $2) WHERE id = $1",
    )
    .bind(shop_id)
    .bind(from)
    .execute(pool)
    .await?;
    Ok(())
}
