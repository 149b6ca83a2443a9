//! The heartbeat: one transaction every interval marks the process alive (registering it again
//! if the leader forgot it during an outage) and extends the leases of every job it holds.

use std::{collections::HashSet, sync::Arc};

use tokio_util::sync::CancellationToken;

use crate::engine::EngineInner;

pub(crate) async fn run(engine: Arc<EngineInner>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(engine.config.heartbeat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let held = engine.in_flight.snapshot();
        match engine
            .driver
            .heartbeat(&engine.info, &held, engine.config.lease_ttl)
            .await
        {
            Ok(kept) => {
                if kept.len() < held.len() {
                    let kept: HashSet<_> = kept.into_iter().collect();
                    // Acked meanwhile (normal), or cancelled/rescued: tell those handlers to stop
                    // (this also covers a cancellation whose notification was lost).
                    let stopped = engine.in_flight.cancel_lost(&held, &kept);
                    if stopped > 0 {
                        tracing::info!(
                            stopped,
                            "held jobs lost their lease (cancelled or rescued); their handlers were told to stop"
                        );
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat failed; leases expire if this persists")
            }
        }
        if let Err(e) = engine
            .limiter
            .extend(engine.worker_id, engine.config.lease_ttl)
            .await
        {
            tracing::warn!(error = %e, "could not extend concurrency permits");
        }
    }
}
