//! Claiming ahead: a worker whose handlers are fast claims more than its free slots (large
//! claims), yet never runs more than its concurrency; slow jobs are never claimed ahead, so a
//! second worker gets its share; a higher-priority job still overtakes the backlog.

use std::{
    sync::atomic::{AtomicI64, Ordering},
    time::Duration,
};

use cowans_core::JobState;
use cowans_store::{self as store, NewJob};
use cowans_testkit::{TestDb, wait_for};
use cowans_tests::queue;
use serde_json::json;

use crate::support::engine::{Gauge, engine, fast, run_busy};

fn jobs(q: &str, n: usize, ms: u64) -> Vec<NewJob> {
    (0..n)
        .map(|_| NewJob::new(queue(q), "busy", json!({ "ms": ms })))
        .collect()
}

/// Waits until `q` has `n` completed jobs, returning the most jobs seen held at once while
/// waiting: running in the database (claimed, buffered or running), less those whose handler
/// already returned and whose ack is on its way (a slot freed by a handler is claimed again
/// at once; on a loaded machine the ack of the job before can land after that claim).
async fn most_running_until_completed(
    db: &TestDb,
    q: &str,
    n: i64,
    deadline: Duration,
    gauges: &[&Gauge],
) -> i64 {
    let most = AtomicI64::new(0);
    wait_for(&format!("{n} completed jobs in {q}"), deadline, || async {
        let counts = store::count_by_state(&db.pool, q).await.unwrap();
        let finished: usize = gauges
            .iter()
            .map(|g| g.finished.load(Ordering::SeqCst))
            .sum();
        let of = |s| {
            counts
                .iter()
                .find(|(st, _)| *st == s)
                .map_or(0, |(_, c)| *c)
        };
        let unacked = (finished as i64 - of(JobState::Completed)).max(0);
        most.fetch_max(of(JobState::Running) - unacked, Ordering::Relaxed);
        (of(JobState::Completed) == n).then_some(())
    })
    .await;
    most.load(Ordering::Relaxed)
}

#[tokio::test]
async fn fast_jobs_are_claimed_ahead_but_never_run_beyond_the_concurrency() {
    let db = TestDb::new().await;
    let engine = engine(&db, fast()).await;
    store::enqueue_autocommit(&db.pool, &jobs("ahead", 5_000, 0))
        .await
        .unwrap();
    let gauge = run_busy(&engine, "ahead", 3);
    let most_held =
        most_running_until_completed(&db, "ahead", 5_000, Duration::from_secs(120), &[&gauge])
            .await;
    assert!(
        gauge.max.load(Ordering::SeqCst) <= 3,
        "at most 3 handlers at once, saw {}",
        gauge.max.load(Ordering::SeqCst)
    );
    assert_eq!(gauge.started.lock().unwrap().len(), 5_000);
    assert!(
        most_held > 3,
        "fast handlers are fed by claims larger than their free slots (most held at once: {most_held})"
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn slow_jobs_are_not_claimed_ahead_so_a_second_worker_gets_its_share() {
    let db = TestDb::new().await;
    let (a, b) = (engine(&db, fast()).await, engine(&db, fast()).await);
    let (ga, gb) = (run_busy(&a, "slow", 2), run_busy(&b, "slow", 2));
    // Both producers are up and idle before the work arrives.
    tokio::time::sleep(Duration::from_millis(500)).await;
    store::enqueue_autocommit(&db.pool, &jobs("slow", 12, 1_000))
        .await
        .unwrap();
    let most_held =
        most_running_until_completed(&db, "slow", 12, Duration::from_secs(60), &[&ga, &gb]).await;
    assert!(
        most_held <= 4,
        "never more held than the two workers' slots: {most_held}"
    );
    let (ran_a, ran_b) = (
        ga.started.lock().unwrap().len(),
        gb.started.lock().unwrap().len(),
    );
    assert_eq!(ran_a + ran_b, 12);
    assert!(
        ran_a >= 4 && ran_b >= 4,
        "both workers ran their share: {ran_a} and {ran_b}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_higher_priority_job_overtakes_a_backlog_drained_with_claims_ahead() {
    let db = TestDb::new().await;
    let engine = engine(&db, fast()).await;
    store::enqueue_autocommit(&db.pool, &jobs("rank", 20_000, 0))
        .await
        .unwrap();
    let gauge = run_busy(&engine, "rank", 2);
    wait_for(
        "the drain to be under way",
        Duration::from_secs(30),
        || async { (gauge.started.lock().unwrap().len() >= 2_000).then_some(()) },
    )
    .await;
    let urgent = store::enqueue(
        &db.pool,
        &NewJob::new(queue("rank"), "busy", json!({"ms": 0})).priority(5),
    )
    .await
    .unwrap()
    .id;
    let done = wait_for(
        "the urgent job to complete",
        Duration::from_secs(30),
        || async {
            store::get_job(&db.pool, urgent)
                .await
                .unwrap()
                .filter(|j| j.state == JobState::Completed)
        },
    )
    .await;
    let counts = store::count_by_state(&db.pool, "rank").await.unwrap();
    let available = counts
        .iter()
        .find(|(s, _)| *s == JobState::Available)
        .map_or(0, |(_, n)| *n);
    assert_eq!(done.state, JobState::Completed);
    assert!(
        available >= 5_000,
        "the urgent job ran ahead of the backlog: {counts:?}"
    );
    engine.shutdown().await;
}
