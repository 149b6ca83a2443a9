//! Limits: a worker's own concurrency, the fleet-wide concurrency limit (permits, and across
//! worker processes), and rate limits per queue and per key (token buckets, and job starts
//! spaced in process).

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use chrono::Utc;
use cowans_core::{JobId, JobState};
use cowans_queue::{Engine, QueueConfig};
use cowans_store::{self as store, NewJob, RateLimit};
use cowans_testkit::{TestDb, wait_for};
use cowans_tests::{FAST_ENGINE, WorkerProcess, count, queue};
use serde_json::json;
use uuid::Uuid;

use crate::support::control_kinds::{self, Log, control_router, spawn_worker, state_becomes};
use crate::support::engine::{engine, fast, run_busy, wait_count};
use crate::support::{TTL, sleeps};

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
async fn permits_never_exceed_the_limit_and_expired_ones_are_taken_over() {
    let db = TestDb::new().await;
    store::ensure_permit_slots(&db.pool, "q", 4).await.unwrap();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let pa = store::acquire_permits(&db.pool, "q", 4, 3, a, TTL)
        .await
        .unwrap();
    let pb = store::acquire_permits(&db.pool, "q", 4, 3, b, TTL)
        .await
        .unwrap();
    assert_eq!((pa.len(), pb.len()), (3, 1));
    assert!(
        store::acquire_permits(&db.pool, "q", 4, 1, b, TTL)
            .await
            .unwrap()
            .is_empty()
    );
    store::release_permits(&db.pool, "q", &pa[..1])
        .await
        .unwrap();
    assert_eq!(
        store::acquire_permits(&db.pool, "q", 4, 5, b, TTL)
            .await
            .unwrap()
            .len(),
        1
    );
    // A lower limit counts only the first slots (a holds 1 and 2, so only slot 0 is left).
    store::release_holder_permits(&db.pool, b).await.unwrap();
    let short = store::acquire_permits(&db.pool, "q", 2, 5, b, Duration::from_millis(1))
        .await
        .unwrap();
    assert_eq!(short.len(), 1);
    // b "crashes": its permit expires and another holder takes it over.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let c = Uuid::new_v4();
    assert_eq!(
        store::acquire_permits(&db.pool, "q", 2, 5, c, TTL)
            .await
            .unwrap()
            .len(),
        1
    );
    // b's late release is fenced by the token and does not free c's permit.
    store::release_permits(&db.pool, "q", &short).await.unwrap();
    assert!(
        store::acquire_permits(&db.pool, "q", 2, 5, b, TTL)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_fleet_wide_concurrency_limit_holds_across_worker_processes() {
    let db = TestDb::new().await;
    store::set_queue_limits(&db.pool, &queue("gl"), Some(4), None)
        .await
        .unwrap();
    // Both processes are up before the jobs arrive: on a loaded machine the first could
    // otherwise drain the queue while the second is still starting.
    let _a = WorkerProcess::spawn(&db.url(), "gl", 10, FAST_ENGINE);
    let _b = WorkerProcess::spawn(&db.url(), "gl", 10, FAST_ENGINE);
    store::enqueue_many(&db.pool, &sleeps("gl", 40, 150))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut max_running = 0;
    let mut by_worker = std::collections::HashSet::new();
    while count(&db.pool, "gl", JobState::Completed).await < 40 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "drain took too long"
        );
        let rows: Vec<(Option<uuid::Uuid>,)> = sqlx::query_as(
            "SELECT worker_id FROM cowans_jobs WHERE queue = 'gl' AND state = 'running'",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap();
        max_running = max_running.max(rows.len());
        by_worker.extend(rows.into_iter().filter_map(|r| r.0));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        max_running <= 4,
        "{max_running} jobs ran at once under a limit of 4"
    );
    assert_eq!(max_running, 4, "the limit is used, not undershot");
    assert_eq!(by_worker.len(), 2, "both processes took part");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "40 × 150 ms over 4 slots"
    );
}

#[tokio::test]
async fn rate_buckets_grant_a_burst_then_one_token_per_interval() {
    let db = TestDb::new().await;
    let period = Duration::from_millis(1000);
    let keys = vec!["shop-a".to_owned(), "shop-b".to_owned()];
    let before = Utc::now();
    let started = std::time::Instant::now();
    let g = store::rate_take(&db.pool, "r", 5, period, &keys, &[7, 2])
        .await
        .unwrap();
    let after = Utc::now();
    assert_eq!(
        (g[0].granted, g[1].granted),
        (5, 2),
        "burst of at most 5 per key"
    );
    // The next token is one interval (200 ms) after the take, whenever the take ran: bounds
    // from clocks read around the call hold however slow the machine is.
    let interval = chrono::Duration::milliseconds(200);
    let slack = chrono::Duration::milliseconds(20);
    assert!(
        g[0].next_at >= before + interval - slack && g[0].next_at <= after + interval + slack,
        "next token of shop-a one interval after the take: {} not in [{before} + 200 ms, {after} + 200 ms]",
        g[0].next_at
    );
    let g = store::rate_take(&db.pool, "r", 5, period, &keys[..1], &[1])
        .await
        .unwrap();
    // Empty, unless a whole interval passed since the first take (a slow machine).
    let accrued = (started.elapsed().as_secs_f64() * 5.0).floor() as u32;
    assert!(
        g[0].granted <= accrued.min(1),
        "the burst emptied the bucket: {} granted",
        g[0].granted
    );
    store::rate_refund(&db.pool, "r", 5, period, "shop-a", 2)
        .await
        .unwrap();
    let emptied = std::time::Instant::now();
    let g = store::rate_take(&db.pool, "r", 5, period, &keys[..1], &[5])
        .await
        .unwrap();
    // The two refunded, plus what accrued since the first take on a slow machine.
    let accrued = (started.elapsed().as_secs_f64() * 5.0).floor() as u32;
    assert!(
        (2..=2 + accrued).contains(&g[0].granted),
        "refunded tokens come back: {} granted",
        g[0].granted
    );
    // Emptied again; at 5/s at least two tokens accrue in 450 ms, and no more than the time
    // that really passed (measured from before the emptying take) allows.
    tokio::time::sleep(Duration::from_millis(450)).await;
    let g = store::rate_take(&db.pool, "r", 5, period, &keys[..1], &[5])
        .await
        .unwrap();
    let most = ((emptied.elapsed().as_secs_f64() * 5.0).ceil() as u32).min(5);
    assert!(
        (2..=most).contains(&g[0].granted),
        "tokens accrue at 5/s: {} granted, at most {most} possible",
        g[0].granted
    );
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
    let engine = control_kinds::engine(db).await;
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
