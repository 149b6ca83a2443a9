//! How an idle worker learns of new jobs: a notification (sent inside the
//! insert's statement or after its commit), and the poll when notifications are off.

use std::time::{Duration, Instant};

use cowans_core::JobState;
use cowans_queue::EngineConfig;
use cowans_store::{self as store, NewJob};
use cowans_testkit::{TestDb, wait_for};
use cowans_tests::queue;
use serde_json::json;

use crate::support::engine::{engine, enqueue, fast, finished, run_busy, run_demo};

#[tokio::test]
async fn an_idle_worker_is_woken_by_notify_long_before_its_poll() {
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
    // The poll is 30 s away: a start within 5 s can only be the notification (a margin that
    // holds on a loaded machine; the speed itself is the benchmark's `latency`).
    for waits in [&mut in_statement, &mut after_commit] {
        waits.sort();
        assert!(
            waits[waits.len() - 1] < Duration::from_secs(5),
            "enqueue-to-start {waits:?}"
        );
    }
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
    let id = enqueue(&db, "poll", "demo.noop", json!({})).await;
    assert_eq!(finished(&db, id).await.state, JobState::Completed);
    engine.shutdown().await;
}
