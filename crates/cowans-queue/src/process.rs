//! Running a set of queues in this process until a shutdown signal: one apalis worker per
//! queue, all dispatching through one [`KindRouter`].

use std::future::Future;

use apalis_core::worker::builder::WorkerBuilder;
use serde_json::Value;

use crate::{Engine, KindRouter, QueueConfig, ShutdownReport};

/// Runs `queues` until `shutdown` resolves, then shuts the engine down gracefully (drain to the
/// deadline, hand back the rest). Handlers still running after that are dropped.
pub async fn run_queues(
    engine: &Engine,
    queues: Vec<QueueConfig>,
    router: KindRouter,
    shutdown: impl Future<Output = ()>,
) -> ShutdownReport {
    let mut workers = Vec::with_capacity(queues.len());
    for queue in queues {
        let name = format!("cowans-{}", queue.queue);
        tracing::info!(queue = %queue.queue, concurrency = queue.concurrency, "consuming queue");
        let backend = engine.backend::<Value>(queue);
        let worker = WorkerBuilder::new(name.as_str())
            .backend(backend)
            .build(router.clone());
        workers.push(tokio::spawn(async move {
            if let Err(e) = worker.run().await {
                tracing::error!(worker = %name, error = %e, "worker stopped with an error");
            }
        }));
    }
    shutdown.await;
    let report = engine.shutdown().await;
    for w in workers {
        w.abort();
    }
    report
}
