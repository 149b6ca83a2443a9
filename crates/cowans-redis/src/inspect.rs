//! Reading jobs and queues (job, counts, stats), operators' actions on jobs (cancel,
//! redrive) and retention (prune).

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};
use cowans_core::{
    AttemptError, JobId, JobState, Wakeup,
    queue::{JobRecord, Pruned, QueueError, QueueResult, QueueStats, Retention, WorkerInfo},
};
use serde::Deserialize;

use crate::{
    RedisDriver, scripts,
    value::{at, bad, int, items, map_err, millis, narrow, opt_int, text, time},
};

/// One entry of a job's error history as the scripts write it.
#[derive(Deserialize)]
struct StoredError {
    attempt: i32,
    at: i64,
    #[serde(default)]
    worker: Option<String>,
    error: String,
}

/// One queue's live summary, as the stats script returns it.
struct Summary {
    now: DateTime<Utc>,
    counts: [i64; 6],
    oldest_available: Option<DateTime<Utc>>,
    completed_last_minute: i64,
    paused: bool,
}

impl RedisDriver {
    async fn summary(&self, queue: &str) -> QueueResult<Summary> {
        let reply = self.run(&scripts::STATS, &self.qkey(queue), &[]).await?;
        let a = items(&reply)?;
        let mut counts = [0i64; 6];
        for (i, c) in counts.iter_mut().enumerate() {
            *c = int(at(a, i + 1, "count")?, "count")?;
        }
        Ok(Summary {
            now: time(int(at(a, 0, "now")?, "now")?, "now")?,
            counts,
            oldest_available: opt_int(at(a, 7, "oldest")?, "oldest")?
                .map(|ms| time(ms, "oldest available"))
                .transpose()?,
            completed_last_minute: int(at(a, 8, "completed")?, "completed last minute")?,
            paused: int(at(a, 9, "paused")?, "paused")? == 1,
        })
    }
}

pub(crate) fn job_view(id: JobId, h: &HashMap<String, String>) -> QueueResult<JobRecord> {
    let field = |name: &str| {
        h.get(name)
            .ok_or_else(|| bad(format!("job {id} has no {name}")))
    };
    let num = |name: &str| -> QueueResult<i64> {
        let t = field(name)?;
        t.parse::<i64>()
            .map_err(|_| bad(format!("job {id}: {name} is not a number: {t:?}")))
    };
    let opt_time = |name: &str| -> QueueResult<Option<DateTime<Utc>>> {
        match h.get(name).filter(|t| !t.is_empty()) {
            Some(t) => t
                .parse::<i64>()
                .map_err(|_| bad(format!("job {id}: {name} is not a number: {t:?}")))
                .and_then(|ms| time(ms, name))
                .map(Some),
            None => Ok(None),
        }
    };
    let opt = |name: &str| h.get(name).filter(|t| !t.is_empty()).cloned();
    let state = field("state")?;
    let errors: Vec<StoredError> = match h.get("errors") {
        Some(t) if !t.is_empty() => serde_json::from_str(t)
            .map_err(|e| bad(format!("job {id}: unreadable error history: {e}")))?,
        _ => Vec::new(),
    };
    Ok(JobRecord {
        id,
        queue: field("queue")?.clone(),
        kind: field("kind")?.clone(),
        // Arguments that are not JSON (written by something else) are shown as their text:
        // one such job must not make its queue's listings fail.
        args: {
            let raw = field("args")?;
            serde_json::from_str(raw).unwrap_or_else(|_| serde_json::Value::String(raw.clone()))
        },
        state: JobState::parse(state)
            .ok_or_else(|| bad(format!("job {id}: unknown state {state:?}")))?,
        priority: narrow(num("priority")?, "priority")?,
        attempt: narrow(num("attempt")?, "attempt")?,
        max_attempts: narrow(num("max_attempts")?, "max_attempts")?,
        run_at: time(num("run_at")?, "run_at")?,
        created_at: time(num("created_at")?, "created_at")?,
        attempted_at: opt_time("attempted_at")?,
        finalized_at: opt_time("finalized_at")?,
        lease: opt("lease")
            .map(|t| {
                t.parse::<i64>()
                    .map_err(|_| bad(format!("job {id}: lease is not a number: {t:?}")))
            })
            .transpose()?,
        worker_id: opt("worker").and_then(|w| w.parse().ok()),
        unique_key: opt("unique_key"),
        batch_id: opt("batch_id").and_then(|b| b.parse().ok()),
        rate_key: opt("rate_key"),
        errors: errors
            .into_iter()
            .map(|e| {
                Ok(AttemptError {
                    attempt: e.attempt,
                    at: time(e.at, "error time")?,
                    worker: e.worker,
                    error: e.error,
                })
            })
            .collect::<QueueResult<_>>()?,
    })
}

pub(crate) async fn job(d: &RedisDriver, id: JobId) -> QueueResult<Option<JobRecord>> {
    let located = d.locate(&[id.0]).await?;
    let Some(queue) = located.get(&id.0) else {
        return Ok(None);
    };
    let mut conn = d.conn.clone();
    let h: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(format!("{}:job:{}", d.qkey(queue), id.0))
        .query_async(&mut conn)
        .await
        .map_err(map_err)?;
    if h.is_empty() {
        return Ok(None);
    }
    job_view(id, &h).map(Some)
}

pub(crate) async fn count_by_state(
    d: &RedisDriver,
    queue: &str,
) -> QueueResult<Vec<(JobState, i64)>> {
    let s = d.summary(queue).await?;
    Ok(JobState::ALL
        .into_iter()
        .zip(s.counts)
        .filter(|(_, n)| *n > 0)
        .collect())
}

pub(crate) async fn queue_stats(
    d: &RedisDriver,
    queue: Option<&str>,
    live_within: Duration,
) -> QueueResult<Vec<QueueStats>> {
    let known = d.known_queues().await?;
    let queues: Vec<String> = match queue {
        Some(q) => known.into_iter().filter(|k| k == q).collect(),
        None => known,
    };
    if queues.is_empty() {
        return Ok(Vec::new());
    }
    let reply = d
        .run(&scripts::WORKERS_LIVE, &d.global(), &[millis(live_within)])
        .await?;
    let mut workers = Vec::new();
    for v in items(&reply)? {
        let json = text(v, "worker")?;
        match serde_json::from_str::<WorkerInfo>(&json) {
            Ok(w) => workers.push(w),
            Err(e) => tracing::warn!(error = %e, "ignoring an unreadable worker registration"),
        }
    }
    let mut out = Vec::with_capacity(queues.len());
    for queue in queues {
        let s = d.summary(&queue).await?;
        let serving: Vec<&WorkerInfo> = workers
            .iter()
            .filter(|w| w.queues.contains(&queue))
            .collect();
        let [available, scheduled, running, completed, cancelled, dead] = s.counts;
        out.push(QueueStats {
            available,
            scheduled,
            running,
            completed,
            cancelled,
            dead,
            oldest_available_at: s.oldest_available,
            oldest_available_age_secs: s.oldest_available.map_or(0.0, |t| {
                ((s.now - t).num_milliseconds() as f64 / 1000.0).max(0.0)
            }),
            completed_last_minute: s.completed_last_minute,
            paused: s.paused,
            workers: serving.len() as i64,
            worker_concurrency: serving.iter().map(|w| i64::from(w.concurrency)).sum(),
            refreshed_at: s.now,
            queue,
        });
    }
    Ok(out)
}

pub(crate) async fn cancel(d: &RedisDriver, id: JobId) -> QueueResult<JobState> {
    let located = d.locate(&[id.0]).await?;
    let Some(queue) = located.get(&id.0) else {
        return Err(QueueError::not_found(format!("job {id}")));
    };
    let reply = d
        .run(
            &scripts::CANCEL,
            &d.qkey(queue),
            &[
                id.0.to_string(),
                d.channel(),
                Wakeup::Cancel { job: id }.encode(),
            ],
        )
        .await?;
    let a = items(&reply)?;
    let outcome = text(at(a, 0, "outcome")?, "outcome")?;
    let state = |i: usize| -> QueueResult<JobState> {
        let s = text(at(a, i, "state")?, "state")?;
        JobState::parse(&s).ok_or_else(|| bad(format!("unknown state {s:?}")))
    };
    match outcome.as_str() {
        "missing" => Err(QueueError::not_found(format!("job {id}"))),
        "final" => Err(QueueError::conflict(format!(
            "job {id} is {} and cannot be cancelled",
            state(1)?
        ))),
        "ok" => state(1),
        other => Err(bad(format!("cancel answered {other:?}"))),
    }
}

pub(crate) async fn redrive(d: &RedisDriver, ids: &[JobId]) -> QueueResult<Vec<JobId>> {
    run_again(d, ids, false).await
}

/// Runs a dead or cancelled job again, as `cowans_store::retry_job` does on Postgres.
pub(crate) async fn retry(d: &RedisDriver, id: JobId) -> QueueResult<()> {
    if !run_again(d, &[id], true).await?.is_empty() {
        return Ok(());
    }
    Err(match job(d, id).await?.map(|j| j.state) {
        None => QueueError::not_found(format!("job {id}")),
        Some(s @ (JobState::Dead | JobState::Cancelled)) => QueueError::conflict(format!(
            "job {id} stays {s}: a live job holds its unique key"
        )),
        Some(s) => QueueError::conflict(format!(
            "job {id} is {s}; only dead or cancelled jobs can be retried"
        )),
    })
}

/// Makes dead letters (and cancelled jobs, with `cancelled_too`) available again.
async fn run_again(d: &RedisDriver, ids: &[JobId], cancelled_too: bool) -> QueueResult<Vec<JobId>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // Oldest first, as Postgres: of two dead letters with one unique key, the older comes back.
    let mut ids = ids.to_vec();
    ids.sort();
    let fields = ids
        .iter()
        .map(|id| (id.0, vec![id.0.to_string()]))
        .collect();
    let channel = d.channel();
    let mut moved = d
        .ack_ids(&scripts::REDRIVE, fields, |q| {
            vec![
                channel.clone(),
                Wakeup::Runnable { queue: q.clone() }.encode(),
                if cancelled_too { "1" } else { "0" }.to_owned(),
            ]
        })
        .await?;
    moved.sort();
    Ok(moved)
}

pub(crate) async fn prune(
    d: &RedisDriver,
    retention: Retention,
    limit: i64,
) -> QueueResult<Pruned> {
    // Every known queue at once, each up to `limit` (the caller calls again while a pass
    // comes back full).
    let args = [
        millis(retention.finished),
        millis(retention.dead),
        limit.max(0).to_string(),
        limit.max(0).to_string(),
    ];
    let calls = d.known_queues().await?.into_iter().map(|queue| {
        let args = &args;
        async move {
            let reply = d.run(&scripts::PRUNE, &d.qkey(&queue), args).await?;
            let a = items(&reply)?;
            Ok::<_, QueueError>((
                int(at(a, 0, "finished")?, "finished")?.max(0) as u64,
                int(at(a, 1, "dead")?, "dead")?.max(0) as u64,
            ))
        }
    });
    let mut pruned = Pruned::default();
    for (finished, dead) in futures::future::try_join_all(calls).await? {
        pruned.finished += finished;
        pruned.dead += dead;
    }
    Ok(pruned)
}
