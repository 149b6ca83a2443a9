//! The engine in process (apalis workers over `PgBackend`, real Postgres) with short timings,
//! running the demo kinds or a handler that records how many run at once.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use apalis_core::{error::BoxDynError, task::data::Data, worker::builder::WorkerBuilder};
use cowans_core::{JobId, JobState};
use cowans_queue::{Engine, EngineConfig, QueueConfig};
use cowans_store::{self as store, NewJob};
use cowans_testkit::{TestDb, wait_for};
use cowans_tests::queue;
use serde_json::Value;

pub(crate) use cowans_tests::{fast_engine as fast, quick_retries, run_demo};

pub(crate) async fn engine(db: &TestDb, config: EngineConfig) -> Engine {
    Engine::start(db.pool.clone(), config, vec!["t".into()], 10)
        .await
        .expect("engine starts")
}

pub(crate) async fn finished(db: &TestDb, id: JobId) -> cowans_store::JobRecord {
    wait_for(
        "the job to reach a final state",
        Duration::from_secs(15),
        || async {
            store::get_job(&db.pool, id)
                .await
                .unwrap()
                .filter(|j| j.state.is_final())
        },
    )
    .await
}

/// Waits until `q` has exactly `n` jobs in `state`.
pub(crate) async fn wait_count(db: &TestDb, q: &str, state: JobState, n: i64, deadline: Duration) {
    wait_for(&format!("{n} {state} jobs in {q}"), deadline, || async {
        let c = store::count_by_state(&db.pool, q).await.unwrap();
        c.contains(&(state, n)).then_some(())
    })
    .await
}

pub(crate) async fn enqueue(db: &TestDb, q: &str, kind: &str, args: Value) -> JobId {
    store::enqueue(&db.pool, &NewJob::new(queue(q), kind, args))
        .await
        .unwrap()
        .id
}

#[derive(Clone, Default)]
pub(crate) struct Gauge {
    pub(crate) now: Arc<AtomicUsize>,
    pub(crate) max: Arc<AtomicUsize>,
    pub(crate) started: Arc<Mutex<Vec<Instant>>>,
    /// Handlers that returned (their acks may not be written yet).
    pub(crate) finished: Arc<AtomicUsize>,
}

/// Runs for the job's `ms` (default 40; 0 = just yield), recording how many run at once.
async fn busy(args: Value, g: Data<Gauge>) -> Result<(), BoxDynError> {
    g.started.lock().unwrap().push(Instant::now());
    let now = g.now.fetch_add(1, Ordering::SeqCst) + 1;
    g.max.fetch_max(now, Ordering::SeqCst);
    match args.get("ms").and_then(Value::as_u64).unwrap_or(40) {
        0 => tokio::task::yield_now().await,
        ms => tokio::time::sleep(Duration::from_millis(ms)).await,
    }
    g.now.fetch_sub(1, Ordering::SeqCst);
    g.finished.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

pub(crate) fn run_busy(engine: &Engine, q: &str, concurrency: usize) -> Gauge {
    let gauge = Gauge::default();
    let backend = engine.backend::<Value>(QueueConfig::new(queue(q)).concurrency(concurrency));
    let worker = WorkerBuilder::new(q)
        .backend(backend)
        .data(gauge.clone())
        .build(busy);
    tokio::spawn(worker.run());
    gauge
}
