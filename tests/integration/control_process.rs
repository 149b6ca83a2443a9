//! Cluster-wide control with real `cowans-worker` processes: pause and resume, a fleet-wide
//! concurrency limit, cron ticks enqueued once, autoscaling and the queue gauges.

use std::time::Duration;

use chrono::{DateTime, Utc};
use cowans_core::JobState;
use cowans_store::{self as store, NewJob};
use cowans_testkit::{TestDb, wait_for};
use cowans_tests::{FAST_ENGINE, WorkerProcess, count, queue};
use serde_json::json;

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

fn sleeps(q: &str, n: usize, ms: u64) -> Vec<NewJob> {
    (0..n)
        .map(|_| NewJob::new(queue(q), "demo.sleep", json!({"ms": ms})))
        .collect()
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

#[tokio::test]
async fn a_fleet_wide_concurrency_limit_holds_across_worker_processes() {
    let db = TestDb::new().await;
    store::set_queue_limits(&db.pool, &queue("gl"), Some(4), None)
        .await
        .unwrap();
    store::enqueue_many(&db.pool, &sleeps("gl", 40, 150))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let _a = WorkerProcess::spawn(&db.url(), "gl", 10, FAST_ENGINE);
    let _b = WorkerProcess::spawn(&db.url(), "gl", 10, FAST_ENGINE);
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

fn gauge(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn autoscaling_grows_under_backlog_shrinks_when_idle_and_queue_gauges_are_exported() {
    let db = TestDb::new().await;
    let mut env = FAST_ENGINE.to_vec();
    env.extend([
        ("COWANS__WORKER__AUTOSCALE__MIN", "1"),
        ("COWANS__WORKER__AUTOSCALE__MAX", "16"),
        ("COWANS__WORKER__AUTOSCALE__TARGET_WAIT", "50"),
        ("COWANS__WORKER__AUTOSCALE__INTERVAL", "200"),
    ]);
    let w = WorkerProcess::spawn(&db.url(), "as", 16, &env);
    let http = reqwest::Client::new();
    let metrics = || async {
        http.get(format!("{}/metrics", w.ops))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()
    };
    let target = r#"cowans_worker_concurrency_target{queue="as"}"#;
    let idle = wait_for("the starting target", Duration::from_secs(10), || async {
        gauge(&metrics().await?, target)
    })
    .await;
    assert_eq!(idle, 1.0, "starts at min");

    store::enqueue_many(&db.pool, &sleeps("as", 800, 40))
        .await
        .unwrap();
    let (grown, depth) = wait_for(
        "the target to grow and the depth gauge to show the backlog",
        Duration::from_secs(20),
        || async {
            let m = metrics().await?;
            let t = gauge(&m, target)?;
            let depth = gauge(&m, r#"cowans_queue_depth{queue="as",state="available"}"#)?;
            (t >= 8.0 && depth > 0.0).then_some((t, depth))
        },
    )
    .await;
    assert!(grown <= 16.0 && depth <= 800.0);
    let m = metrics().await.unwrap();
    assert!(
        gauge(&m, r#"cowans_queue_workers{queue="as"}"#) == Some(1.0),
        "{m}"
    );
    assert!(
        gauge(
            &m,
            r#"cowans_queue_oldest_available_age_seconds{queue="as"}"#
        )
        .is_some_and(|a| a > 0.0)
    );

    wait_for("the backlog to drain", Duration::from_secs(60), || async {
        (count(&db.pool, "as", JobState::Completed).await == 800).then_some(())
    })
    .await;
    wait_for(
        "the target to shrink back to min",
        Duration::from_secs(15),
        || async { (gauge(&metrics().await?, target)? == 1.0).then_some(()) },
    )
    .await;
    wait_for(
        "the depth gauge to show an empty queue",
        Duration::from_secs(5),
        || async {
            let m = metrics().await?;
            (gauge(&m, r#"cowans_queue_depth{queue="as",state="available"}"#)? == 0.0
                && gauge(&m, r#"cowans_queue_completed_last_minute{queue="as"}"#)? == 800.0)
                .then_some(())
        },
    )
    .await;
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
