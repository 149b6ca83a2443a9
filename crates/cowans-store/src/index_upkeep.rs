//! Rebuilding the job table's hot partial indexes once they have bloated.
//!
//! The claim, lease and scheduled indexes hold only the jobs in one state, so every job passes
//! through them and leaves behind an entry that only VACUUM can remove. While a long transaction
//! holds an old snapshot, VACUUM can remove none of them, and the index keeps growing (e.g. 30 →
//! 227 MB in three minutes of a busy drain); B-tree pages emptied later are reused but never
//! returned, so the index stays that large and every walk from its head crosses the emptied
//! pages. `REINDEX INDEX CONCURRENTLY` builds a compact copy without blocking inserts, claims or
//! acks, and swaps it in; it waits for the old snapshots to end first, which is why it runs on a
//! connection of its own.

use sqlx::{Connection, PgConnection, postgres::PgConnectOptions};

use crate::Result;

/// The indexes kept compact, with the summary column counting the jobs each holds.
pub const UPKEPT_INDEXES: [&str; 3] = [
    "cowans_jobs_claim",
    "cowans_jobs_leases",
    "cowans_jobs_scheduled",
];

/// Space per indexed job of a freshly built index, generously (an entry of the claim index is
/// about 48 bytes with its line pointer; fresh leaf pages are 90 % full).
const BYTES_PER_ENTRY: i64 = 64;

/// One upkept index: its size on disk and how many jobs it indexes (from the queue summary).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct IndexSize {
    pub name: String,
    pub bytes: i64,
    pub entries: i64,
}

impl IndexSize {
    /// Worth rebuilding: at least `min_bytes`, and at least eight times what a fresh build of
    /// its entries would take.
    pub fn bloated(&self, min_bytes: i64) -> bool {
        self.bytes >= min_bytes && self.bytes >= 8 * self.entries.max(0) * BYTES_PER_ENTRY
    }
}

const SIZES: &str = r#"
SELECT i.name, coalesce(pg_relation_size(to_regclass(i.name)), 0) AS bytes, i.entries
FROM (
    SELECT 'cowans_jobs_claim' AS name, coalesce(sum(available), 0)::bigint AS entries
    FROM cowans_queue_stats
    UNION ALL
    SELECT 'cowans_jobs_leases', coalesce(sum(running), 0)::bigint FROM cowans_queue_stats
    UNION ALL
    SELECT 'cowans_jobs_scheduled', coalesce(sum(scheduled), 0)::bigint FROM cowans_queue_stats
) i
"#;

/// The upkept indexes' sizes and entry counts (as of the last queue summary refresh).
pub async fn index_sizes(pool: &sqlx::PgPool) -> Result<Vec<IndexSize>> {
    Ok(sqlx::query_as(SIZES).fetch_all(pool).await?)
}

// Fleet-wide: one rebuild at a time, held by the rebuilding session (it ends with it).
const LOCK: &str = "SELECT pg_try_advisory_lock(hashtext('cowans_index_upkeep'))";

// What an interrupted rebuild leaves behind: an invalid copy (`_ccnew`) or the invalid old
// index (`_ccold`) of an upkept index.
const LEFTOVERS: &str = r#"
SELECT quote_ident(c.relname) FROM pg_index x
JOIN pg_class c ON c.oid = x.indexrelid
WHERE x.indrelid = 'cowans_jobs'::regclass AND NOT x.indisvalid
  AND c.relname::text LIKE ANY (SELECT n || '\_cc%' FROM unnest($1::text[]) AS n)
"#;

// Transactions of this database other than ours whose snapshot is older than $1 ms: while one
// is open, a rebuilt copy bloats exactly as fast as the index it replaces.
const OLD_SNAPSHOTS: &str = r#"
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_xmin IS NOT NULL
  AND xact_start < now() - $1 * interval '1 millisecond'
"#;

/// How a rebuild ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Rebuild {
    /// Rebuilt: its size before and after.
    Done { before: i64, after: i64 },
    /// Another session is rebuilding an index right now.
    Busy,
    /// Not started: a transaction holds a snapshot older than the given age.
    SnapshotHeld,
}

/// Rebuilds `index` (one of [`UPKEPT_INDEXES`]) with `REINDEX INDEX CONCURRENTLY` on a new
/// connection made with `options`, after dropping what an interrupted rebuild left behind.
/// Does not start while another transaction holds a snapshot older than `snapshots_older_than`
/// (the copy would bloat as fast as the original); waits for transactions that began before the
/// rebuild to end. If this future is dropped, the connection closes and the server cancels the
/// rebuild within a second (the next rebuild clears the leftovers).
pub async fn rebuild_index(
    options: &PgConnectOptions,
    index: &str,
    snapshots_older_than: std::time::Duration,
) -> Result<Rebuild> {
    let Some(index) = UPKEPT_INDEXES.iter().find(|n| **n == index) else {
        return Err(crate::StoreError::invalid(
            "index",
            format!("{index} is not one of the upkept indexes"),
        ));
    };
    let mut conn = PgConnection::connect_with(options).await?;
    sqlx::raw_sql(
        "SET statement_timeout = 0; SET lock_timeout = 0; \
         SET client_connection_check_interval = '1s'; \
         SET application_name = 'cowans index upkeep'",
    )
    .execute(&mut conn)
    .await?;
    let locked: bool = sqlx::query_scalar(LOCK).fetch_one(&mut conn).await?;
    if !locked {
        conn.close().await?;
        return Ok(Rebuild::Busy);
    }
    let held: i64 = sqlx::query_scalar(OLD_SNAPSHOTS)
        .bind(i64::try_from(snapshots_older_than.as_millis()).unwrap_or(i64::MAX))
        .fetch_one(&mut conn)
        .await?;
    if held > 0 {
        conn.close().await?;
        return Ok(Rebuild::SnapshotHeld);
    }
    let leftovers: Vec<String> = sqlx::query_scalar(LEFTOVERS)
        .bind(&UPKEPT_INDEXES[..])
        .fetch_all(&mut conn)
        .await?;
    for name in leftovers {
        // Quoted by the server, and only ever a leftover of one of our own indexes.
        let drop = format!("DROP INDEX CONCURRENTLY IF EXISTS {name}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
            .execute(&mut conn)
            .await?;
    }
    let before = index_bytes(&mut conn, index).await?;
    // `index` is one of our constant names.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "REINDEX INDEX CONCURRENTLY {index}"
    )))
    .execute(&mut conn)
    .await?;
    let after = index_bytes(&mut conn, index).await?;
    conn.close().await?;
    Ok(Rebuild::Done { before, after })
}

async fn index_bytes(conn: &mut PgConnection, index: &str) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT coalesce(pg_relation_size(to_regclass($1)), 0)")
            .bind(index)
            .fetch_one(conn)
            .await?,
    )
}
