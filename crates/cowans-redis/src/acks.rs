//! The acks of claimed jobs, each fenced by the claim's lease: complete, settle a failure,
//! release, defer.

use chrono::{DateTime, Utc};
use cowans_core::{
    JobId, JobState, QueueName, Wakeup,
    queue::{Failed, LeaseRef, QueueError, QueueResult, Settled},
};
use redis::{Script, Value};
use uuid::Uuid;

use crate::{
    RedisDriver,
    keys::queue_name,
    scripts,
    value::{at, bad, int, items, millis, text, time},
};

/// `(id, [id, lease])`: the per-job arguments of the lease-fenced scripts.
pub(crate) fn fenced(refs: &[LeaseRef]) -> Vec<(i64, Vec<String>)> {
    refs.iter()
        .map(|r| (r.id.0, vec![r.id.0.to_string(), r.lease.to_string()]))
        .collect()
}

pub(crate) async fn complete(
    d: &RedisDriver,
    refs: &[LeaseRef],
    delete: bool,
) -> QueueResult<Vec<JobId>> {
    if refs.is_empty() {
        return Ok(Vec::new());
    }
    let flag = if delete { "1" } else { "0" };
    let replies = d
        .per_queue(&scripts::COMPLETE, fenced(refs), |_| vec![flag.to_owned()])
        .await;
    let mut done = Vec::new();
    for (_, reply) in replies? {
        for row in items(&reply)? {
            done.push(JobId(int(at(items(row)?, 0, "id")?, "id")?));
        }
    }
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
    let replies = d
        .per_queue(&scripts::SETTLE, fields, |_| vec![worker.to_string()])
        .await;
    let mut out = Vec::new();
    for (queue, reply) in replies? {
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
    Ok(out)
}

pub(crate) async fn release(d: &RedisDriver, refs: &[LeaseRef]) -> QueueResult<Vec<JobId>> {
    if refs.is_empty() {
        return Ok(Vec::new());
    }
    let channel = d.channel();
    d.ack_ids(&scripts::RELEASE, fenced(refs), |q| {
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
    /// Runs `script` once per queue of the jobs in `fields` (`head` first, then each job's
    /// fields), the queues' calls at once (the connection pipelines them); each queue's reply.
    /// Jobs of no known queue are left out. A call is atomic per queue: when one queue's call
    /// fails, the others may have been applied (an ack retried then finds them fenced).
    pub(crate) async fn per_queue(
        &self,
        script: &Script,
        fields: Vec<(i64, Vec<String>)>,
        head: impl Fn(&QueueName) -> Vec<String>,
    ) -> QueueResult<Vec<(String, Value)>> {
        let groups = self.by_queue(fields).await?;
        let mut calls = Vec::with_capacity(groups.len());
        for (queue, rows) in groups {
            let mut args = head(&queue_name(&queue)?);
            args.extend(rows.into_iter().flatten());
            calls.push(async move {
                let reply = self.run(script, &self.qkey(&queue), &args).await?;
                Ok::<_, QueueError>((queue, reply))
            });
        }
        futures::future::try_join_all(calls).await
    }

    /// [`RedisDriver::per_queue`] for scripts that answer the ids they acted on.
    pub(crate) async fn ack_ids(
        &self,
        script: &Script,
        fields: Vec<(i64, Vec<String>)>,
        head: impl Fn(&QueueName) -> Vec<String>,
    ) -> QueueResult<Vec<JobId>> {
        let mut done = Vec::new();
        for (_, reply) in self.per_queue(script, fields, head).await? {
            for v in items(&reply)? {
                done.push(JobId(int(v, "job id")?));
            }
        }
        Ok(done)
    }
}
