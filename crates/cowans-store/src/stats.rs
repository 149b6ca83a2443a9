//! Queue statistics: a summary table the leader refreshes every few seconds with one pass over
//! the jobs, so dashboards, the API and every process's `/metrics` read a handful of rows.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::{QueueStats, Result};

/// A summary row as the statement returns it.
#[derive(sqlx::FromRow)]
struct StatsRow {
    queue: String,
    available: i64,
    scheduled: i64,
    running: i64,
    completed: i64,
    cancelled: i64,
    dead: i64,
    oldest_available_at: Option<DateTime<Utc>>,
    oldest_available_age_secs: f64,
    completed_last_minute: i64,
    paused: bool,
    workers: i64,
    worker_concurrency: i64,
    refreshed_at: DateTime<Utc>,
}

impl From<StatsRow> for QueueStats {
    fn from(r: StatsRow) -> Self {
        QueueStats {
            queue: r.queue,
            available: r.available,
            scheduled: r.scheduled,
            running: r.running,
            completed: r.completed,
            cancelled: r.cancelled,
            dead: r.dead,
            oldest_available_at: r.oldest_available_at,
            oldest_available_age_secs: r.oldest_available_age_secs,
            completed_last_minute: r.completed_last_minute,
            paused: r.paused,
            workers: r.workers,
            worker_concurrency: r.worker_concurrency,
            refreshed_at: r.refreshed_at,
        }
    }
}

const REFRESH: &str = r#"
WITH counts AS (
    SELECT queue,
           count(*) FILTER (WHERE state = 'available') AS available,
           count(*) FILTER (WHERE state = 'scheduled') AS scheduled,
           count(*) FILTER (WHERE state = 'running')   AS running,
           count(*) FILTER (WHERE state = 'completed') AS completed,
           count(*) FILTER (WHERE state = 'cancelled') AS cancelled,
           count(*) FILTER (WHERE state = 'dead')      AS dead,
           min(run_at) FILTER (WHERE state = 'available') AS oldest_available_at,
           count(*) FILTER (WHERE state = 'completed' AND finalized_at > now() - interval '1 minute')
               AS completed_last_minute
    FROM cowans_jobs GROUP BY queue
), known AS (
    SELECT queue FROM counts UNION SELECT name FROM cowans_queues UNION SELECT queue FROM cowans_queue_stats
)
INSERT INTO cowans_queue_stats AS s (queue, available, scheduled, running, completed, cancelled, dead,
                                     oldest_available_at, completed_last_minute, refreshed_at)
SELECT k.queue, coalesce(c.available, 0), coalesce(c.scheduled, 0), coalesce(c.running, 0),
       coalesce(c.completed, 0), coalesce(c.cancelled, 0), coalesce(c.dead, 0),
       c.oldest_available_at, coalesce(c.completed_last_minute, 0), now()
FROM known k LEFT JOIN counts c ON c.queue = k.queue
ON CONFLICT (queue) DO UPDATE SET
    available = excluded.available, scheduled = excluded.scheduled, running = excluded.running,
    completed = excluded.completed, cancelled = excluded.cancelled, dead = excluded.dead,
    oldest_available_at = excluded.oldest_available_at,
    completed_last_minute = excluded.completed_last_minute, refreshed_at = excluded.refreshed_at
"#;

/// Leader only: recomputes the summary of every queue (one scan of the jobs table).
pub async fn refresh_queue_stats(pool: &PgPool) -> Result<()> {
    sqlx::query(REFRESH).execute(pool).await?;
    Ok(())
}

const READ: &str = r#"
SELECT s.queue, s.available, s.scheduled, s.running, s.completed, s.cancelled, s.dead,
       s.oldest_available_at,
       coalesce(extract(epoch FROM now() - s.oldest_available_at)::float8, 0) AS oldest_available_age_secs,
       s.completed_last_minute, coalesce(q.paused, false) AS paused,
       coalesce(w.workers, 0) AS workers, coalesce(w.concurrency, 0) AS worker_concurrency,
       s.refreshed_at
FROM cowans_queue_stats s
LEFT JOIN cowans_queues q ON q.name = s.queue
LEFT JOIN LATERAL (
    SELECT count(*) AS workers, coalesce(sum(concurrency), 0)::bigint AS concurrency
    FROM cowans_workers WHERE s.queue = ANY(queues) AND last_seen > now() - $2 * interval '1 millisecond'
) w ON true
WHERE $1::text IS NULL OR s.queue = $1
ORDER BY s.queue
"#;

/// The summary of every queue (or of one), with the paused flag and live workers (seen within
/// `live_within`) joined in.
pub async fn queue_stats(
    pool: &PgPool,
    queue: Option<&str>,
    live_within: std::time::Duration,
) -> Result<Vec<QueueStats>> {
    let rows: Vec<StatsRow> = sqlx::query_as(READ)
        .bind(queue)
        .bind(live_within.as_millis() as f64)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(QueueStats::from).collect())
}
