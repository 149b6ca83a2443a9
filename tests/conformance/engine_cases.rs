//! Cases that run the engine itself (apalis workers, producers, completer, heartbeat,
//! maintenance) on the backend, with the demo kinds as handlers.

use std::time::Duration;

use cowans_core::{
    JobId, JobState,
    queue::{JobRecord, NewJob},
};
use cowans_queue::{Engine, EngineConfig};
use cowans_testkit::wait_for;
use cowans_tests::queue;
use serde_json::json;

use crate::{backends::Harness, cases::count};

async fn start(h: &Harness, config: EngineConfig, q: &str, concurrency: usize) -> Engine {
    let engine = Engine::start_on(
        Some(h.driver.clone()),
        h.db.pool.clone(),
        config,
        vec![q.to_owned()],
        concurrency as u32,
        Some(h.limiter.clone()),
    )
    .await
    .expect("engine starts");
    cowans_tests::run_demo(&engine, q, concurrency);
    engine
}

async fn finished(h: &Harness, id: JobId) -> JobRecord {
    wait_for("the job to finish", Duration::from_secs(30), || async {
        h.driver
            .job(id)
            .await
            .unwrap()
            .filter(|j| j.state.is_final())
    })
    .await
}

pub async fn the_engine_runs_retries_and_dead_letters_jobs(h: &Harness) {
    let engine = start(h, cowans_tests::fast_engine(), "run", 4).await;
    let q = || queue("run");
    let mut jobs: Vec<NewJob> = (0..20)
        .map(|_| NewJob::new(q(), "demo.noop", json!({})))
        .collect();
    jobs.push(NewJob::new(q(), "demo.fail", json!({"times": 1})));
    jobs.push(NewJob::new(q(), "demo.fail", json!({"times": 9})).max_attempts(2));
    jobs.push(NewJob::new(q(), "demo.panic", json!({})).max_attempts(2));
    // A payload the kind cannot decode: dead at once, and the worker keeps going.
    jobs.push(NewJob::new(q(), "demo.sleep", json!({"ms": "soon"})));
    jobs.push(NewJob::new(q(), "demo.noop", json!({})).run_at(chrono::Utc::now()));
    let ids: Vec<JobId> = h
        .driver
        .enqueue(&jobs)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    for id in &ids[..20] {
        assert_eq!(finished(h, *id).await.state, JobState::Completed);
    }
    let retried = finished(h, ids[20]).await;
    assert_eq!((retried.state, retried.attempt), (JobState::Completed, 2));
    let dead = finished(h, ids[21]).await;
    assert_eq!((dead.state, dead.attempt), (JobState::Dead, 2));
    assert_eq!(dead.errors.len(), 2);
    let panicked = finished(h, ids[22]).await;
    assert_eq!(panicked.state, JobState::Dead);
    assert!(panicked.errors[0].error.contains("panic"), "{panicked:?}");
    let poison = finished(h, ids[23]).await;
    assert_eq!((poison.state, poison.attempt), (JobState::Dead, 1));
    assert_eq!(finished(h, ids[24]).await.state, JobState::Completed);
    engine.shutdown().await;
}

pub async fn shutdown_drains_running_jobs_and_hands_back_the_rest(h: &Harness) {
    let engine = start(h, cowans_tests::fast_engine(), "drain", 3).await;
    let jobs: Vec<NewJob> = (0..8)
        .map(|_| NewJob::new(queue("drain"), "demo.sleep", json!({"ms": 3000})))
        .collect();
    h.driver.enqueue(&jobs).await.unwrap();
    wait_for("three running", Duration::from_secs(15), || async {
        (count(h, "drain", JobState::Running).await == 3).then_some(())
    })
    .await;
    // Claimed is not started: give the handlers time to begin (a margin, well inside the jobs'
    // 3 s), so the shutdown finds them running rather than still buffered (handed back).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let report = engine.shutdown().await;
    assert!(report.drained);
    assert_eq!(count(h, "drain", JobState::Completed).await, 3);
    assert_eq!(count(h, "drain", JobState::Running).await, 0);
    assert_eq!(count(h, "drain", JobState::Available).await, 5);
}
