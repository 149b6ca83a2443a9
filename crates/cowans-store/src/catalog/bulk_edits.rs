//! Bulk edits: operations over a selection of a shop's products, and their progress.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};

use crate::Result;

/// A bulk edit and how far it got.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct BulkEditRow {
    pub id: i64,
    pub shop_id: i64,
    pub author: String,
    pub spec: Value,
    /// `running`, `completed` or `cancelled`.
    pub state: String,
    pub batch_id: Option<i64>,
    pub products: i64,
    pub processed: i64,
    pub changes: i64,
    pub skipped: i64,
    /// The first errors: `[{"product_id", "error"}]`.
    pub errors: Value,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

macro_rules! bulk_edit_columns {
    () => {
        "id, shop_id, author, spec, state, batch_id, products, processed, changes, skipped, \
         errors, created_at, finished_at"
    };
}

/// Records a new running bulk edit over `products` products.
pub async fn insert_bulk_edit(
    conn: &mut PgConnection,
    shop_id: i64,
    author: &str,
    spec: &Value,
    products: i64,
) -> Result<i64> {
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO cowans_bulk_edits (shop_id, author, spec, products) VALUES ($1, $2, $3, $4) \
         RETURNING id",
    )
    .bind(shop_id)
    .bind(author)
    .bind(spec)
    .bind(products)
    .fetch_one(conn)
    .await?;
    Ok(id)
}

pub async fn set_bulk_edit_batch(conn: &mut PgConnection, id: i64, batch_id: i64) -> Result<()> {
    sqlx::query("UPDATE cowans_bulk_edits SET batch_id = $2 WHERE id = $1")
        .bind(id)
        .bind(batch_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Adds a chunk's counts (and errors, the first 100 kept) to a running bulk edit.
pub async fn record_bulk_chunk(
    conn: &mut PgConnection,
    id: i64,
    processed: i64,
    changes: i64,
    skipped: i64,
    errors: &Value,
) -> Result<()> {
    sqlx::query(
        "UPDATE cowans_bulk_edits SET processed = processed + $2, changes = changes + $3, \
           skipped = skipped + $4, \
           errors = CASE WHEN jsonb_array_length(errors) >= 100 THEN errors \
             ELSE (SELECT coalesce(jsonb_agg(e), '[]') FROM (SELECT e FROM \
               jsonb_array_elements(errors || $5) e LIMIT 100) x) END \
         WHERE id = $1",
    )
    .bind(id)
    .bind(processed)
    .bind(changes)
    .bind(skipped)
    .bind(errors)
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends a running bulk edit in `state`; it as it ended, or `None` when it had ended before.
pub async fn finish_bulk_edit(
    conn: &mut PgConnection,
    id: i64,
    state: &str,
) -> Result<Option<BulkEditRow>> {
    Ok(sqlx::query_as(concat!(
        "UPDATE cowans_bulk_edits SET state = $2, finished_at = now() \
         WHERE id = $1 AND state = 'running' RETURNING ",
        bulk_edit_columns!()
    ))
    .bind(id)
    .bind(state)
    .fetch_optional(conn)
    .await?)
}

pub async fn get_bulk_edit(pool: &PgPool, id: i64) -> Result<Option<BulkEditRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        bulk_edit_columns!(),
        " FROM cowans_bulk_edits WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// The shop's latest bulk edits, newest first.
pub async fn list_bulk_edits(pool: &PgPool, shop_id: i64, limit: i64) -> Result<Vec<BulkEditRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        bulk_edit_columns!(),
        " FROM cowans_bulk_edits WHERE shop_id = $1 ORDER BY id DESC LIMIT $2"
    ))
    .bind(shop_id)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
