//! Cases that run the engine itself (apalis workers, producers, completer, heartbeat,
//! maintenance) on the backend, with the demo kinds as handlers.

use std::time::Duration;

use apalis_core::worker::builder::WorkerBuilder;
use cowans_core::{
    JobId, JobState, RetryPolicy,
    queue::{JobView, NewJob},
};
use cowans_queue::{Engine, EngineConfig, QueueConfig};
use cowans_testkit::wait_for;
use cowans_tests::queue;
use serde_json::{Value, json};

use crate::{backends::Harness, cases::count};

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

async fn start(h: &Harness, config: EngineConfig, q: &str, concurrency: usize) -> Engine {
    let engine = Engine::start_on(
        Some(h.driver.clone()),
        h.db.pool.clone(),
        config,
        vec![q.to_owned()],
        concurrency as u32,
        None,
    )
    .await
    .expect("engine starts");
    let backend =
        engine.backend::<Value>(QueueConfig::new(queue(q)).concurrency(concurrency).retry(
            RetryPolicy {
                max_attempts: 5,
                base_delay: Duration::from_millis(100),
                max_delay: Duration::from_secs(1),
                jitter: 0.0,
            },
        ));
    let worker = WorkerBuilder::new(q)
        .backend(backend)
        .build(cowans_tests::demo_jobs(&h.db.pool).router());
    tokio::spawn(worker.run());
    engine
}

async fn finished(h: &Harness, id: JobId) -> JobView {
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
    let engine = start(h, fast(), "run", 4).await;
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
    let engine = start(h, fast(), "drain", 3).await;
    let jobs: Vec<NewJob> = (0..8)
        .map(|_| NewJob::new(queue("drain"), "demo.sleep", json!({"ms": 2000})))
        .collect();
    h.driver.enqueue(&jobs).await.unwrap();
    wait_for("three running", Duration::from_secs(15), || async {
        (count(h, "drain", JobState::Running).await == 3).then_some(())
    })
    .await;
    let report = engine.shutdown().await;
    assert!(report.drained);
    assert_eq!(count(h, "drain", JobState::Completed).await, 3);
    assert_eq!(count(h, "drain", JobState::Running).await, 0);
    assert_eq!(count(h, "drain", JobState::Available).await, 5);
}
