//! Imports of staged changes from files, and their per-row report.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use crate::Result;

/// An import and its counts.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ImportRow {
    pub id: i64,
    pub shop_id: i64,
    pub author: String,
    pub format: String,
    pub dry_run: bool,
    pub rows: i64,
    pub staged: i64,
    pub unchanged: i64,
    pub errors: i64,
    pub created_at: DateTime<Utc>,
}

/// One row's result.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
pub struct ImportResult {
    pub row: i32,
    pub product_id: Option<i64>,
    pub variant_id: Option<i64>,
    /// `staged`, `unchanged` or `error`.
    pub status: String,
    pub error: Option<String>,
    pub change_id: Option<i64>,
}

/// Records an import with its counts; returns its id.
pub async fn insert_import(
    conn: &mut PgConnection,
    shop_id: i64,
    author: &str,
    format: &str,
    dry_run: bool,
    counts: [i64; 4],
) -> Result<i64> {
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO cowans_imports (shop_id, author, format, dry_run, rows, staged, unchanged, errors) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(shop_id)
    .bind(author)
    .bind(format)
    .bind(dry_run)
    .bind(counts[0])
    .bind(counts[1])
    .bind(counts[2])
    .bind(counts[3])
    .fetch_one(conn)
    .await?;
    Ok(id)
}

/// Stores an import's row results.
pub async fn insert_import_rows(
    conn: &mut PgConnection,
    import_id: i64,
    rows: &[ImportResult],
) -> Result<()> {
    for chunk in rows.chunks(10_000) {
        sqlx::query(
            "INSERT INTO cowans_import_rows (import_id, row, product_id, variant_id, status, error, change_id) \
             SELECT $1, * FROM unnest($2::integer[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::bigint[])",
        )
        .bind(import_id)
        .bind(chunk.iter().map(|r| r.row).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.product_id).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.variant_id).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.status.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.error.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.change_id).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub async fn get_import(pool: &PgPool, id: i64) -> Result<Option<ImportRow>> {
    Ok(sqlx::query_as(
        "SELECT id, shop_id, author, format, dry_run, rows, staged, unchanged, errors, created_at \
         FROM cowans_imports WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// A page of an import's row results after row `after` (only errors when `errors_only`).
pub async fn import_results(
    pool: &PgPool,
    import_id: i64,
    errors_only: bool,
    after: i32,
    limit: i64,
) -> Result<Vec<ImportResult>> {
    Ok(sqlx::query_as(
        "SELECT row, product_id, variant_id, status, error, change_id FROM cowans_import_rows \
         WHERE import_id = $1 AND row > $2 AND (NOT $3 OR status = 'error') ORDER BY row LIMIT $4",
    )
    .bind(import_id)
    .bind(after)
    .bind(errors_only)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
