//! Wake-ups: a pub/sub subscription to the prefix's channel, re-established when lost. A Redis
//! Cluster forwards every classic `PUBLISH` to all its nodes, so one node's subscription hears
//! the wake-ups of every queue.

use std::{sync::Arc, time::Duration};

use cowans_core::{Wakeup, queue::WakeupSink};
use futures::StreamExt;

use crate::RedisDriver;

pub(crate) async fn listen(d: &RedisDriver, sink: Arc<dyn WakeupSink>) {
    let channel = d.channel();
    let mut turn = 0usize;
    loop {
        // A lost subscription moves on to the next server (on a cluster: the next node given).
        let Some(client) = d.subscribers.get(turn % d.subscribers.len().max(1)) else {
            return;
        };
        turn = turn.wrapping_add(1);
        let mut pubsub = match client.get_async_pubsub().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to wake-ups, retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = pubsub.subscribe(&channel).await {
            tracing::warn!(error = %e, "cannot subscribe to wake-ups, retrying in 1 s");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // Anything published while we were not subscribed is lost: look now.
        sink.missed();
        let mut messages = pubsub.on_message();
        while let Some(msg) = messages.next().await {
            match msg.get_payload::<String>() {
                Ok(payload) => match Wakeup::parse(&payload) {
                    Some(w) => sink.wake(w),
                    None => tracing::debug!(payload, "ignoring unknown wake-up"),
                },
                Err(e) => tracing::debug!(error = %e, "ignoring unreadable wake-up"),
            }
        }
        // A server that keeps dropping subscribers must not make us spin (each `missed()`
        // sends every producer to the head of its queue): wait before the next attempt.
        tracing::warn!("wake-up subscription lost, reconnecting in 1 s");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
