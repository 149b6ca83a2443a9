//! The acks of claimed jobs, each fenced by the claim's lease: complete, settle a failure,
//! release, defer.

use chrono::{DateTime, Utc};
use cowans_core::{
    JobId, JobState, QueueName, Wakeup,
    queue::{Failed, LeaseRef, QueueResult, Settled},
};
use redis::Script;
use uuid::Uuid;

use crate::{
    RedisDriver,
    keys::queue_name,
    scripts,
    value::{at, bad, int, items, millis, text, time},
};

pub(crate) async fn complete(
    d: &RedisDriver,
    refs: &[LeaseRef],
    delete: bool,
) -> QueueResult<Vec<JobId>> {
    if refs.is_empty() {
        return Ok(Vec::new());
    }
    let fields = refs
        .iter()
        .map(|r| (r.id.0, vec![r.id.0.to_string(), r.lease.to_string()]))
        .collect::<Vec<_>>();
    let flag = if delete { "1" } else { "0" };
    let mut done = Vec::new();
    let mut dropped = Vec::new();
    for (queue, rows) in d.by_queue(fields).await? {
        let mut args = vec![flag.to_owned()];
        args.extend(rows.into_iter().flatten());
        let reply = d.run(&scripts::COMPLETE, &d.qkey(&queue), &args).await?;
        for row in items(&reply)? {
            let f = items(row)?;
            let id = int(at(f, 0, "id")?, "id")?;
            if int(at(f, 1, "dropped")?, "dropped")? == 1 {
                dropped.push(id);
            }
            done.push(JobId(id));
        }
    }
    if !dropped.is_empty() {
        // The job is gone: its id -> queue entry goes too (best effort; a stale entry only
        // costs a lookup that finds nothing).
        let mut conn = d.conn.clone();
        let cleaned: Result<i64, _> = redis::cmd("HDEL")
            .arg(format!("{}:jobq", d.global()))
            .arg(&dropped)
            .query_async(&mut conn)
            .await;
        if let Err(e) = cleaned {
            tracing::debug!(error = %e, "cannot forget the queue of deleted jobs");
        }
    }
    d.forget(done.iter().map(|id| id.0));
    Ok(done)
}

pub(crate) async fn settle_failures(
    d: &RedisDriver,
    worker: Uuid,
    failed: &[Failed],
) -> QueueResult<Vec<Settled>> {
    if failed.is_empty() {
        return Ok(Vec::new());
    }
    let fields: Vec<(i64, Vec<String>)> = failed
        .iter()
        .map(|f| {
            let state = f.next_state();
            let delay = match (state, f.retry_in) {
                (JobState::Dead, _) | (_, None) => String::new(),
                (_, Some(d)) => millis(d),
            };
            (
                f.lease.id.0,
                vec![
                    f.lease.id.0.to_string(),
                    f.lease.lease.to_string(),
                    state.as_str().to_owned(),
                    delay,
                    f.attempt.to_string(),
                    f.error.clone(),
                ],
            )
        })
        .collect();
    let groups = d.by_queue(fields).await?;
    let mut out = Vec::new();
    for (queue, rows) in groups {
        let name = queue_name(&queue)?;
        let mut args = vec![
            worker.to_string(),
            d.channel(),
            Wakeup::Runnable {
                queue: name.clone(),
            }
            .encode(),
            Wakeup::Scheduled { queue: name }.encode(),
        ];
        args.extend(rows.into_iter().flatten());
        let reply = d.run(&scripts::SETTLE, &d.qkey(&queue), &args).await?;
        for row in items(&reply)? {
            let f = items(row)?;
            let state = text(at(f, 1, "state")?, "state")?;
            out.push(Settled {
                id: JobId(int(at(f, 0, "id")?, "id")?),
                queue: queue.clone(),
                state: JobState::parse(&state)
                    .ok_or_else(|| bad(format!("unknown state {state:?}")))?,
                run_at: time(int(at(f, 2, "run_at")?, "run_at")?, "run_at")?,
            });
        }
    }
    d.forget(out.iter().map(|s| s.id.0));
    Ok(out)
}

pub(crate) async fn release(d: &RedisDriver, refs: &[LeaseRef]) -> QueueResult<Vec<JobId>> {
    if refs.is_empty() {
        return Ok(Vec::new());
    }
    let fields = refs
        .iter()
        .map(|r| (r.id.0, vec![r.id.0.to_string(), r.lease.to_string()]))
        .collect();
    let channel = d.channel();
    d.ack_ids(&scripts::RELEASE, fields, |q| {
        vec![
            channel.clone(),
            Wakeup::Runnable { queue: q.clone() }.encode(),
        ]
    })
    .await
}

pub(crate) async fn defer(
    d: &RedisDriver,
    jobs: &[(LeaseRef, DateTime<Utc>)],
) -> QueueResult<Vec<i64>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let fields = jobs
        .iter()
        .map(|(r, at)| {
            (
                r.id.0,
                vec![
                    r.id.0.to_string(),
                    r.lease.to_string(),
                    at.timestamp_millis().to_string(),
                ],
            )
        })
        .collect();
    let done = d.ack_ids(&scripts::DEFER, fields, |_| Vec::new()).await?;
    Ok(done.into_iter().map(|id| id.0).collect())
}

impl RedisDriver {
    /// Runs an ack script (`args` first, then the per-job fields) once per queue; returns the
    /// ids it reported.
    pub(crate) async fn ack_ids(
        &self,
        script: &Script,
        fields: Vec<(i64, Vec<String>)>,
        head: impl Fn(&QueueName) -> Vec<String>,
    ) -> QueueResult<Vec<JobId>> {
        let groups = self.by_queue(fields).await?;
        let mut done = Vec::new();
        for (queue, rows) in groups {
            let mut args = head(&queue_name(&queue)?);
            args.extend(rows.into_iter().flatten());
            let reply = self.run(script, &self.qkey(&queue), &args).await?;
            for v in items(&reply)? {
                done.push(JobId(int(v, "job id")?));
            }
        }
        Ok(done)
    }
}
