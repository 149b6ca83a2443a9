//! Maintenance. Run only by the elected leader: the worker-registry janitor, the cron scheduler,
//! batch progress, the retention pruner, the queue summary and index upkeep. Run by every
//! process: the rescuer (expired leases become retries or dead letters; a killed leader must not
//! hold it back) and the queue gauges, read from the summary.

use std::{sync::Arc, time::Duration};

use cowans_core::queue::{Driver, Retention};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{EngineConfig, engine::EngineInner, index_upkeep::IndexUpkeep, metrics, scheduler};

pub(crate) const ROLE: &str = "maintenance";
const RESCUE_BATCH: i64 = 1000;
const PRUNE_BATCH: i64 = 5000;
/// Most prune statements per pass, so one pass never runs long.
const PRUNE_ROUNDS: usize = 20;
const BATCHES_PER_PASS: i64 = 200;

/// When a periodic service last ran.
struct Every {
    interval: Duration,
    last: Option<Instant>,
}

impl Every {
    fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
        }
    }

    /// Whether a pass is due at the tick scheduled for `at`. Measured between scheduled ticks
    /// (not between the passes' actual starts, which drift by the election statement before
    /// them): five 1 s ticks are exactly 5 s, so a 5 s pass never slips to the sixth tick.
    fn due(&mut self, at: Instant) -> bool {
        let due = self
            .last
            .is_none_or(|t| at.saturating_duration_since(t) >= self.interval);
        if due {
            self.last = Some(at);
        }
        due
    }
}

pub(crate) async fn run(engine: Arc<EngineInner>, stop: CancellationToken) {
    let cfg = &engine.config;
    let tick_every = (cfg.leader_ttl / 3)
        .min(cfg.rescue_interval)
        .min(cfg.maintenance_interval);
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leading = false;
    let mut rescue = Every::new(cfg.rescue_interval);
    let mut housekeeping = Every::new(cfg.maintenance_interval);
    let mut summary = Every::new(cfg.stats_interval);
    let mut upkeep = IndexUpkeep::default();
    let on_postgres = engine.driver.backend() == "postgres";
    loop {
        let at = tokio::select! {
            _ = stop.cancelled() => break,
            at = tick.tick() => at,
        };
        match engine
            .driver
            .try_lead(ROLE, engine.worker_id, cfg.leader_ttl)
            .await
        {
            Ok(term) => {
                if term.is_some() != leading {
                    tracing::info!(leader = term.is_some(), "maintenance leadership changed");
                }
                leading = term.is_some();
            }
            Err(e) => {
                tracing::warn!(error = %e, "leader election failed");
                leading = false;
            }
        }
        // Every process rescues, not only the leader: the statement is safe to run concurrently
        // (SKIP LOCKED, state rechecked under the lock) and cheap (the lease index), and a
        // SIGKILLed leader keeps its term until it expires — rescues waiting for its successor
        // took up to lease TTL + leader TTL + a pass in `cowans-bench chaos --scenarios kill`.
        let rescue_due = rescue.due(at);
        if rescue_due {
            rescue_expired(&engine).await;
        }
        if !leading {
            continue;
        }
        metrics::leader_pass();
        if rescue_due && let Err(e) = engine.driver.forget_stale_workers(cfg.lease_ttl * 3).await {
            tracing::warn!(error = %e, "could not prune stale worker rows");
        }
        if housekeeping.due(at) {
            // Cron, batches and index upkeep are Postgres-only services: a process whose
            // queues are elsewhere leaves them to the Postgres fleet's leader.
            if on_postgres {
                if let Err(e) = scheduler::fire_due(&engine.pool, &*engine.driver).await {
                    tracing::warn!(error = %e, "cron pass failed");
                }
                match crate::refresh_batches(&engine.pool, &*engine.driver, BATCHES_PER_PASS).await
                {
                    Ok(r) if !r.finished.is_empty() => {
                        tracing::info!(batches = ?r.finished, "batches finished")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "batch progress pass failed"),
                }
            }
            prune(&engine).await;
            if on_postgres {
                upkeep.pass(&engine).await;
            }
        }
        if summary.due(at)
            && let Err(e) = engine.driver.refresh_queue_stats().await
        {
            tracing::warn!(error = %e, "queue summary refresh failed");
        }
    }
    upkeep.stop();
    if leading && let Err(e) = engine.driver.resign_leader(ROLE, engine.worker_id).await {
        tracing::warn!(error = %e, "could not resign leadership; it lapses with its lease");
    }
}

/// Publishes the leader's queue summary (`cowans_queue_*` gauges) every `stats_interval` until
/// `stop`. Every worker process runs it; so does the API, so its `/metrics` shows the queues too.
pub async fn export_queue_gauges(
    driver: Arc<dyn Driver>,
    config: EngineConfig,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(config.stats_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match driver.queue_stats(None, config.lease_ttl).await {
            Ok(stats) => metrics::queue_stats(&stats),
            Err(e) => tracing::debug!(error = %e, "could not read the queue summary"),
        }
    }
}

async fn prune(engine: &EngineInner) {
    let retention = Retention {
        finished: engine.config.retain_finished,
        dead: engine.config.retain_dead,
    };
    for _ in 0..PRUNE_ROUNDS {
        match engine.driver.prune(retention, PRUNE_BATCH).await {
            Ok(p) => {
                if p.finished > 0 || p.dead > 0 {
                    tracing::debug!(
                        finished = p.finished,
                        dead = p.dead,
                        batches = p.batches,
                        "pruned"
                    );
                }
                if p.finished < PRUNE_BATCH as u64 && p.dead < PRUNE_BATCH as u64 {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "prune pass failed");
                return;
            }
        }
    }
}

async fn rescue_expired(engine: &EngineInner) {
    loop {
        match engine.driver.rescue_expired(RESCUE_BATCH).await {
            Ok(r) => {
                for (queue, kind) in &r.retried {
                    metrics::outcome(metrics::RESCUED, queue, kind);
                }
                for (queue, kind) in &r.dead {
                    metrics::outcome(metrics::RESCUED, queue, kind);
                    metrics::outcome(metrics::DEAD, queue, kind);
                }
                let n = r.retried.len() + r.dead.len();
                if n > 0 {
                    tracing::info!(
                        retried = r.retried.len(),
                        dead = r.dead.len(),
                        "rescued jobs with expired leases"
                    );
                }
                if (n as i64) < RESCUE_BATCH {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "rescue pass failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod every_tests {
    use super::*;

    #[test]
    fn a_pass_every_five_ticks_of_a_second_falls_on_every_fifth_tick() {
        let t0 = Instant::now();
        let mut every = Every::new(Duration::from_secs(5));
        let passes: Vec<u64> = (0..=20)
            .filter(|s| every.due(t0 + Duration::from_secs(*s)))
            .collect();
        assert_eq!(passes, [0, 5, 10, 15, 20]);
    }
}
