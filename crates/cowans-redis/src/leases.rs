//! Leases: heartbeats extend them, the rescue of expired ones retries or dead-letters the job.

use std::time::Duration;

use cowans_core::{
    JobId, Wakeup,
    queue::{LEASE_EXPIRED, LeaseRef, QueueResult, Rescued, WorkerInfo},
};

use crate::{
    RedisDriver,
    keys::queue_name,
    scripts,
    value::{at, int, items, millis, text},
};

pub(crate) async fn heartbeat(
    d: &RedisDriver,
    worker: &WorkerInfo,
    running: &[LeaseRef],
    lease_ttl: Duration,
) -> QueueResult<Vec<JobId>> {
    d.upsert_worker(worker).await?;
    if running.is_empty() {
        return Ok(Vec::new());
    }
    let fields = running
        .iter()
        .map(|r| (r.id.0, vec![r.id.0.to_string(), r.lease.to_string()]))
        .collect();
    let ttl = millis(lease_ttl);
    d.ack_ids(&scripts::EXTEND, fields, |_| vec![ttl.clone()])
        .await
}

pub(crate) async fn rescue_expired(d: &RedisDriver, limit: i64) -> QueueResult<Rescued> {
    let mut out = Rescued::default();
    let mut left = limit.max(0);
    for queue in d.known_queues().await? {
        if left == 0 {
            break;
        }
        let name = queue_name(&queue)?;
        let reply = d
            .run(
                &scripts::RESCUE,
                &d.qkey(&queue),
                &[
                    left.to_string(),
                    LEASE_EXPIRED.to_owned(),
                    d.channel(),
                    Wakeup::Runnable { queue: name }.encode(),
                ],
            )
            .await?;
        for row in items(&reply)? {
            let f = items(row)?;
            let kind = text(at(f, 0, "kind")?, "kind")?;
            if int(at(f, 1, "dead")?, "dead")? == 1 {
                out.dead.push((queue.clone(), kind));
            } else {
                out.retried.push((queue.clone(), kind));
            }
            left -= 1;
        }
    }
    Ok(out)
}
