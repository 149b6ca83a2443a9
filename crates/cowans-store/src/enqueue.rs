//! Enqueue: one job, or many in one statement, on any executor (so inside the caller's own
//! transaction the jobs become visible, and runnable, only when it commits).

use chrono::{DateTime, Utc};
use cowans_core::{JobId, QueueName, validate_kind};
use serde_json::Value;
use sqlx::PgExecutor;

use crate::{Result, StoreError};

/// The NOTIFY channel. Payloads: `a:<queue>:<priority>` when new runnable jobs arrived (with the
/// highest priority among them), `s:<queue>` when scheduled ones did, and `r:<queue>` when
/// existing jobs became runnable again (promotion, retry, rescue, hand-back, re-drive). One
/// notification per queue per statement.
pub const NOTIFY_CHANNEL: &str = "cowans_jobs";

/// A job to insert.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub queue: QueueName,
    pub kind: String,
    pub args: Value,
    /// Higher runs first; default 0.
    pub priority: i16,
    /// Not before this time; `None` = now.
    pub run_at: Option<DateTime<Utc>>,
    pub max_attempts: i32,
}

impl NewJob {
    pub fn new(queue: QueueName, kind: impl Into<String>, args: Value) -> Self {
        Self {
            queue,
            kind: kind.into(),
            args,
            priority: 0,
            run_at: None,
            max_attempts: cowans_core::RetryPolicy::default().max_attempts,
        }
    }

    pub fn priority(mut self, priority: i16) -> Self {
        self.priority = priority;
        self
    }

    pub fn run_at(mut self, run_at: DateTime<Utc>) -> Self {
        self.run_at = Some(run_at);
        self
    }

    pub fn max_attempts(mut self, max_attempts: i32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    fn validate(&self, index: Option<usize>) -> Result<()> {
        let at = |field: &str| match index {
            Some(i) => format!("jobs[{i}].{field}"),
            None => field.to_owned(),
        };
        validate_kind(&self.kind).map_err(|e| StoreError::invalid(at("kind"), e.to_string()))?;
        if self.max_attempts < 1 {
            return Err(StoreError::invalid(
                at("max_attempts"),
                format!("is {}; it must be at least 1", self.max_attempts),
            ));
        }
        Ok(())
    }
}

// One statement for one job or ten thousand: arrays in, unnest, ids out. Ids come from an
// identity column, so ordering by id returns them in input order.
macro_rules! insert_sql {
    ($tail:literal) => {
        concat!(
            "WITH input AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::smallint[], ",
            "$5::timestamptz[], $6::integer[]) AS t(queue, kind, args, priority, run_at, max_attempts)), ",
            "ins AS (INSERT INTO cowans_jobs (queue, kind, args, state, priority, run_at, max_attempts) ",
            "SELECT queue, kind, args::jsonb, ",
            "CASE WHEN run_at IS NULL OR run_at <= now() THEN 'available' ELSE 'scheduled' END::cowans_job_state, ",
            "priority, COALESCE(run_at, now()), max_attempts FROM input ",
            "RETURNING id, queue, state, priority) ",
            $tail
        )
    };
}

// Inside a transaction the notification must ride on the transaction (sent at commit, never
// on rollback). The notify CTE is joined into the result so Postgres cannot skip it.
const INSERT_NOTIFY: &str = insert_sql!(
    "SELECT ins.id, NULL::text AS tag FROM ins CROSS JOIN (SELECT count(pg_notify('cowans_jobs', tag)) AS n FROM ( \
     SELECT CASE WHEN state = 'available' THEN 'a:' || queue || ':' || max(priority) ELSE 's:' || queue END AS tag \
     FROM ins GROUP BY queue, state) q) notified ORDER BY ins.id"
);

// Outside a transaction the insert commits on its own and the notification follows as a
// separate statement: a transaction that sends NOTIFY holds Postgres' notify-queue lock through
// its commit (and its WAL flush), which would serialise every concurrent single enqueue.
const INSERT_ONLY: &str = insert_sql!(
    "SELECT id, NULL::text AS tag FROM ins UNION ALL \
     SELECT NULL, CASE WHEN state = 'available' THEN 'a:' || queue || ':' || max(priority) ELSE 's:' || queue END \
     FROM ins GROUP BY queue, state ORDER BY 1"
);

/// Inserts one job and returns its id. Works on any executor: inside the caller's transaction the
/// job is visible, and its wake-up sent, only when the transaction commits.
pub async fn enqueue<'e>(executor: impl PgExecutor<'e>, job: &NewJob) -> Result<JobId> {
    job.validate(None)?;
    let ids = insert(executor, std::slice::from_ref(job), INSERT_NOTIFY).await?;
    Ok(ids[0])
}

/// Like [`enqueue_many`] on the pool, each call its own transaction: faster under concurrency
/// because the wake-up is sent after the commit instead of inside it.
pub async fn enqueue_autocommit(pool: &sqlx::PgPool, jobs: &[NewJob]) -> Result<Vec<JobId>> {
    validate_all(jobs)?;
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let rows = insert_rows(pool, jobs, INSERT_ONLY).await?;
    let (ids, tags): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(id, _)| id.is_some());
    let tags: Vec<String> = tags.into_iter().filter_map(|(_, t)| t).collect();
    sqlx::query("SELECT pg_notify('cowans_jobs', tag) FROM unnest($1::text[]) AS tag")
        .bind(tags)
        .execute(pool)
        .await?;
    Ok(ids
        .into_iter()
        .filter_map(|(id, _)| id)
        .map(JobId)
        .collect())
}

/// Inserts many jobs in one statement and returns their ids in input order.
pub async fn enqueue_many<'e>(
    executor: impl PgExecutor<'e>,
    jobs: &[NewJob],
) -> Result<Vec<JobId>> {
    validate_all(jobs)?;
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    insert(executor, jobs, INSERT_NOTIFY).await
}

/// Errors name the item (`jobs[3].kind`) so a caller can find it in its batch.
fn validate_all(jobs: &[NewJob]) -> Result<()> {
    jobs.iter()
        .enumerate()
        .try_for_each(|(i, job)| job.validate(Some(i)))
}

async fn insert<'e>(
    executor: impl PgExecutor<'e>,
    jobs: &[NewJob],
    sql: &'static str,
) -> Result<Vec<JobId>> {
    let rows = insert_rows(executor, jobs, sql).await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, _)| id)
        .map(JobId)
        .collect())
}

async fn insert_rows<'e>(
    executor: impl PgExecutor<'e>,
    jobs: &[NewJob],
    sql: &'static str,
) -> Result<Vec<(Option<i64>, Option<String>)>> {
    let n = jobs.len();
    let mut queues = Vec::with_capacity(n);
    let mut kinds = Vec::with_capacity(n);
    let mut args = Vec::with_capacity(n);
    let mut priorities = Vec::with_capacity(n);
    let mut run_ats = Vec::with_capacity(n);
    let mut max_attempts = Vec::with_capacity(n);
    for job in jobs {
        queues.push(job.queue.as_str());
        kinds.push(job.kind.as_str());
        args.push(job.args.to_string());
        priorities.push(job.priority);
        run_ats.push(job.run_at);
        max_attempts.push(job.max_attempts);
    }
    let rows: Vec<(Option<i64>, Option<String>)> = sqlx::query_as(sql)
        .bind(queues)
        .bind(kinds)
        .bind(args)
        .bind(priorities)
        .bind(run_ats)
        .bind(max_attempts)
        .fetch_all(executor)
        .await?;
    Ok(rows)
}
