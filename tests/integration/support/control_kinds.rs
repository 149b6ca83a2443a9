//! The engine in process (apalis workers over `PgBackend`, real Postgres) with short timings,
//! fast maintenance and a short cancel grace, running the control kinds: `obedient` stops when
//! told, `stubborn` ignores cancellation, `slow` sleeps `ms`; each logs when it starts.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use apalis_core::{error::BoxDynError, task::task_fn::task_fn, worker::builder::WorkerBuilder};
use cowans_core::{JobId, JobState, RetryPolicy};
use cowans_queue::{Engine, EngineConfig, JobMeta, KindRouter, QueueConfig};
use cowans_store as store;
use cowans_testkit::{TestDb, wait_for};
use serde_json::Value;

fn fast() -> EngineConfig {
    EngineConfig {
        heartbeat_interval: Duration::from_millis(300),
        cancel_grace: Duration::from_millis(300),
        maintenance_interval: Duration::from_millis(100),
        stats_interval: Duration::from_millis(200),
        ..cowans_tests::fast_engine()
    }
}

pub(crate) async fn engine(db: &TestDb) -> Engine {
    Engine::start(db.pool.clone(), fast(), vec!["t".into()], 10)
        .await
        .expect("engine starts")
}

pub(crate) fn retries(max_attempts: i32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(50),
        jitter: 0.0,
    }
}

pub(crate) fn spawn_worker(engine: &Engine, config: QueueConfig, router: KindRouter) {
    let name = config.queue.to_string();
    let worker = WorkerBuilder::new(name.as_str())
        .backend(engine.backend::<Value>(config))
        .build(router);
    tokio::spawn(worker.run());
}

pub(crate) async fn state_becomes(db: &TestDb, id: JobId, state: JobState, within: Duration) {
    wait_for(&format!("job {id} to be {state}"), within, || async {
        let j = store::get_job(&db.pool, id).await.unwrap()?;
        (j.state == state).then_some(())
    })
    .await
}

pub(crate) type Log = Arc<Mutex<Vec<(String, Instant)>>>;

/// `obedient` stops when told; `stubborn` ignores cancellation; `slow` sleeps `ms`.
pub(crate) fn control_router(log: Log) -> KindRouter {
    let (a, b, c) = (log.clone(), log.clone(), log);
    KindRouter::new()
        .route(
            "obedient",
            task_fn(move |_: Value, job: JobMeta| {
                let log = a.clone();
                async move {
                    log.lock().unwrap().push(("obedient started".into(), Instant::now()));
                    tokio::select! {
                        _ = job.cancelled() => log.lock().unwrap().push(("obedient saw cancel".into(), Instant::now())),
                        _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                    }
                    Ok::<(), BoxDynError>(())
                }
            }),
        )
        .route(
            "stubborn",
            task_fn(move |_: Value| {
                let log = b.clone();
                async move {
                    log.lock().unwrap().push(("stubborn started".into(), Instant::now()));
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    log.lock().unwrap().push(("stubborn finished".into(), Instant::now()));
                    Ok::<(), BoxDynError>(())
                }
            }),
        )
        .route(
            "slow",
            task_fn(move |a: Value, job: JobMeta| {
                let log = c.clone();
                async move {
                    log.lock().unwrap().push((format!("slow {}", job.id), Instant::now()));
                    let ms = a["ms"].as_u64().unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Ok::<(), BoxDynError>(())
                }
            }),
        )
}
