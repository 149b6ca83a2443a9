//! Cron: each tick enqueued by exactly one racer, in the statement and across worker processes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use cowans_core::JobState;
use cowans_store as store;
use cowans_testkit::TestDb;
use cowans_tests::{FAST_ENGINE, WorkerProcess};
use serde_json::json;

use crate::support::job;

#[tokio::test]
async fn a_cron_tick_is_enqueued_by_exactly_one_racer() {
    let db = TestDb::new().await;
    let row = store::CronRow {
        name: "nightly".into(),
        schedule: "0 0 * * *".into(),
        timezone: "Europe/Paris".into(),
        queue: "cron".into(),
        kind: "test.job".into(),
        args: json!({}),
        catch_up: 0,
        last_tick: None,
    };
    store::upsert_cron(&db.pool, &row).await.unwrap();
    let seen = store::list_cron(&db.pool).await.unwrap()[0].last_tick;
    assert!(seen.is_some(), "a new entry counts from now");
    let tick = Utc::now();
    let jobs = [job("cron", 1)];
    let mut racers = Vec::new();
    for _ in 0..5 {
        let pool = db.pool.clone();
        let jobs = jobs.clone();
        racers.push(tokio::spawn(async move {
            store::advance_cron(&pool, "nightly", seen, tick, &jobs)
                .await
                .unwrap()
        }));
    }
    let mut won = 0;
    for r in racers {
        won += usize::from(r.await.unwrap());
    }
    assert_eq!(won, 1);
    assert!(
        store::count_by_state(&db.pool, "cron")
            .await
            .unwrap()
            .contains(&(JobState::Available, 1))
    );
}

#[tokio::test]
async fn each_cron_tick_is_enqueued_once_however_many_workers_run() {
    let db = TestDb::new().await;
    let job = cowans_queue::CronJob {
        name: "every-second".into(),
        schedule: "* * * * * *".into(),
        timezone: "Asia/Tokyo".into(),
        queue: "cr".into(),
        kind: "demo.noop".into(),
        args: json!({}),
        catch_up: 0,
    };
    cowans_queue::register_cron(&db.pool, &job).await.unwrap();
    let _a = WorkerProcess::spawn(&db.url(), "cr", 2, FAST_ENGINE);
    let _b = WorkerProcess::spawn(&db.url(), "cr", 2, FAST_ENGINE);
    let _c = WorkerProcess::spawn(&db.url(), "cr", 2, FAST_ENGINE);
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let ticks: Vec<(DateTime<Utc>, i64)> = sqlx::query_as(
        "SELECT run_at, count(*) FROM cowans_jobs WHERE queue = 'cr' GROUP BY run_at ORDER BY run_at",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(ticks.len() >= 3, "ticks: {ticks:?}");
    assert!(
        ticks.iter().all(|(_, n)| *n == 1),
        "a tick enqueued twice: {ticks:?}"
    );
    assert!(
        ticks
            .windows(2)
            .all(|w| w[1].0 - w[0].0 == chrono::Duration::seconds(1)),
        "one job per second, none skipped: {ticks:?}"
    );
    assert!(
        ticks.iter().all(|(t, _)| t.timestamp_subsec_nanos() == 0),
        "on the second"
    );
}
