//! Claims and the promotion of due scheduled jobs.

use std::time::Duration;

use chrono::{DateTime, Utc};
use cowans_core::{
    QueueName, Wakeup,
    queue::{ClaimCursor, ClaimedJob, Promotion, QueueResult},
};
use redis::Value;
use uuid::Uuid;

use crate::{
    RedisDriver, scripts,
    value::{at, int, items, millis, narrow, opt_int, opt_text, text, time},
};

pub(crate) async fn claim(
    d: &RedisDriver,
    queue: &QueueName,
    limit: usize,
    worker: Uuid,
    lease_ttl: Duration,
    _after: Option<&ClaimCursor>,
) -> QueueResult<Vec<ClaimedJob>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let reply = d
        .run(
            &scripts::CLAIM,
            &d.qkey(queue.as_str()),
            &[limit.to_string(), millis(lease_ttl), worker.to_string()],
        )
        .await?;
    let jobs = items(&reply)?
        .iter()
        .map(|row| claimed(queue.as_str(), row))
        .collect::<QueueResult<Vec<_>>>()?;
    Ok(jobs)
}

fn claimed(queue: &str, row: &Value) -> QueueResult<ClaimedJob> {
    let f = items(row)?;
    let id = int(at(f, 0, "id")?, "id")?;
    Ok(ClaimedJob {
        id,
        queue: queue.to_owned(),
        kind: text(at(f, 1, "kind")?, "kind")?,
        args: text(at(f, 2, "args")?, "args")?,
        priority: narrow(int(at(f, 3, "priority")?, "priority")?, "priority")?,
        attempt: narrow(int(at(f, 4, "attempt")?, "attempt")?, "attempt")?,
        max_attempts: narrow(
            int(at(f, 5, "max_attempts")?, "max_attempts")?,
            "max_attempts",
        )?,
        lease: int(at(f, 6, "lease")?, "lease")?,
        run_at: time(int(at(f, 7, "run_at")?, "run_at")?, "run_at")?,
        created_at: time(int(at(f, 8, "created_at")?, "created_at")?, "created_at")?,
        attempted_at: time(
            int(at(f, 9, "attempted_at")?, "attempted_at")?,
            "attempted_at",
        )?,
        rate_key: match f.get(10) {
            Some(v) => opt_text(v)?,
            None => None,
        },
    })
}

pub(crate) async fn promote_due(
    d: &RedisDriver,
    queues: &[QueueName],
    limit: i64,
) -> QueueResult<Promotion> {
    let mut left = limit.max(0);
    let mut promoted = 0u64;
    let mut next_due: Option<DateTime<Utc>> = None;
    for queue in queues {
        let reply = d
            .run(
                &scripts::PROMOTE,
                &d.qkey(queue.as_str()),
                &[
                    left.to_string(),
                    d.channel(),
                    Wakeup::Runnable {
                        queue: queue.clone(),
                    }
                    .encode(),
                ],
            )
            .await?;
        let a = items(&reply)?;
        let n = int(at(a, 0, "promoted")?, "promoted")?;
        left = (left - n).max(0);
        promoted += n.max(0) as u64;
        if let Some(ms) = match a.get(1) {
            Some(v) => opt_int(v, "next due")?,
            None => None,
        } {
            let t = time(ms, "next due")?;
            next_due = Some(next_due.map_or(t, |d| d.min(t)));
        }
    }
    Ok(Promotion { promoted, next_due })
}
