//! Engine control in process (apalis workers over `PgBackend`, real Postgres): cancelling
//! running jobs, timeouts, rate limits, batches with progress events and callbacks.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use apalis_core::{
    error::BoxDynError,
    task::{data::Data, task_fn::task_fn},
    worker::builder::WorkerBuilder,
};
use cowans_core::{JobId, JobState, RetryPolicy};
use cowans_queue::{Engine, EngineConfig, JobMeta, KindRouter, QueueConfig};
use cowans_store::{self as store, BatchCallback, NewJob, RateLimit};
use cowans_testkit::{TestDb, wait_for};
use cowans_tests::queue;
use serde_json::{Value, json};

fn fast() -> EngineConfig {
    EngineConfig {
        lease_ttl: Duration::from_secs(2),
        heartbeat_interval: Duration::from_millis(300),
        poll_interval: Duration::from_millis(200),
        leader_ttl: Duration::from_secs(1),
        rescue_interval: Duration::from_millis(200),
        shutdown_timeout: Duration::from_secs(5),
        cancel_grace: Duration::from_millis(300),
        maintenance_interval: Duration::from_millis(100),
        stats_interval: Duration::from_millis(200),
        ..EngineConfig::default()
    }
}

async fn engine(db: &TestDb) -> Engine {
    Engine::start(db.pool.clone(), fast(), vec!["t".into()], 10)
        .await
        .expect("engine starts")
}

fn retries(max_attempts: i32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(50),
        jitter: 0.0,
    }
}

fn spawn_worker(engine: &Engine, config: QueueConfig, router: KindRouter) {
    let name = config.queue.to_string();
    let worker = WorkerBuilder::new(name.as_str())
        .backend(engine.backend::<Value>(config))
        .build(router);
    tokio::spawn(worker.run());
}

async fn enqueue(db: &TestDb, job: NewJob) -> JobId {
    store::enqueue(&db.pool, &job).await.unwrap().id
}

async fn state_becomes(db: &TestDb, id: JobId, state: JobState, within: Duration) {
    wait_for(&format!("job {id} to be {state}"), within, || async {
        let j = store::get_job(&db.pool, id).await.unwrap()?;
        (j.state == state).then_some(())
    })
    .await
}

type Log = Arc<Mutex<Vec<(String, Instant)>>>;

/// `obedient` stops when told; `stubborn` ignores cancellation; `slow` sleeps `ms`.
fn control_router(log: Log) -> KindRouter {
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

fn started(log: &Log, what: &str) -> bool {
    log.lock().unwrap().iter().any(|(w, _)| w == what)
}

/// A worker of concurrency 1 on `q` with the control kinds, running one `kind` job: its id once
/// the handler has started, and the log the handlers write.
async fn run_one(db: &TestDb, engine: &Engine, q: &str, kind: &str) -> (JobId, Log) {
    let log: Log = Default::default();
    spawn_worker(
        engine,
        QueueConfig::new(queue(q)).concurrency(1).retry(retries(5)),
        control_router(log.clone()),
    );
    let id = enqueue(db, NewJob::new(queue(q), kind, json!({}))).await;
    let start = format!("{kind} started");
    wait_for("the handler to start", Duration::from_secs(10), || async {
        started(&log, &start).then_some(())
    })
    .await;
    (id, log)
}

#[tokio::test]
async fn cancelling_a_running_job_signals_its_handler_and_it_ends_cancelled() {
    let db = TestDb::new().await;
    let engine = engine(&db).await;
    let (id, log) = run_one(&db, &engine, "cx", "obedient").await;
    let t0 = Instant::now();
    let cancelled = store::cancel_jobs(&db.pool, &[id]).await.unwrap();
    assert_eq!(cancelled[0].was, JobState::Running);
    wait_for(
        "the handler to see the cancellation",
        Duration::from_secs(5),
        || async { started(&log, "obedient saw cancel").then_some(()) },
    )
    .await;
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "signalled by NOTIFY, took {:?}",
        t0.elapsed()
    );
    // Its Ok result is discarded: the job stays cancelled and is never retried.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let job = store::get_job(&db.pool, id).await.unwrap().unwrap();
    assert_eq!((job.state, job.attempt), (JobState::Cancelled, 1));
    engine.shutdown().await;
}

#[tokio::test]
async fn a_handler_that_ignores_cancellation_is_dropped_after_the_grace_and_frees_its_slot() {
    let db = TestDb::new().await;
    let engine = engine(&db).await;
    let (id, log) = run_one(&db, &engine, "cy", "stubborn").await;
    let next = enqueue(&db, NewJob::new(queue("cy"), "slow", json!({"ms": 0}))).await;
    store::cancel_jobs(&db.pool, &[id]).await.unwrap();
    // Concurrency 1: the next job can only run once the stubborn handler was dropped.
    state_becomes(&db, next, JobState::Completed, Duration::from_secs(5)).await;
    assert!(!started(&log, "stubborn finished"));
    let job = store::get_job(&db.pool, id).await.unwrap().unwrap();
    assert_eq!((job.state, job.attempt), (JobState::Cancelled, 1));
    engine.shutdown().await;
}

#[tokio::test]
async fn a_timed_out_attempt_fails_and_is_retried_per_its_policy() {
    let db = TestDb::new().await;
    let engine = engine(&db).await;
    let log: Log = Default::default();
    let config = QueueConfig::new(queue("to"))
        .concurrency(4)
        .retry(retries(2))
        .timeout(Some(Duration::from_secs(60)))
        .timeout_for("slow", Duration::from_millis(200));
    spawn_worker(&engine, config, control_router(log.clone()));
    let slow = enqueue(
        &db,
        NewJob::new(queue("to"), "slow", json!({"ms": 5000})).max_attempts(2),
    )
    .await;
    let quick = enqueue(&db, NewJob::new(queue("to"), "slow", json!({"ms": 10}))).await;
    state_becomes(&db, quick, JobState::Completed, Duration::from_secs(5)).await;
    state_becomes(&db, slow, JobState::Dead, Duration::from_secs(5)).await;
    let job = store::get_job(&db.pool, slow).await.unwrap().unwrap();
    assert_eq!(job.attempt, 2, "retried once, then out of attempts");
    assert_eq!(job.errors.len(), 2);
    assert!(
        job.errors
            .iter()
            .all(|e| e.error.contains("timed out after 200ms")),
        "{:?}",
        job.errors
    );
    engine.shutdown().await;
}

fn starts(log: &Log) -> Vec<Instant> {
    let mut v: Vec<Instant> = log.lock().unwrap().iter().map(|(_, t)| *t).collect();
    v.sort();
    v
}

/// A worker of concurrency 20 with the control kinds on `q`, limited to `jobs` a second (per
/// job rate key if `by_key`); the engine and the log its handlers write.
async fn rate_limited_worker(db: &TestDb, q: &str, jobs: u32, by_key: bool) -> (Engine, Log) {
    let rate = RateLimit {
        jobs,
        period: Duration::from_secs(1),
        by_key,
    };
    store::set_queue_limits(&db.pool, &cowans_tests::queue(q), None, Some(rate))
        .await
        .unwrap();
    let engine = engine(db).await;
    let log: Log = Default::default();
    spawn_worker(
        &engine,
        QueueConfig::new(queue(q)).concurrency(20),
        control_router(log.clone()),
    );
    (engine, log)
}

#[tokio::test]
async fn a_queue_rate_limit_spaces_job_starts() {
    let db = TestDb::new().await;
    let (engine, log) = rate_limited_worker(&db, "rl", 4, false).await;
    let jobs: Vec<NewJob> = (0..10)
        .map(|_| NewJob::new(queue("rl"), "slow", json!({"ms": 0})))
        .collect();
    store::enqueue_many(&db.pool, &jobs).await.unwrap();
    wait_for("ten starts", Duration::from_secs(10), || async {
        (starts(&log).len() == 10).then_some(())
    })
    .await;
    let s = starts(&log);
    // A burst of 4, then one every 250 ms: the 10th start is ≥ 1.5 s after the first.
    let span = s[9] - s[0];
    assert!(
        span >= Duration::from_millis(1400),
        "10 starts within {span:?}"
    );
    assert!(
        span <= Duration::from_millis(3500),
        "but not much slower: {span:?}"
    );
    // In any one-second window at most 4 burst + 4 refill.
    for (i, t) in s.iter().enumerate() {
        let in_window = s[i..]
            .iter()
            .filter(|u| **u - *t < Duration::from_secs(1))
            .count();
        assert!(in_window <= 8, "{in_window} starts within 1 s");
    }
    engine.shutdown().await;
}

#[tokio::test]
async fn a_per_key_rate_limit_holds_back_one_key_without_slowing_the_others() {
    let db = TestDb::new().await;
    let (engine, _) = rate_limited_worker(&db, "rk", 2, true).await;
    // Two jobs each for shop-0 and shop-1, one each for shop-2 and shop-3, then four more for
    // shop-1: six in all for shop-1 at 2/s with a burst of 2.
    let keys = ["shop-0", "shop-1", "shop-0", "shop-1", "shop-2", "shop-3"];
    let mut jobs: Vec<NewJob> = keys
        .iter()
        .map(|k| NewJob::new(queue("rk"), "slow", json!({"ms": 0})).rate_key(*k))
        .collect();
    for _ in 0..4 {
        jobs.push(NewJob::new(queue("rk"), "slow", json!({"ms": 0})).rate_key("shop-1"));
    }
    let ids: Vec<JobId> = cowans_tests::enqueue_ids(&db.pool, &jobs).await;
    let t0 = Instant::now();
    // Every key's first two jobs run at once.
    for id in &ids[..6] {
        state_becomes(&db, *id, JobState::Completed, Duration::from_secs(3)).await;
    }
    assert!(
        t0.elapsed() < Duration::from_millis(900),
        "other keys were slowed: {:?}",
        t0.elapsed()
    );
    // shop-1's other four come at 2/s: the last ~2 s after the burst.
    for id in &ids {
        state_becomes(&db, *id, JobState::Completed, Duration::from_secs(10)).await;
    }
    let last = store::get_job(&db.pool, ids[9]).await.unwrap().unwrap();
    assert_eq!(last.attempt, 1, "held-back jobs do not spend an attempt");
    assert!(
        t0.elapsed() >= Duration::from_millis(1200),
        "shop-1 finished in {:?}",
        t0.elapsed()
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_batch_reports_progress_events_and_its_callback_runs_once() {
    let db = TestDb::new().await;
    let mut events = sqlx::postgres::PgListener::connect_with(&db.pool)
        .await
        .unwrap();
    events.listen(store::EVENTS_CHANNEL).await.unwrap();
    let engine = engine(&db).await;
    let log: Log = Default::default();
    let callbacks = Arc::new(Mutex::new(Vec::<Value>::new()));
    let seen = callbacks.clone();
    let router = control_router(log.clone())
        .route(
            "flaky",
            task_fn(|_: Value, job: JobMeta| async move {
                // Fails once, then waits out a 1 s backoff: long enough to be seen as failed.
                if job.attempt == 1 {
                    return Err(cowans_core::JobError::retry_after(
                        "flaky",
                        Duration::from_secs(1),
                    ));
                }
                Ok(())
            }),
        )
        .route(
            "batch.done",
            task_fn(
                move |a: Value, seen: Data<Arc<Mutex<Vec<Value>>>>| async move {
                    seen.lock().unwrap().push(a);
                    Ok::<(), BoxDynError>(())
                },
            ),
        );
    let worker = WorkerBuilder::new("bt")
        .backend(
            engine.backend::<Value>(
                QueueConfig::new(queue("bt"))
                    .concurrency(4)
                    .retry(retries(1)),
            ),
        )
        .data(seen)
        .build(router);
    tokio::spawn(worker.run());
    let mut jobs: Vec<NewJob> = (0..20)
        .map(|_| NewJob::new(queue("bt"), "slow", json!({"ms": 30})))
        .collect();
    jobs.push(NewJob::new(queue("bt"), "unknown.kind", json!({})).max_attempts(1));
    jobs.push(NewJob::new(queue("bt"), "flaky", json!({})).max_attempts(3));
    let cb = BatchCallback {
        queue: queue("bt"),
        kind: "batch.done".into(),
        args: json!({"note": "all done"}),
    };
    let (batch, _) = store::create_batch(&db.pool, "twenty-one", &jobs, Some(&cb))
        .await
        .unwrap();

    let mut progress = Vec::new();
    let finished = loop {
        let n = tokio::time::timeout(Duration::from_secs(15), events.recv())
            .await
            .unwrap()
            .unwrap();
        let e: Value = serde_json::from_str(n.payload()).unwrap();
        assert_eq!(e["batch_id"], json!(batch));
        if e["type"] == "batch.finished" {
            break e;
        }
        progress.push(e);
    };
    assert!(!progress.is_empty(), "progress events before the end");
    assert!(
        progress.iter().any(|e| e["counts"]["failed"] == json!(1)),
        "the flaky job was counted as failed while it waited for its retry: {progress:?}"
    );
    assert_eq!(finished["counts"]["completed"], json!(21));
    assert_eq!(finished["counts"]["dead"], json!(1));
    wait_for("the callback to run", Duration::from_secs(5), || async {
        (!callbacks.lock().unwrap().is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await; // a second callback would show up by now
    let calls = callbacks.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["args"], json!({"note": "all done"}));
    assert_eq!(calls[0]["counts"]["completed"], json!(21));
    let p = store::batch_progress(&db.pool, batch)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((p.total, p.finished_jobs(), p.failed()), (22, 22, 0));
    engine.shutdown().await;
}
