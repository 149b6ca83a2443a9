//! The engine in-process: apalis workers over `PgBackend`, against real Postgres.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use apalis_core::{error::BoxDynError, task::data::Data, worker::builder::WorkerBuilder};
use cowans_core::{JobId, JobState, RetryPolicy};
use cowans_queue::{Engine, EngineConfig, JobMeta, QueueConfig};
use cowans_store::{self as store, NewJob};
use cowans_testkit::{TestDb, wait_for};
use cowans_tests::queue;
use serde::Deserialize;
use serde_json::{Value, json};

fn fast() -> EngineConfig {
    EngineConfig {
        lease_ttl: Duration::from_secs(2),
        heartbeat_interval: Duration::from_millis(500),
        poll_interval: Duration::from_millis(200),
        leader_ttl: Duration::from_secs(1),
        rescue_interval: Duration::from_millis(200),
        shutdown_timeout: Duration::from_secs(5),
        ..EngineConfig::default()
    }
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(5),
        jitter: 0.0,
    }
}

async fn engine(db: &TestDb, config: EngineConfig) -> Engine {
    Engine::start(db.pool.clone(), config, vec!["t".into()], 10)
        .await
        .expect("engine starts")
}

/// Runs the demo kinds on `q` in this process.
fn run_demo(engine: &Engine, q: &str, concurrency: usize) {
    let backend = engine.backend::<Value>(
        QueueConfig::new(queue(q))
            .concurrency(concurrency)
            .retry(quick_retries()),
    );
    let worker = WorkerBuilder::new(q)
        .backend(backend)
        .build(cowans_tests::demo_jobs(engine.pool()).router());
    tokio::spawn(worker.run());
}

async fn finished(db: &TestDb, id: JobId) -> cowans_store::JobRecord {
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
async fn wait_count(db: &TestDb, q: &str, state: JobState, n: i64, deadline: Duration) {
    wait_for(&format!("{n} {state} jobs in {q}"), deadline, || async {
        let c = store::count_by_state(&db.pool, q).await.unwrap();
        c.contains(&(state, n)).then_some(())
    })
    .await
}

async fn enqueue(db: &TestDb, q: &str, kind: &str, args: Value) -> JobId {
    store::enqueue(&db.pool, &NewJob::new(queue(q), kind, args))
        .await
        .unwrap()
        .id
}

#[derive(Debug, Deserialize)]
struct Typed {
    n: u32,
}

async fn record(t: Typed, seen: Data<Arc<Mutex<Vec<u32>>>>) -> Result<(), BoxDynError> {
    seen.lock().unwrap().push(t.n);
    Ok(())
}

#[tokio::test]
async fn a_poison_payload_is_dead_lettered_and_the_worker_keeps_running() {
    let db = TestDb::new().await;
    let engine = engine(&db, fast()).await;
    let seen = Arc::new(Mutex::new(Vec::<u32>::new()));
    let backend = engine.backend::<Typed>(QueueConfig::new(queue("typed")));
    let worker = WorkerBuilder::new("typed")
        .backend(backend)
        .data(seen.clone())
        .build(record);
    tokio::spawn(worker.run());

    let good = enqueue(&db, "typed", "typed", json!({"n": 1})).await;
    let bad = enqueue(&db, "typed", "typed", json!({"n": "not a number"})).await;
    let bad = finished(&db, bad).await;
    assert_eq!(bad.state, JobState::Dead);
    assert!(
        bad.errors[0].error.contains("does not decode"),
        "{:?}",
        bad.errors
    );
    assert!(
        bad.errors[0].error.contains("invalid type"),
        "{:?}",
        bad.errors
    );
    assert_eq!(finished(&db, good).await.state, JobState::Completed);
    let after = enqueue(&db, "typed", "typed", json!({"n": 2})).await;
    assert_eq!(finished(&db, after).await.state, JobState::Completed);
    assert_eq!(*seen.lock().unwrap(), vec![1, 2]);
    engine.shutdown().await;
}

#[tokio::test]
async fn failures_are_retried_with_exponential_backoff_then_complete() {
    let db = TestDb::new().await;
    let engine = engine(&db, fast()).await;
    run_demo(&engine, "retry", 4);
    let id = enqueue(&db, "retry", "demo.fail", json!({"times": 2})).await;
    let job = finished(&db, id).await;
    assert_eq!((job.state, job.attempt), (JobState::Completed, 3));
    assert_eq!(job.errors.len(), 2);
    assert_eq!((job.errors[0].attempt, job.errors[1].attempt), (1, 2));
    let first_gap = (job.errors[1].at - job.errors[0].at).num_milliseconds();
    let second_gap = (job.finalized_at.unwrap() - job.errors[1].at).num_milliseconds();
    assert!(
        first_gap >= 100,
        "attempt 2 waited the 100 ms backoff, waited {first_gap}"
    );
    assert!(
        second_gap >= 200,
        "attempt 3 waited the 200 ms backoff, waited {second_gap}"
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_kind_can_have_its_own_retry_policy() {
    let db = TestDb::new().await;
    let engine = engine(&db, fast()).await;
    let slow = RetryPolicy {
        base_delay: Duration::from_millis(600),
        ..quick_retries()
    };
    let backend = engine.backend::<Value>(
        QueueConfig::new(queue("kinds"))
            .retry(quick_retries())
            .retry_for("demo.fail", slow),
    );
    let worker = WorkerBuilder::new("kinds")
        .backend(backend)
        .build(cowans_tests::demo_jobs(engine.pool()).router());
    tokio::spawn(worker.run());
    let id = enqueue(&db, "kinds", "demo.fail", json!({"times": 1})).await;
    let job = finished(&db, id).await;
    let gap = (job.finalized_at.unwrap() - job.errors[0].at).num_milliseconds();
    assert!(
        gap >= 600,
        "the kind's 600 ms backoff applied, not the queue's 100 ms: {gap}"
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_permanent_failure_goes_straight_to_dead_letters() {
    let db = TestDb::new().await;
    let engine = engine(&db, fast()).await;
    run_demo(&engine, "perm", 4);
    let id = enqueue(
        &db,
        "perm",
        "demo.fail",
        json!({"times": 9, "permanent": true}),
    )
    .await;
    let job = finished(&db, id).await;
    assert_eq!((job.state, job.attempt), (JobState::Dead, 1));
    assert_eq!(job.errors[0].error, "demo failure on attempt 1");
    let unknown = enqueue(&db, "perm", "no.such.kind", json!({})).await;
    let job = finished(&db, unknown).await;
    assert_eq!(job.state, JobState::Dead);
    assert!(
        job.errors[0]
            .error
            .contains("no handler is registered for kind no.such.kind")
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn exhausted_attempts_end_in_dead_letters_and_can_be_redriven() {
    let db = TestDb::new().await;
    let engine = engine(&db, fast()).await;
    run_demo(&engine, "exhaust", 4);
    let id = store::enqueue(
        &db.pool,
        &NewJob::new(queue("exhaust"), "demo.fail", json!({"times": 2})).max_attempts(2),
    )
    .await
    .unwrap()
    .id;
    let job = finished(&db, id).await;
    assert_eq!(
        (job.state, job.attempt, job.errors.len()),
        (JobState::Dead, 2, 2)
    );
    // Re-driven, it starts over at attempt 1, so demo.fail fails both attempts again.
    store::redrive_ids(&db.pool, &[id]).await.unwrap();
    let job = finished(&db, id).await;
    assert_eq!(job.state, JobState::Dead);
    assert_eq!(job.errors.len(), 4, "history is kept across re-drives");
    engine.shutdown().await;
}

#[tokio::test]
async fn a_panicking_handler_is_an_ordinary_failure() {
    let db = TestDb::new().await;
    let engine = engine(&db, fast()).await;
    run_demo(&engine, "panic", 2);
    let id = store::enqueue(
        &db.pool,
        &NewJob::new(queue("panic"), "demo.panic", json!({})).max_attempts(2),
    )
    .await
    .unwrap()
    .id;
    let job = finished(&db, id).await;
    assert_eq!(job.state, JobState::Dead);
    assert!(
        job.errors
            .iter()
            .all(|e| e.error.contains("handler panicked: demo panic"))
    );
    let ok = enqueue(&db, "panic", "demo.noop", json!({})).await;
    assert_eq!(
        finished(&db, ok).await.state,
        JobState::Completed,
        "the worker survived"
    );
    engine.shutdown().await;
}

#[derive(Clone, Default)]
struct Gauge {
    now: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
    started: Arc<Mutex<Vec<Instant>>>,
}

async fn busy(_: Value, g: Data<Gauge>) -> Result<(), BoxDynError> {
    g.started.lock().unwrap().push(Instant::now());
    let now = g.now.fetch_add(1, Ordering::SeqCst) + 1;
    g.max.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(40)).await;
    g.now.fetch_sub(1, Ordering::SeqCst);
    Ok(())
}

fn run_busy(engine: &Engine, q: &str, concurrency: usize) -> Gauge {
    let gauge = Gauge::default();
    let backend = engine.backend::<Value>(QueueConfig::new(queue(q)).concurrency(concurrency));
    let worker = WorkerBuilder::new(q)
        .backend(backend)
        .data(gauge.clone())
        .build(busy);
    tokio::spawn(worker.run());
    gauge
}

#[tokio::test]
async fn a_worker_never_runs_more_than_its_concurrency() {
    let db = TestDb::new().await;
    let engine = engine(&db, fast()).await;
    let gauge = run_busy(&engine, "conc", 3);
    let jobs: Vec<NewJob> = (0..24)
        .map(|_| NewJob::new(queue("conc"), "busy", json!({})))
        .collect();
    store::enqueue_many(&db.pool, &jobs).await.unwrap();
    wait_count(
        &db,
        "conc",
        JobState::Completed,
        24,
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(gauge.max.load(Ordering::SeqCst), 3);
    engine.shutdown().await;
}

#[tokio::test]
async fn an_idle_worker_is_woken_by_notify_within_milliseconds() {
    let db = TestDb::new().await;
    // A 30 s poll interval: only a notification can explain a fast start.
    let config = EngineConfig {
        poll_interval: Duration::from_secs(30),
        ..fast()
    };
    let engine = engine(&db, config).await;
    let gauge = run_busy(&engine, "wake", 4);
    tokio::time::sleep(Duration::from_millis(300)).await; // let the producer go idle
    // Both wake-up paths: NOTIFY inside the insert's statement, and after its commit.
    let (mut in_statement, mut after_commit) = (Vec::new(), Vec::new());
    for i in 0..6 {
        let before = gauge.started.lock().unwrap().len();
        let t0 = Instant::now();
        let job = NewJob::new(queue("wake"), "busy", json!({}));
        if i % 2 == 0 {
            store::enqueue(&db.pool, &job).await.unwrap();
        } else {
            store::enqueue_autocommit(&db.pool, &[job]).await.unwrap();
        }
        let started = wait_for("the job to start", Duration::from_secs(5), || async {
            gauge.started.lock().unwrap().get(before).copied()
        })
        .await;
        let waits = if i % 2 == 0 {
            &mut in_statement
        } else {
            &mut after_commit
        };
        waits.push(started.duration_since(t0));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for waits in [&mut in_statement, &mut after_commit] {
        waits.sort();
        assert!(
            waits[1] < Duration::from_millis(50),
            "median enqueue-to-start {waits:?}"
        );
    }
    engine.shutdown().await;
}

#[tokio::test]
async fn a_higher_priority_job_overtakes_a_backlog_being_drained() {
    let db = TestDb::new().await;
    // No poll tick during the test: only the notification can move the claim cursor back.
    let config = EngineConfig {
        poll_interval: Duration::from_secs(30),
        ..fast()
    };
    let engine = engine(&db, config).await;
    run_demo(&engine, "prio", 1);
    let backlog: Vec<NewJob> = (0..20)
        .map(|_| NewJob::new(queue("prio"), "demo.sleep", json!({"ms": 50})))
        .collect();
    store::enqueue_many(&db.pool, &backlog).await.unwrap();
    wait_count(&db, "prio", JobState::Completed, 3, Duration::from_secs(10)).await;
    let urgent = store::enqueue(
        &db.pool,
        &NewJob::new(queue("prio"), "demo.sleep", json!({"ms": 1})).priority(5),
    )
    .await
    .unwrap()
    .id;
    let urgent = finished(&db, urgent).await;
    let still_waiting = store::count_by_state(&db.pool, "prio").await.unwrap();
    let available = still_waiting
        .iter()
        .find(|(s, _)| *s == JobState::Available)
        .map_or(0, |(_, n)| *n);
    assert_eq!(urgent.state, JobState::Completed);
    assert!(
        available >= 10,
        "the urgent job ran ahead of the backlog: {still_waiting:?}"
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn without_notifications_the_poll_still_finds_the_job() {
    let db = TestDb::new().await;
    let config = EngineConfig {
        listen: false,
        poll_interval: Duration::from_millis(250),
        ..fast()
    };
    let engine = engine(&db, config).await;
    run_demo(&engine, "poll", 2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = Instant::now();
    let id = enqueue(&db, "poll", "demo.noop", json!({})).await;
    assert_eq!(finished(&db, id).await.state, JobState::Completed);
    assert!(t0.elapsed() < Duration::from_secs(2));
    engine.shutdown().await;
}

#[tokio::test]
async fn shutdown_drains_in_flight_jobs_before_the_deadline() {
    let db = TestDb::new().await;
    let engine = engine(&db, fast()).await;
    run_demo(&engine, "drain", 5);
    let jobs: Vec<NewJob> = (0..8)
        // Long enough that no job finishes (and frees a slot) between "five running" and the
        // shutdown, even on a loaded machine.
        .map(|_| NewJob::new(queue("drain"), "demo.sleep", json!({"ms": 2000})))
        .collect();
    store::enqueue_many(&db.pool, &jobs).await.unwrap();
    wait_count(&db, "drain", JobState::Running, 5, Duration::from_secs(5)).await;
    let report = engine.shutdown().await;
    assert!(report.drained);
    let c = store::count_by_state(&db.pool, "drain").await.unwrap();
    assert!(c.contains(&(JobState::Completed, 5)), "{c:?}");
    assert!(
        c.contains(&(JobState::Available, 3)),
        "unstarted jobs stay runnable: {c:?}"
    );
    assert!(c.contains(&(JobState::Running, 0)), "{c:?}");
}

#[tokio::test]
async fn a_worker_stopped_on_its_own_stops_claiming_and_leaves_the_rest_runnable() {
    let db = TestDb::new().await;
    let engine = engine(&db, fast()).await;
    let ctx = apalis_core::worker::context::WorkerContext::new("alone");
    let backend = engine.backend::<Value>(QueueConfig::new(queue("alone")).concurrency(2));
    let worker = WorkerBuilder::new(&ctx)
        .backend(backend)
        .build(cowans_tests::demo_jobs(engine.pool()).router());
    let run = tokio::spawn(worker.run());
    let jobs: Vec<NewJob> = (0..10)
        .map(|_| NewJob::new(queue("alone"), "demo.sleep", json!({"ms": 1500})))
        .collect();
    store::enqueue_many(&db.pool, &jobs).await.unwrap();
    wait_count(&db, "alone", JobState::Running, 2, Duration::from_secs(5)).await;
    ctx.stop().unwrap();
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await; // three poll intervals
    let c = store::count_by_state(&db.pool, "alone").await.unwrap();
    assert!(c.contains(&(JobState::Completed, 2)), "{c:?}");
    assert!(
        c.contains(&(JobState::Available, 8)),
        "no job claimed after the stop: {c:?}"
    );
    assert!(c.contains(&(JobState::Running, 0)), "{c:?}");
    engine.shutdown().await;
}

#[tokio::test]
async fn shutdown_past_its_deadline_hands_jobs_back_without_counting_the_attempt() {
    let db = TestDb::new().await;
    let config = EngineConfig {
        shutdown_timeout: Duration::from_millis(300),
        ..fast()
    };
    let engine = engine(&db, config).await;
    run_demo(&engine, "deadline", 4);
    let jobs: Vec<NewJob> = (0..4)
        .map(|_| NewJob::new(queue("deadline"), "demo.sleep", json!({"ms": 60_000})))
        .collect();
    let ids = cowans_tests::enqueue_ids(&db.pool, &jobs).await;
    wait_count(
        &db,
        "deadline",
        JobState::Running,
        4,
        Duration::from_secs(5),
    )
    .await;
    let t0 = Instant::now();
    let report = engine.shutdown().await;
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert!(!report.drained);
    assert_eq!(report.released, 4);
    for id in ids {
        let j = store::get_job(&db.pool, id).await.unwrap().unwrap();
        assert_eq!((j.state, j.attempt), (JobState::Available, 0));
    }
}

async fn effect_then_complete(
    _: Value,
    job: JobMeta,
    pool: Data<sqlx::PgPool>,
) -> Result<(), BoxDynError> {
    let mut tx = pool.begin().await?;
    cowans_store::demo::record_effect(&mut *tx, job.id, "once").await?;
    job.complete_in_tx(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

#[tokio::test]
async fn completing_in_the_handlers_transaction_commits_effect_and_completion_together() {
    let db = cowans_tests::demo_db().await;
    let engine = engine(&db, fast()).await;
    let backend = engine.backend::<Value>(QueueConfig::new(queue("tx")));
    let worker = WorkerBuilder::new("tx")
        .backend(backend)
        .data(db.pool.clone())
        .build(effect_then_complete);
    tokio::spawn(worker.run());
    let id = enqueue(&db, "tx", "effect", json!({})).await;
    let job = finished(&db, id).await;
    assert_eq!((job.state, job.attempt), (JobState::Completed, 1));
    assert_eq!(
        store::demo::effect_counts(&db.pool).await.unwrap(),
        vec![("once".to_owned(), 1)]
    );
    engine.shutdown().await;
}
