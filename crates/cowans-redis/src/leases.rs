//! Leases: heartbeats extend them, the rescue of expired ones retries or dead-letters the job.

use std::time::Duration;

use cowans_core::{
    JobId, Wakeup,
    queue::{LEASE_EXPIRED, LeaseRef, QueueError, QueueResult, Rescued, WorkerInfo},
};

use crate::{
    RedisDriver,
    acks::fenced,
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
    let ttl = millis(lease_ttl);
    let extend = async {
        if running.is_empty() {
            return Ok(Vec::new());
        }
        d.ack_ids(&scripts::EXTEND, fenced(running), |_| vec![ttl.clone()])
            .await
    };
    let ((), held) = tokio::try_join!(d.upsert_worker(worker), extend)?;
    Ok(held)
}

pub(crate) async fn rescue_expired(d: &RedisDriver, limit: i64) -> QueueResult<Rescued> {
    // Every known queue at once, each up to `limit` (the caller calls again while a pass
    // comes back full).
    let limit = limit.max(0).to_string();
    let calls = d.known_queues().await?.into_iter().map(|queue| {
        let limit = limit.clone();
        async move {
            let name = queue_name(&queue)?;
            let reply = d
                .run(
                    &scripts::RESCUE,
                    &d.qkey(&queue),
                    &[
                        limit,
                        LEASE_EXPIRED.to_owned(),
                        d.channel(),
                        Wakeup::Runnable { queue: name }.encode(),
                    ],
                )
                .await?;
            Ok::<_, QueueError>((queue, reply))
        }
    });
    let mut out = Rescued::default();
    for (queue, reply) in futures::future::try_join_all(calls).await? {
        for row in items(&reply)? {
            let f = items(row)?;
            let kind = text(at(f, 0, "kind")?, "kind")?;
            if int(at(f, 1, "dead")?, "dead")? == 1 {
                out.dead.push((queue.clone(), kind));
                out.dead_ids.push(JobId(int(at(f, 2, "id")?, "id")?));
            } else {
                out.retried.push((queue.clone(), kind));
            }
        }
    }
    Ok(out)
}
