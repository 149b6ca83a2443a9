//! The fleet: worker registrations, leadership terms and queue control (pause).

use std::time::Duration;

use cowans_core::{
    QueueName, Wakeup,
    queue::{LeaderTerm, QueueControl, QueueResult, WorkerInfo},
};
use uuid::Uuid;

use crate::{
    RedisDriver, scripts,
    value::{bad, int, map_err, millis, opt_int},
};

impl RedisDriver {
    pub(crate) async fn upsert_worker(&self, info: &WorkerInfo) -> QueueResult<()> {
        let json = serde_json::to_string(info).map_err(|e| bad(e.to_string()))?;
        self.run(
            &scripts::WORKER_SEEN,
            &self.global(),
            &[info.id.to_string(), json],
        )
        .await?;
        Ok(())
    }
}

pub(crate) async fn deregister_worker(d: &RedisDriver, id: Uuid) -> QueueResult<()> {
    // A script rather than MULTI: one atomic call a cluster client routes like any other.
    d.run(&scripts::WORKER_GONE, &d.global(), &[id.to_string()])
        .await?;
    Ok(())
}

pub(crate) async fn forget_stale_workers(
    d: &RedisDriver,
    older_than: Duration,
) -> QueueResult<u64> {
    let reply = d
        .run(&scripts::WORKERS_FORGET, &d.global(), &[millis(older_than)])
        .await?;
    Ok(int(&reply, "forgotten")?.max(0) as u64)
}

pub(crate) async fn try_lead(
    d: &RedisDriver,
    role: &str,
    holder: Uuid,
    ttl: Duration,
) -> QueueResult<Option<LeaderTerm>> {
    let reply = d
        .run(
            &scripts::LEAD,
            &d.global(),
            &[
                role.to_owned(),
                holder.to_string(),
                millis(ttl.max(Duration::from_millis(1))),
            ],
        )
        .await?;
    Ok(opt_int(&reply, "term")?.map(LeaderTerm))
}

pub(crate) async fn resign_leader(d: &RedisDriver, role: &str, holder: Uuid) -> QueueResult<()> {
    d.run(
        &scripts::RESIGN,
        &d.global(),
        &[role.to_owned(), holder.to_string()],
    )
    .await?;
    Ok(())
}

pub(crate) async fn queue_control(d: &RedisDriver, queue: &str) -> QueueResult<QueueControl> {
    let mut conn = d.conn.clone();
    let paused: Option<String> = redis::cmd("HGET")
        .arg(format!("{}:control", d.qkey(queue)))
        .arg("paused")
        .query_async(&mut conn)
        .await
        .map_err(map_err)?;
    Ok(QueueControl {
        paused: paused.as_deref() == Some("1"),
        concurrency_limit: None,
        rate: None,
    })
}

pub(crate) async fn set_paused(
    d: &RedisDriver,
    queue: &QueueName,
    paused: bool,
) -> QueueResult<()> {
    let mut conn = d.conn.clone();
    let _: i64 = redis::cmd("SADD")
        .arg(format!("{}:queues", d.global()))
        .arg(queue.as_str())
        .query_async(&mut conn)
        .await
        .map_err(map_err)?;
    d.run(
        &scripts::SET_PAUSED,
        &d.qkey(queue.as_str()),
        &[
            if paused { "1" } else { "0" }.to_owned(),
            d.channel(),
            Wakeup::Control {
                queue: queue.clone(),
            }
            .encode(),
        ],
    )
    .await?;
    Ok(())
}
