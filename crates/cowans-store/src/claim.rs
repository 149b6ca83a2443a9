//! Claiming runnable jobs and promoting scheduled ones whose time has come.

use std::time::Duration;

use chrono::{DateTime, Utc};
use cowans_core::{JobId, QueueName};
use sqlx::PgPool;
use uuid::Uuid;

use crate::Result;

/// A job this worker now holds. `lease` must accompany every ack.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedJob {
    pub id: i64,
    pub queue: String,
    pub kind: String,
    /// The payload as JSON text: decoded once, straight into the handler's type.
    pub args: String,
    pub priority: i16,
    /// This attempt, 1-based (the claim counted it).
    pub attempt: i32,
    pub max_attempts: i32,
    pub lease: i64,
    /// When the job became runnable; `attempted_at - run_at` is its queue wait.
    pub run_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub attempted_at: DateTime<Utc>,
    /// The job's key for queues rate-limited per key.
    pub rate_key: Option<String>,
}

impl ClaimedJob {
    pub fn job_id(&self) -> JobId {
        JobId(self.id)
    }

    /// What acks and releases of this claim are fenced by.
    pub fn lease_ref(&self) -> crate::LeaseRef {
        crate::LeaseRef {
            id: self.job_id(),
            lease: self.lease,
        }
    }

    /// The cursor that continues after this job.
    pub fn cursor(&self) -> ClaimCursor {
        ClaimCursor {
            priority: self.priority,
            run_at: self.run_at,
            id: self.id,
        }
    }
}

/// Where the previous claim of this producer stopped, in claim order. Passing it lets the next
/// claim start there instead of stepping over the index entries of every job claimed since the
/// last vacuum (which, at thousands of jobs per second, costs more than the claim itself).
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimCursor {
    pub priority: i16,
    pub run_at: DateTime<Utc>,
    pub id: i64,
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
            "lease = (SELECT nextval('cowans_lease_seq')), ",
            "lease_expires_at = now() + $3 * interval '1 millisecond', worker_id = $4 ",
            "FROM picked WHERE j.id = picked.id ",
            "RETURNING j.id, j.queue, j.kind, j.args::text AS args, j.priority, j.attempt, ",
            "j.max_attempts, j.lease, j.run_at, j.created_at, j.attempted_at, j.rate_key"
        )
    };
}

// The CTE picks at most $2 rows in claim-index order and locks them, skipping rows another
// claimer holds; the UPDATE then marks exactly those. One fencing token per statement.
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
    let mut jobs: Vec<ClaimedJob> = query.fetch_all(pool).await?;
    // RETURNING order is unspecified; hand jobs out in claim order.
    jobs.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(a.run_at.cmp(&b.run_at))
            .then(a.id.cmp(&b.id))
    });
    Ok(jobs)
}

/// The result of a promotion pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Promotion {
    /// Scheduled jobs that became available.
    pub promoted: u64,
    /// The earliest `run_at` still in the future among these queues, if any.
    pub next_due: Option<DateTime<Utc>>,
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
