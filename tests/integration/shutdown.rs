//! Shutdown: in-flight jobs drained before the deadline, the rest left runnable; past the deadline
//! jobs handed back without counting the attempt; a worker stopped on its own; SIGTERM on a real
//! worker process.

use std::time::{Duration, Instant};

use apalis_core::worker::builder::WorkerBuilder;
use cowans_core::JobState;
use cowans_queue::{EngineConfig, QueueConfig};
use cowans_store::{self as store, NewJob};
use cowans_testkit::{TestDb, wait_for};
use cowans_tests::{FAST_ENGINE, WorkerProcess, count, queue};
use serde_json::{Value, json};

use crate::support::engine::{engine, fast, run_demo, wait_count};

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

#[tokio::test]
async fn sigterm_drains_running_jobs_and_leaves_the_rest_runnable() {
    let db = TestDb::new().await;
    let jobs: Vec<NewJob> = (0..6)
        .map(|_| NewJob::new(queue("term"), "demo.sleep", json!({"ms": 2000})))
        .collect();
    store::enqueue_many(&db.pool, &jobs).await.unwrap();
    let w = WorkerProcess::spawn(&db.url(), "term", 3, FAST_ENGINE);
    wait_for("three jobs running", Duration::from_secs(10), || async {
        (count(&db.pool, "term", JobState::Running).await == 3).then_some(())
    })
    .await;
    let (code, last) = w.terminate(Duration::from_secs(10));
    assert_eq!(code, Some(0));
    assert!(last.contains("drained=true"), "{last}");
    assert_eq!(count(&db.pool, "term", JobState::Completed).await, 3);
    assert_eq!(count(&db.pool, "term", JobState::Available).await, 3);
    assert_eq!(count(&db.pool, "term", JobState::Running).await, 0);
    let attempts: Vec<i32> =
        sqlx::query_scalar("SELECT attempt FROM cowans_jobs WHERE state = 'available'")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        attempts,
        vec![0, 0, 0],
        "unstarted jobs were handed back uncounted"
    );
}
