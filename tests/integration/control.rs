//! Control: cancelling waiting and running jobs (a handler that ignores it is dropped after the
//! grace), timeouts, pausing and resuming a queue (every worker process stops within a second,
//! also after a restart), and operators doing it from the command line.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use cowans_core::{JobId, JobState};
use cowans_queue::{Engine, QueueConfig};
use cowans_store::{self as store, LeaseRef, NewJob};
use cowans_testkit::{TestDb, wait_for};
use cowans_tests::{FAST_ENGINE, WorkerProcess, count, queue};
use serde_json::json;
use uuid::Uuid;

use crate::support::control_kinds::{
    Log, control_router, engine, retries, spawn_worker, state_becomes,
};
use crate::support::{TTL, complete_all, job, sleeps, state_of};

#[tokio::test]
async fn cancel_stops_waiting_jobs_at_once_and_marks_running_ones() {
    let db = TestDb::new().await;
    let waiting = store::enqueue(&db.pool, &job("c", 1)).await.unwrap().id;
    let later = store::enqueue(
        &db.pool,
        &job("c", 2).run_at(Utc::now() + chrono::Duration::hours(1)),
    )
    .await
    .unwrap()
    .id;
    let running = store::enqueue(&db.pool, &job("c", 3).priority(9))
        .await
        .unwrap()
        .id;
    let claimed = store::claim(&db.pool, &queue("c"), 1, Uuid::new_v4(), TTL, None)
        .await
        .unwrap();
    assert_eq!(claimed[0].job_id(), running);
    let done = complete_all(&db, "c").await; // completes `waiting`
    assert_eq!(done, vec![waiting]);
    let again = store::enqueue(&db.pool, &job("c", 4)).await.unwrap().id;

    let cancelled = store::cancel_jobs(&db.pool, &[waiting, later, running, again])
        .await
        .unwrap();
    let was: Vec<(JobId, JobState)> = cancelled.iter().map(|c| (c.id, c.was)).collect();
    assert_eq!(
        was,
        vec![
            (later, JobState::Scheduled),
            (running, JobState::Running),
            (again, JobState::Available)
        ],
        "the completed job is left alone"
    );
    for id in [later, running, again] {
        assert_eq!(state_of(&db, id).await, JobState::Cancelled);
    }
    // The running job's late result is discarded by the fencing: it stays cancelled.
    let lease = LeaseRef {
        id: running,
        lease: claimed[0].lease,
    };
    assert!(
        store::complete(&db.pool, &[lease], false)
            .await
            .unwrap()
            .is_empty()
    );
    let failed = store::settle_failures(
        &db.pool,
        Uuid::new_v4(),
        &[store::Failed {
            lease,
            attempt: 1,
            error: "x".into(),
            retry_in: Some(Duration::ZERO),
        }],
    )
    .await
    .unwrap();
    assert!(failed.is_empty(), "a cancelled job is never retried");
    assert_eq!(state_of(&db, running).await, JobState::Cancelled);
}

async fn enqueue(db: &TestDb, job: NewJob) -> JobId {
    store::enqueue(&db.pool, &job).await.unwrap().id
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

#[tokio::test]
async fn a_paused_queue_gives_nothing_to_claims_until_resumed() {
    let db = TestDb::new().await;
    store::enqueue(&db.pool, &job("p", 1)).await.unwrap();
    store::set_paused(&db.pool, &queue("p"), true)
        .await
        .unwrap();
    let w = Uuid::new_v4();
    assert!(
        store::claim(&db.pool, &queue("p"), 10, w, TTL, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store::queue_control(&db.pool, "p").await.unwrap().paused);
    store::set_paused(&db.pool, &queue("p"), false)
        .await
        .unwrap();
    assert_eq!(
        store::claim(&db.pool, &queue("p"), 10, w, TTL, None)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn db_now(db: &TestDb) -> DateTime<Utc> {
    sqlx::query_scalar("SELECT now()")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

/// Jobs of `q` claimed after `t`.
async fn claimed_after(db: &TestDb, q: &str, t: DateTime<Utc>) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM cowans_jobs WHERE queue = $1 AND attempted_at > $2")
        .bind(q)
        .bind(t)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn pausing_stops_every_worker_within_a_second_survives_a_restart_and_resumes_fast() {
    let db = TestDb::new().await;
    store::enqueue_many(&db.pool, &sleeps("pz", 600, 40))
        .await
        .unwrap();
    let a = WorkerProcess::spawn(&db.url(), "pz", 5, FAST_ENGINE);
    let b = WorkerProcess::spawn(&db.url(), "pz", 5, FAST_ENGINE);
    wait_for(
        "both workers to make progress",
        Duration::from_secs(20),
        || async { (count(&db.pool, "pz", JobState::Completed).await >= 20).then_some(()) },
    )
    .await;

    store::set_paused(&db.pool, &queue("pz"), true)
        .await
        .unwrap();
    let paused_at = db_now(&db).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        claimed_after(&db, "pz", paused_at + chrono::Duration::milliseconds(1000)).await,
        0,
        "a job was claimed more than a second after the pause"
    );
    assert_eq!(
        count(&db.pool, "pz", JobState::Running).await,
        0,
        "running jobs finished, none started"
    );
    let waiting = count(&db.pool, "pz", JobState::Available).await;
    assert!(waiting > 0);

    // A restarted worker reads the paused state from the database.
    let (code, _) = b.terminate(Duration::from_secs(10));
    assert_eq!(code, Some(0));
    let _b = WorkerProcess::spawn(&db.url(), "pz", 5, FAST_ENGINE);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        count(&db.pool, "pz", JobState::Available).await,
        waiting,
        "nothing ran while paused"
    );

    store::set_paused(&db.pool, &queue("pz"), false)
        .await
        .unwrap();
    let resumed_at = db_now(&db).await;
    wait_for(
        "a claim after the resume",
        Duration::from_secs(1),
        || async { (claimed_after(&db, "pz", resumed_at).await > 0).then_some(()) },
    )
    .await;
    wait_for("every job to complete", Duration::from_secs(30), || async {
        (count(&db.pool, "pz", JobState::Completed).await == 600).then_some(())
    })
    .await;
    drop(a);
}

/// Runs `cowans-worker ctl ...` against `db`; returns (exit code, stdout, stderr).
fn ctl(db: &TestDb, args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(cowans_tests::worker_binary())
        .arg("ctl")
        .args(args)
        .env("COWANS__DATABASE__URL", db.url())
        .env("COWANS__LOG__FILTER", "warn")
        .env_remove("DATABASE_URL")
        .output()
        .expect("run cowans-worker ctl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn operators_pause_limit_cancel_and_read_queues_from_the_command_line() {
    let db = TestDb::new().await;
    let id = store::enqueue(&db.pool, &NewJob::new(queue("ops"), "demo.noop", json!({})))
        .await
        .unwrap()
        .id;
    let (code, out, _) = ctl(&db, &["pause", "ops"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(store::queue_control(&db.pool, "ops").await.unwrap().paused);
    let (code, _, _) = ctl(
        &db,
        &[
            "limit",
            "ops",
            "--concurrency",
            "3",
            "--rate",
            "5",
            "--by-key",
        ],
    );
    assert_eq!(code, Some(0));
    let c = store::queue_control(&db.pool, "ops").await.unwrap();
    assert_eq!(c.concurrency_limit, Some(3));
    assert_eq!(c.rate.map(|r| (r.jobs, r.by_key)), Some((5, true)));
    let (code, out, _) = ctl(&db, &["queues"]);
    assert_eq!(code, Some(0));
    let line = out
        .lines()
        .find(|l| l.starts_with("ops "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains(" true "), "paused shows: {line}");
    let (code, out, _) = ctl(&db, &["cancel", &id.to_string(), "999999"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains(&format!("job {id} cancelled (was available)")),
        "{out}"
    );
    assert!(
        out.contains("1 job(s) were already finished or do not exist"),
        "{out}"
    );
    assert_eq!(count(&db.pool, "ops", JobState::Cancelled).await, 1);
    let (code, _, err) = ctl(&db, &["pause", "Bad Queue"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("queue") && err.lines().count() == 1, "{err}");
}
