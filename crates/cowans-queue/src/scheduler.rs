//! Periodic (cron) jobs: registration, and the leader's pass that enqueues due ticks. Each tick
//! is enqueued exactly once cluster-wide: on a Postgres queue the enqueue commits together with
//! a compare-and-set of the entry's last tick, so a second scheduler (a stale leader, say) loses
//! the race; on a Redis queue the tick's job carries a unique key of its own (see [`fire_due`]).

use chrono::Utc;
use cowans_core::{
    JobState, QueueName,
    cron::CronSchedule,
    queue::{Backend, Driver, Unique},
};
use cowans_store::{CronRow, NewJob, PgPool};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::EngineError;

/// A periodic job: `kind` with `args` on `queue` at every tick of `schedule` in `timezone`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronJob {
    pub name: String,
    /// Five fields (minute precision) or six (seconds first).
    pub schedule: String,
    #[serde(default = "utc")]
    pub timezone: String,
    pub queue: String,
    pub kind: String,
    #[serde(default)]
    pub args: Value,
    /// After an outage, run at most this many missed ticks before the latest one (0 = skip them).
    #[serde(default)]
    pub catch_up: u32,
}

fn utc() -> String {
    "UTC".to_owned()
}

impl CronJob {
    /// Checks every field; the message names it.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() || self.name.len() > 200 {
            return Err("cron.name must be 1 to 200 characters".to_owned());
        }
        CronSchedule::parse(&self.schedule, &self.timezone)
            .map_err(|e| format!("cron {}: {e}", self.name))?;
        QueueName::new(self.queue.clone()).map_err(|e| format!("cron {}: {e}", self.name))?;
        cowans_core::validate_kind(&self.kind).map_err(|e| format!("cron {}: {e}", self.name))?;
        Ok(())
    }
}

/// Creates or updates a periodic job (a new one counts ticks from now).
pub async fn register_cron(pool: &PgPool, job: &CronJob) -> Result<(), EngineError> {
    job.validate().map_err(EngineError::Config)?;
    cowans_store::upsert_cron(
        pool,
        &CronRow {
            name: job.name.clone(),
            schedule: job.schedule.clone(),
            timezone: job.timezone.clone(),
            queue: job.queue.clone(),
            kind: job.kind.clone(),
            args: job.args.clone(),
            catch_up: job.catch_up as i32,
            last_tick: None,
        },
    )
    .await?;
    Ok(())
}

/// Leader: enqueues the due ticks of every periodic job; returns how many jobs it enqueued.
/// A tick's job on a Postgres queue is inserted in the transaction that advances the schedule.
/// One on a Redis queue is stored first with the unique key `cron:<name>:<tick ms>` (held in
/// every state while the job is retained), then the schedule advances: a leader that dies
/// between the two, or loses the race to advance it, makes the same keys again, and they come
/// back as duplicates (as long as the first job has not been pruned meanwhile).
pub(crate) async fn fire_due(
    pool: &PgPool,
    driver: &dyn Driver,
) -> Result<usize, cowans_store::StoreError> {
    let now = Utc::now();
    let mut fired = 0;
    for row in cowans_store::list_cron(pool).await? {
        let schedule = match CronSchedule::parse(&row.schedule, &row.timezone) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(cron = %row.name, error = %e, "skipping a periodic job with a bad schedule");
                continue;
            }
        };
        let Ok(queue) = QueueName::new(row.queue.clone()) else {
            tracing::warn!(cron = %row.name, queue = %row.queue, "skipping a periodic job with a bad queue name");
            continue;
        };
        let last = row.last_tick.unwrap_or(now);
        let ticks = schedule.due(last, now, row.catch_up.max(0) as u32);
        let Some(&latest) = ticks.last() else {
            continue;
        };
        let jobs: Vec<NewJob> = ticks
            .iter()
            .map(|t| NewJob::new(queue.clone(), row.kind.clone(), row.args.clone()).run_at(*t))
            .collect();
        if driver.backend_of(queue.as_str()) == Backend::Redis {
            let keyed: Vec<NewJob> = jobs
                .into_iter()
                .zip(&ticks)
                .map(|(j, t)| {
                    let key = format!("cron:{}:{}", row.name, t.timestamp_millis());
                    j.unique(Unique::key(key).also_in(&JobState::ALL))
                })
                .collect();
            // One queue's backend being out of reach must not hold up the other entries.
            let fresh = match driver.enqueue(&keyed).await {
                Ok(done) => done.iter().filter(|e| !e.duplicate).count(),
                Err(e) => {
                    tracing::warn!(cron = %row.name, error = %e, "cannot enqueue a periodic job's ticks; trying again next pass");
                    continue;
                }
            };
            fired += fresh;
            crate::metrics::enqueued(&row.queue, &row.kind, fresh as u64);
            if cowans_store::advance_cron(pool, &row.name, row.last_tick, latest, &[]).await? {
                tracing::info!(cron = %row.name, ticks = keyed.len(), latest = %latest, "periodic job enqueued");
            }
            continue;
        }
        if cowans_store::advance_cron(pool, &row.name, row.last_tick, latest, &jobs).await? {
            fired += jobs.len();
            crate::metrics::enqueued(&row.queue, &row.kind, jobs.len() as u64);
            tracing::info!(cron = %row.name, ticks = jobs.len(), latest = %latest, "periodic job enqueued");
        }
    }
    Ok(fired)
}
