//! Retries and dead letters: a failure persisted with its backoff and history, exponential
//! backoff, per-kind retry policies, permanent failures, exhausted attempts (also by an expired
//! lease), poison payloads and panicking handlers; dead letters listed, re-driven (not while a
//! live job holds the key) and purged.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use apalis_core::{error::BoxDynError, task::data::Data, worker::builder::WorkerBuilder};
use chrono::Utc;
use cowans_core::{JobState, RetryPolicy};
use cowans_queue::QueueConfig;
use cowans_store::{self as store, DeadLetterFilter, Failed, LeaseRef, NewJob, Unique};
use cowans_testkit::TestDb;
use cowans_tests::queue;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::engine::{engine, enqueue, fast, finished, quick_retries, run_demo};
use crate::support::{TTL, job, state_of};

#[tokio::test]
async fn a_retry_is_persisted_with_its_backoff_and_error_history() {
    let db = TestDb::new().await;
    let q = queue("retry");
    let id = store::enqueue(&db.pool, &job("retry", 1)).await.unwrap().id;
    let w = Uuid::new_v4();
    let c = store::claim(&db.pool, &q, 1, w, TTL, None).await.unwrap();
    let before = Utc::now();
    let failed = Failed {
        lease: LeaseRef {
            id,
            lease: c[0].lease,
        },
        attempt: 1,
        error: "upstream 503".into(),
        retry_in: Some(Duration::from_secs(30)),
    };
    let settled = store::settle_failures(&db.pool, w, &[failed])
        .await
        .unwrap();
    assert_eq!(settled.len(), 1);
    let rec = store::get_job(&db.pool, id).await.unwrap().unwrap();
    assert_eq!(rec.state, JobState::Scheduled);
    let wait = (rec.run_at - before).num_milliseconds();
    assert!(
        (29_000..=31_000).contains(&wait),
        "run_at is now + backoff, got {wait} ms"
    );
    assert_eq!(rec.errors.len(), 1);
    assert_eq!(rec.errors[0].attempt, 1);
    assert_eq!(rec.errors[0].error, "upstream 503");
    assert_eq!(
        rec.errors[0].worker.as_deref(),
        Some(w.to_string().as_str())
    );
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
async fn an_expired_last_attempt_becomes_a_dead_letter() {
    let db = TestDb::new().await;
    let q = queue("dl");
    let id = store::enqueue(&db.pool, &job("dl", 1).max_attempts(1))
        .await
        .unwrap()
        .id;
    store::claim(
        &db.pool,
        &q,
        1,
        Uuid::new_v4(),
        Duration::from_millis(1),
        None,
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut events = sqlx::postgres::PgListener::connect_with(&db.pool)
        .await
        .unwrap();
    events.listen(store::EVENTS_CHANNEL).await.unwrap();
    let rescued = store::rescue_expired(&db.pool, 100).await.unwrap();
    assert_eq!(rescued.dead.len(), 1);
    assert_eq!(state_of(&db, id).await, JobState::Dead);
    // Live clients hear about it like any other dead letter.
    let n = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("a job.dead event")
        .unwrap();
    let event: serde_json::Value = serde_json::from_str(n.payload()).unwrap();
    assert_eq!(
        (
            event["type"].as_str(),
            event["job_id"].as_i64(),
            event["queue"].as_str()
        ),
        (Some("job.dead"), Some(id.0), Some("dl")),
        "{event}"
    );
    assert!(event["error"].as_str().unwrap().contains("lease expired"));
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

#[tokio::test]
async fn dead_letters_are_listed_redriven_and_purged_by_filter() {
    let db = TestDb::new().await;
    let w = Uuid::new_v4();
    let mut jobs = Vec::new();
    for n in 0..4 {
        jobs.push(job("dlq", n));
    }
    jobs.push(NewJob::new(queue("dlq"), "other.kind", json!({})));
    store::enqueue_many(&db.pool, &jobs).await.unwrap();
    let claimed = store::claim(&db.pool, &queue("dlq"), 10, w, TTL, None)
        .await
        .unwrap();
    let fails: Vec<Failed> = claimed
        .iter()
        .map(|j| Failed {
            lease: j.lease_ref(),
            attempt: 1,
            error: "bad".into(),
            retry_in: None,
        })
        .collect();
    store::settle_failures(&db.pool, w, &fails).await.unwrap();

    let all = DeadLetterFilter {
        queue: Some("dlq".into()),
        kind: None,
    };
    let page1 = store::list_dead(&db.pool, &all, None, 3).await.unwrap();
    assert_eq!(page1.len(), 3);
    let page2 = store::list_dead(&db.pool, &all, Some(page1[2].id), 3)
        .await
        .unwrap();
    assert_eq!(
        page2.len(),
        2,
        "keyset pagination continues after the last id"
    );
    assert!(
        page1
            .iter()
            .all(|j| j.errors.len() == 1 && j.errors[0].error == "bad")
    );

    let one = store::redrive_ids(&db.pool, &[page1[0].id]).await.unwrap();
    assert_eq!(one, vec![page1[0].id]);
    let rec = store::get_job(&db.pool, page1[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (rec.state, rec.attempt, rec.errors.len()),
        (JobState::Available, 0, 1)
    );

    let other = DeadLetterFilter {
        queue: Some("dlq".into()),
        kind: Some("other.kind".into()),
    };
    assert_eq!(store::redrive_matching(&db.pool, &other).await.unwrap(), 1);
    assert_eq!(store::purge_dead(&db.pool, &all, None).await.unwrap(), 3);
    assert!(
        store::list_dead(&db.pool, &all, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let counts = store::count_by_state(&db.pool, "dlq").await.unwrap();
    assert!(counts.contains(&(JobState::Available, 2)));
}

#[tokio::test]
async fn redrive_skips_a_dead_letter_whose_key_a_live_job_holds() {
    let db = TestDb::new().await;
    let dead = store::enqueue(
        &db.pool,
        &job("rd", 1).unique(Unique::key("k")).max_attempts(1),
    )
    .await
    .unwrap()
    .id;
    let claimed = store::claim(&db.pool, &queue("rd"), 1, Uuid::new_v4(), TTL, None)
        .await
        .unwrap();
    let lease = LeaseRef {
        id: dead,
        lease: claimed[0].lease,
    };
    store::settle_failures(
        &db.pool,
        Uuid::new_v4(),
        &[store::Failed {
            lease,
            attempt: 1,
            error: "boom".into(),
            retry_in: None,
        }],
    )
    .await
    .unwrap();
    assert_eq!(state_of(&db, dead).await, JobState::Dead);
    let live = store::enqueue(&db.pool, &job("rd", 2).unique(Unique::key("k")))
        .await
        .unwrap();
    assert!(!live.duplicate, "a dead job does not hold its key");
    assert!(
        store::redrive_ids(&db.pool, &[dead])
            .await
            .unwrap()
            .is_empty()
    );
    store::cancel_jobs(&db.pool, &[live.id]).await.unwrap();
    assert_eq!(
        store::redrive_ids(&db.pool, &[dead]).await.unwrap(),
        vec![dead]
    );
}
