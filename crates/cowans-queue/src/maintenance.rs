//! Maintenance services, run only by the elected leader: the rescuer (expired leases become
//! retries or dead letters) and the worker-registry janitor.

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::{engine::EngineInner, metrics};

pub(crate) const ROLE: &str = "maintenance";
const RESCUE_BATCH: i64 = 1000;

pub(crate) async fn run(engine: Arc<EngineInner>, stop: CancellationToken) {
    let cfg = &engine.config;
    let tick_every = (cfg.leader_ttl / 3).min(cfg.rescue_interval);
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leading = false;
    let mut last_rescue: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        match cowans_store::try_lead(&engine.pool, ROLE, engine.worker_id, cfg.leader_ttl).await {
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
        if !leading || last_rescue.is_some_and(|t| t.elapsed() < cfg.rescue_interval) {
            continue;
        }
        last_rescue = Some(tokio::time::Instant::now());
        rescue(&engine).await;
        if let Err(e) = cowans_store::forget_stale_workers(&engine.pool, cfg.lease_ttl * 3).await {
            tracing::warn!(error = %e, "could not prune stale worker rows");
        }
    }
    if leading
        && let Err(e) = cowans_store::resign_leader(&engine.pool, ROLE, engine.worker_id).await
    {
        tracing::warn!(error = %e, "could not resign leadership; it lapses with its lease");
    }
}

async fn rescue(engine: &EngineInner) {
    loop {
        match cowans_store::rescue_expired(&engine.pool, RESCUE_BATCH).await {
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
