//! Shutdown: in-flight jobs drained before the deadline, the rest left runnable; past the deadline
//! jobs handed back without counting the attempt; a worker stopped on its own; SIGTERM on a real
//! worker process, also with its database out of reach.

use std::time::{Duration, Instant};

use apalis_core::worker::builder::WorkerBuilder;
use cowans_core::JobState;
use cowans_queue::{EngineConfig, QueueConfig};
use cowans_store::{self as store, NewJob};
use cowans_testkit::{TestDb, tcp_proxy::TcpProxy, wait_for};
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
        .map(|_| NewJob::new(queue("drain"), "demo.sleep", json!({"ms": 3000})))
        .collect();
    store::enqueue_many(&db.pool, &jobs).await.unwrap();
    wait_count(&db, "drain", JobState::Running, 5, Duration::from_secs(5)).await;
    // Claimed is not started: a margin for the handlers to begin (see the test below).
    tokio::time::sleep(Duration::from_secs(1)).await;
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
        .map(|_| NewJob::new(queue("alone"), "demo.sleep", json!({"ms": 3000})))
        .collect();
    store::enqueue_many(&db.pool, &jobs).await.unwrap();
    wait_count(&db, "alone", JobState::Running, 2, Duration::from_secs(5)).await;
    // Claimed is not started: give the handlers time to begin (a margin, well inside the jobs'
    // 3 s), so the stop finds them running rather than still buffered (those are handed back).
    tokio::time::sleep(Duration::from_secs(1)).await;
    ctx.stop().unwrap();
    tokio::time::timeout(Duration::from_secs(10), run)
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
    // Claimed is not started: a margin for the handlers to begin, or the shutdown finds them
    // still buffered and hands them back at once (drained; a full run saw that).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t0 = Instant::now();
    let report = engine.shutdown().await;
    // It did not wait for the minute-long jobs (the margin is for a loaded machine).
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
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
        .map(|_| NewJob::new(queue("term"), "demo.sleep", json!({"ms": 3000})))
        .collect();
    store::enqueue_many(&db.pool, &jobs).await.unwrap();
    let w = WorkerProcess::spawn(&db.url(), "term", 3, FAST_ENGINE);
    wait_for("three jobs running", Duration::from_secs(10), || async {
        (count(&db.pool, "term", JobState::Running).await == 3).then_some(())
    })
    .await;
    // Claimed is not started: a margin for the handlers to begin (well inside the jobs' 3 s),
    // or the signal finds them still buffered and hands them back (a full run saw that).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (code, last) = w.terminate(Duration::from_secs(15));
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

/// `url` with its host and port replaced by the local relay's.
fn through(url: &str, proxy: &TcpProxy) -> String {
    let mut u = url::Url::parse(url).unwrap();
    u.set_host(Some("127.0.0.1")).unwrap();
    u.set_port(Some(proxy.port)).unwrap();
    u.to_string()
}

// Multi-threaded: the relay keeps running while the test blocks on the worker process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_is_honoured_while_the_database_is_unreachable_and_no_job_is_lost() {
    let db = TestDb::new().await;
    let server = url::Url::parse(&db.url()).unwrap();
    let upstream =
        tokio::net::lookup_host((server.host_str().unwrap(), server.port().unwrap_or(5432)))
            .await
            .unwrap()
            .next()
            .unwrap();
    let proxy = TcpProxy::start(upstream).await;
    let jobs: Vec<NewJob> = (0..4)
        .map(|_| NewJob::new(queue("outage"), "demo.sleep", json!({"ms": 2000})))
        .collect();
    store::enqueue_many(&db.pool, &jobs).await.unwrap();
    let env: Vec<(&str, &str)> = FAST_ENGINE
        .iter()
        .copied()
        .chain([("COWANS__ENGINE__SHUTDOWN_TIMEOUT", "5000")])
        .collect();
    let w = WorkerProcess::spawn(&through(&db.url(), &proxy), "outage", 4, &env);
    wait_for("four jobs running", Duration::from_secs(30), || async {
        (count(&db.pool, "outage", JobState::Running).await == 4).then_some(())
    })
    .await;
    // The database goes away with four jobs in hand; the orchestrator asks the worker to stop.
    // The jobs finish within the drain deadline, and their acks cannot be written.
    proxy.down();
    // At most five seconds of drain and five of grace for the acks; the margin is for a busy
    // machine. Before the fix the completer retried until the server came back (never, here).
    let (code, _) = tokio::task::spawn_blocking(move || w.terminate(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
    // The server is back: the jobs the stopped worker could not hand back are rescued once their
    // leases expire and run by another worker. Nothing is lost.
    proxy.up();
    let _other = WorkerProcess::spawn(&db.url(), "outage", 4, FAST_ENGINE);
    wait_for("all four completed", Duration::from_secs(60), || async {
        (count(&db.pool, "outage", JobState::Completed).await == 4).then_some(())
    })
    .await;
}
