//! The jobs of a scenario and their accounting. Every job is a `demo.effect` with its own key:
//! its handler records the key and completes the job in one transaction, so a job is done
//! exactly when its effect is recorded, a second effect for a key is a duplicate, and an
//! attempt that did not finish (a kill, a terminated connection, a hand-back) shows as a
//! re-run (`attempt > 1`) without an effect.

use std::time::{Duration, Instant};

use cowans_core::QueueName;
use cowans_store::{NewJob, PgPool};
use serde_json::json;

pub const QUEUE: &str = "chaos";

/// Job `i` of a scenario (its effect key is `chaos-<i>`).
pub fn job(q: &QueueName, i: usize, sleep_ms: u64) -> NewJob {
    NewJob::new(
        q.clone(),
        "demo.effect",
        json!({ "key": format!("chaos-{i}"), "sleep_ms": sleep_ms }),
    )
}

/// Enqueues jobs `from..from + n` in calls of 10,000.
pub async fn enqueue(
    pool: &PgPool,
    q: &QueueName,
    from: usize,
    n: usize,
    sleep_ms: u64,
) -> anyhow::Result<()> {
    let mut i = from;
    while i < from + n {
        let end = (i + 10_000).min(from + n);
        let jobs: Vec<NewJob> = (i..end).map(|i| job(q, i, sleep_ms)).collect();
        cowans_store::enqueue_autocommit(pool, &jobs).await?;
        i = end;
    }
    Ok(())
}

/// Where every job of the scenario ended.
#[derive(Debug, Default)]
pub struct Audit {
    pub enqueued: u64,
    /// Job rows still in the table.
    pub rows: i64,
    pub completed: i64,
    pub dead: i64,
    /// Rows not final (available, scheduled, running) at the end.
    pub open: i64,
    pub effects: i64,
    pub distinct_effects: i64,
    /// Jobs claimed more than once, and the attempts beyond the first.
    pub reattempted: i64,
    pub extra_attempts: i64,
    /// Completed rows without an effect (would mean the effect and the ack came apart).
    pub completed_without_effect: i64,
    /// Lost attempts by cause, from the jobs' error history: leases that expired (the rescuer
    /// took the job back) and attempts that failed (then retried).
    pub rescued_attempts: i64,
    pub failed_attempts: i64,
}

const JOBS: &str = r#"
SELECT count(*),
       count(*) FILTER (WHERE state = 'completed'),
       count(*) FILTER (WHERE state = 'dead'),
       count(*) FILTER (WHERE state IN ('available', 'scheduled', 'running')),
       count(*) FILTER (WHERE attempt > 1),
       coalesce(sum(attempt - 1) FILTER (WHERE attempt > 1), 0)::bigint
FROM cowans_jobs WHERE queue = $1
"#;

const EFFECTS: &str = "SELECT count(*), count(DISTINCT key) FROM cowans_demo_effects";

const COMPLETED_WITHOUT_EFFECT: &str = r#"
SELECT count(*) FROM cowans_jobs j
WHERE j.queue = $1 AND j.state = 'completed'
  AND NOT EXISTS (SELECT 1 FROM cowans_demo_effects e WHERE e.job_id = j.id)
"#;

const ATTEMPT_ERRORS: &str = r#"
SELECT count(*) FILTER (WHERE e->>'error' LIKE 'lease expired%'),
       count(*) FILTER (WHERE e->>'error' NOT LIKE 'lease expired%')
FROM cowans_jobs j, jsonb_array_elements(j.errors) e
WHERE j.queue = $1 AND j.errors <> '[]'
"#;

const OPEN: &str = "SELECT count(*) FROM cowans_jobs \
                    WHERE queue = $1 AND state IN ('available', 'scheduled', 'running')";

impl Audit {
    pub async fn take(pool: &PgPool, q: &QueueName, enqueued: u64) -> anyhow::Result<Audit> {
        // Fresh statistics first: planned on the empty tables' (autovacuum has not run yet),
        // the anti-join below is a nested loop of seq scans, minutes at 100,000 jobs.
        sqlx::query("ANALYZE cowans_jobs, cowans_demo_effects")
            .execute(pool)
            .await?;
        let (rows, completed, dead, open, reattempted, extra_attempts): (
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
        ) = sqlx::query_as(JOBS)
            .bind(q.as_str())
            .fetch_one(pool)
            .await?;
        let (effects, distinct_effects): (i64, i64) =
            sqlx::query_as(EFFECTS).fetch_one(pool).await?;
        let completed_without_effect = sqlx::query_scalar(COMPLETED_WITHOUT_EFFECT)
            .bind(q.as_str())
            .fetch_one(pool)
            .await?;
        let (rescued_attempts, failed_attempts): (i64, i64) = sqlx::query_as(ATTEMPT_ERRORS)
            .bind(q.as_str())
            .fetch_one(pool)
            .await?;
        Ok(Audit {
            rescued_attempts,
            failed_attempts,
            enqueued,
            rows,
            completed,
            dead,
            open,
            effects,
            distinct_effects,
            reattempted,
            extra_attempts,
            completed_without_effect,
        })
    }

    /// Enqueued but never completed (no effect): stuck, dead or gone.
    pub fn lost(&self) -> i64 {
        self.enqueued as i64 - self.distinct_effects
    }

    pub fn duplicates(&self) -> i64 {
        self.effects - self.distinct_effects
    }

    /// The accounting as `key=value` figures.
    pub fn figures(&self) -> String {
        format!(
            "enqueued={} completed={} lost={} duplicate_effects={} stuck={} dead={} missing_rows={} \
             completed_without_effect={} reattempted_jobs={} extra_attempts={} rescued_attempts={} \
             failed_attempts={}",
            self.enqueued,
            self.completed,
            self.lost(),
            self.duplicates(),
            self.open,
            self.dead,
            self.enqueued as i64 - self.rows,
            self.completed_without_effect,
            self.reattempted,
            self.extra_attempts,
            self.rescued_attempts,
            self.failed_attempts,
        )
    }
}

/// Waits until every one of `enqueued` jobs has its effect and no job of `q` is open, at most
/// `limit` (errors while the server is away are waited out); how long it took. `effects` is the
/// timeline's latest count, so the exact check runs only once it can pass.
pub async fn settle(
    pool: &PgPool,
    q: &QueueName,
    enqueued: u64,
    effects: impl Fn() -> usize,
    limit: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if effects() as u64 >= enqueued {
            let distinct: Result<(i64, i64), _> = sqlx::query_as(EFFECTS).fetch_one(pool).await;
            let open: Result<i64, _> = sqlx::query_scalar(OPEN)
                .bind(q.as_str())
                .fetch_one(pool)
                .await;
            if let (Ok((_, d)), Ok(0)) = (distinct, open)
                && d as u64 >= enqueued
            {
                return Some(started.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}
