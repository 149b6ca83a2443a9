//! The fleet: worker registrations, leadership terms and queue control (pause, limits).

use std::time::Duration;

use cowans_core::{
    QueueName, Wakeup,
    queue::{LeaderTerm, QueueControl, QueueResult, RateLimit, WorkerInfo},
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
    let v: Vec<Option<String>> = redis::cmd("HMGET")
        .arg(format!("{}:control", d.qkey(queue)))
        .arg(&[
            "paused",
            "concurrency",
            "rate_jobs",
            "rate_period_ms",
            "rate_by_key",
        ])
        .query_async(&mut conn)
        .await
        .map_err(map_err)?;
    let num = |i: usize| {
        v.get(i)
            .cloned()
            .flatten()
            .and_then(|t| t.parse::<u64>().ok())
    };
    Ok(QueueControl {
        paused: v.first().cloned().flatten().as_deref() == Some("1"),
        concurrency_limit: num(1).map(|c| c as u32),
        rate: match (num(2), num(3)) {
            (Some(jobs), Some(ms)) => Some(RateLimit {
                jobs: jobs as u32,
                period: Duration::from_millis(ms),
                by_key: v.get(4).cloned().flatten().as_deref() == Some("1"),
            }),
            _ => None,
        },
    })
}

pub(crate) async fn set_limits(
    d: &RedisDriver,
    queue: &QueueName,
    concurrency: Option<u32>,
    rate: Option<RateLimit>,
) -> QueueResult<bool> {
    RateLimit::check_limits(concurrency, rate)?;
    d.remember_queue(queue).await?;
    let opt = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
    let changed = d
        .run(
            &scripts::SET_LIMITS,
            &d.qkey(queue.as_str()),
            &[
                opt(concurrency.map(u64::from)),
                opt(rate.map(|r| u64::from(r.jobs))),
                opt(rate.map(|r| r.period.as_millis() as u64)),
                rate.map(|r| if r.by_key { "1" } else { "0" }.to_owned())
                    .unwrap_or_default(),
                d.channel(),
                Wakeup::Control {
                    queue: queue.clone(),
                }
                .encode(),
            ],
        )
        .await?;
    Ok(int(&changed, "changed")? == 1)
}

pub(crate) async fn set_paused(
    d: &RedisDriver,
    queue: &QueueName,
    paused: bool,
) -> QueueResult<()> {
    d.remember_queue(queue).await?;
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
