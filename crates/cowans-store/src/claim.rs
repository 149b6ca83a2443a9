//! Claiming runnable jobs and promoting scheduled ones whose time has come.

use std::time::Duration;

use chrono::{DateTime, Utc};
use cowans_core::QueueName;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{ClaimCursor, ClaimedJob, Promotion, Result};

/// A claimed row as the statement returns it.
#[derive(sqlx::FromRow)]
struct ClaimRow {
    id: i64,
    queue: String,
    kind: String,
    args: String,
    priority: i16,
    attempt: i32,
    max_attempts: i32,
    lease: i64,
    run_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    attempted_at: DateTime<Utc>,
    rate_key: Option<String>,
}

impl From<ClaimRow> for ClaimedJob {
    fn from(r: ClaimRow) -> Self {
        ClaimedJob {
            id: r.id,
            queue: r.queue,
            kind: r.kind,
            args: r.args,
            priority: r.priority,
            attempt: r.attempt,
            max_attempts: r.max_attempts,
            lease: r.lease,
            run_at: r.run_at,
            created_at: r.created_at,
            attempted_at: r.attempted_at,
            rate_key: r.rate_key,
        }
    }
}

macro_rules! claim_sql {
    ($filter:literal, $order:literal) => {
        concat!(
            "WITH picked AS (SELECT id FROM cowans_jobs WHERE state = 'available' AND queue = $1 ",
            $filter,
            // A paused queue gives nothing, whatever a worker's cached view says. This is a
            // one-time filter (an InitPlan), not a per-row check.
            " AND NOT EXISTS (SELECT 1 FROM cowans_queues WHERE name = $1 AND paused)",
            " ORDER BY ",
            $order,
            " LIMIT $2 FOR UPDATE SKIP LOCKED) ",
            "UPDATE cowans_jobs j SET state = 'running', attempt = j.attempt + 1, attempted_at = now(), ",
            "lease = (SELECT cowans_fence()), ",
            "lease_expires_at = now() + $3 * interval '1 millisecond', worker_id = $4 ",
            "FROM picked WHERE j.id = picked.id ",
            "RETURNING j.id, j.queue, j.kind, j.args::text AS args, j.priority, j.attempt, ",
            "j.max_attempts, j.lease, j.run_at, j.created_at, j.attempted_at, j.rate_key"
        )
    };
}

// The CTE picks at most $2 rows in claim-index order and locks them, skipping rows another
// claimer holds; the UPDATE then marks exactly those. One fencing token per statement
// (`cowans_fence()`: unique even across a crash of the server that loses claims).
const CLAIM: &str = claim_sql!("", "priority DESC, run_at, id");
// Same priority, strictly after the cursor: an index range scan that starts where the last
// claim ended.
const CLAIM_AFTER: &str = claim_sql!(
    "AND priority = $5 AND (run_at, id) > ($6, $7)",
    "run_at, id"
);

/// Claims up to `limit` runnable jobs of `queue`, highest priority first and oldest first within
/// a priority. The caller passes its free slots as `limit`, so it never holds more than it can run.
///
/// With `after`, only jobs of the cursor's priority that come after it are considered; the
/// caller falls back to a claim without cursor when that comes back short. Jobs that land behind
/// a cursor (a higher priority, a retry promoted with an older run_at) are therefore found by the
/// next claim without cursor: the producer drops its cursor on every notification that may mean
/// such a job, and on every poll tick.
pub async fn claim(
    pool: &PgPool,
    queue: &QueueName,
    limit: usize,
    worker_id: Uuid,
    lease_ttl: Duration,
    after: Option<&ClaimCursor>,
) -> Result<Vec<ClaimedJob>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let query = match after {
        None => sqlx::query_as(CLAIM),
        Some(_) => sqlx::query_as(CLAIM_AFTER),
    };
    let mut query = query
        .bind(queue.as_str())
        .bind(limit as i64)
        .bind(lease_ttl.as_millis() as f64)
        .bind(worker_id);
    if let Some(c) = after {
        query = query.bind(c.priority).bind(c.run_at).bind(c.id);
    }
    let rows: Vec<ClaimRow> = query.fetch_all(pool).await?;
    let mut jobs: Vec<ClaimedJob> = rows.into_iter().map(ClaimedJob::from).collect();
    // RETURNING order is unspecified; hand jobs out in claim order.
    jobs.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(a.run_at.cmp(&b.run_at))
            .then(a.id.cmp(&b.id))
    });
    Ok(jobs)
}

const PROMOTE: &str = r#"
WITH due AS (
    SELECT id FROM cowans_jobs
    WHERE state = 'scheduled' AND queue = ANY($1) AND run_at <= now()
    ORDER BY run_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), moved AS (
    UPDATE cowans_jobs j SET state = 'available'
    FROM due WHERE j.id = due.id
    RETURNING j.queue
)
SELECT (SELECT count(*) FROM moved) AS promoted,
       (SELECT min(run_at) FROM cowans_jobs
        WHERE state = 'scheduled' AND queue = ANY($1) AND run_at > now()) AS next_due,
       (SELECT coalesce(array_agg(DISTINCT queue), '{}') FROM moved) AS queues
"#;

/// Makes due scheduled jobs of `queues` available (at most `limit` per call; call again while
/// `promoted == limit`) and reports when the next one falls due. Any worker may run this: rows
/// are locked with SKIP LOCKED, so concurrent promoters never collide. Other processes'
/// producers of those queues are woken when something was promoted.
pub async fn promote_due(pool: &PgPool, queues: &[QueueName], limit: i64) -> Result<Promotion> {
    let names: Vec<&str> = queues.iter().map(QueueName::as_str).collect();
    let mut conn = pool.acquire().await?;
    let (promoted, next_due, moved): (i64, Option<DateTime<Utc>>, Vec<String>) =
        sqlx::query_as(PROMOTE)
            .bind(names)
            .bind(limit)
            .fetch_one(&mut *conn)
            .await?;
    if promoted > 0 {
        let wake = crate::announce::runnable(moved.iter().map(String::as_str));
        crate::announce::after_commit(&mut conn, &wake).await;
    }
    Ok(Promotion {
        promoted: promoted as u64,
        next_due,
    })
}
