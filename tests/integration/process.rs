//! Real `cowans-worker` processes: crash and rescue, graceful shutdown, metrics, bad settings.

use std::{process::Command, time::Duration};

use cowans_core::JobState;
use cowans_store::{self as store, NewJob};
use cowans_testkit::{TestDb, wait_for};
use cowans_tests::{FAST_ENGINE, WorkerProcess, count, queue, worker_binary};
use serde_json::json;

#[tokio::test]
async fn a_killed_workers_jobs_are_rescued_and_each_effect_lands_exactly_once() {
    let db = cowans_tests::demo_db().await;
    let jobs: Vec<NewJob> = (0..120)
        .map(|i| {
            NewJob::new(
                queue("crash"),
                "demo.effect",
                json!({"key": format!("k{i:03}"), "sleep_ms": 250}),
            )
        })
        .collect();
    store::enqueue_many(&db.pool, &jobs).await.unwrap();

    let mut a = WorkerProcess::spawn(&db.url(), "crash", 10, FAST_ENGINE);
    wait_for(
        "worker A to finish some jobs and hold ten",
        Duration::from_secs(20),
        || async {
            let (done, running) = (
                count(&db.pool, "crash", JobState::Completed).await,
                count(&db.pool, "crash", JobState::Running).await,
            );
            (done >= 10 && running == 10).then_some(())
        },
    )
    .await;
    a.kill9();
    assert!(
        count(&db.pool, "crash", JobState::Running).await > 0,
        "A died holding running jobs"
    );

    let b = WorkerProcess::spawn(&db.url(), "crash", 10, FAST_ENGINE);
    wait_for("every job to complete", Duration::from_secs(60), || async {
        (count(&db.pool, "crash", JobState::Completed).await == 120).then_some(())
    })
    .await;

    let effects = store::demo::effect_counts(&db.pool).await.unwrap();
    assert_eq!(effects.len(), 120, "every job's effect is present");
    assert!(
        effects.iter().all(|(_, n)| *n == 1),
        "no effect twice: {effects:?}"
    );
    let rescued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM cowans_jobs WHERE attempt = 2 AND errors::text LIKE '%lease expired%'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(
        rescued >= 1,
        "the jobs A held were rescued (attempt counted)"
    );
    let (code, last) = b.terminate(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{last}");
}

#[tokio::test]
async fn sigterm_drains_running_jobs_and_leaves_the_rest_runnable() {
    let db = TestDb::new().await;
    let jobs: Vec<NewJob> = (0..6)
        .map(|_| NewJob::new(queue("term"), "demo.sleep", json!({"ms": 2000})))
        .collect();
    store::enqueue_many(&db.pool, &jobs).await.unwrap();
    let w = WorkerProcess::spawn(&db.url(), "term", 3, FAST_ENGINE);
    wait_for("three jobs running", Duration::from_secs(10), || async {
        (count(&db.pool, "term", JobState::Running).await == 3).then_some(())
    })
    .await;
    let (code, last) = w.terminate(Duration::from_secs(10));
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

#[tokio::test]
async fn the_worker_serves_prometheus_metrics_health_and_readiness() {
    let db = TestDb::new().await;
    let w = WorkerProcess::spawn(&db.url(), "metrics", 4, FAST_ENGINE);
    let jobs: Vec<NewJob> = (0..5)
        .map(|_| NewJob::new(queue("metrics"), "demo.noop", json!({})))
        .chain([NewJob::new(
            queue("metrics"),
            "demo.fail",
            json!({"times": 1}),
        )])
        .collect();
    store::enqueue_many(&db.pool, &jobs).await.unwrap();
    let http = reqwest::Client::new();
    let text = wait_for(
        "metrics to show the completed jobs",
        Duration::from_secs(20),
        || async {
            let body = http
                .get(format!("{}/metrics", w.ops))
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            (body.contains(r#"cowans_jobs_completed_total{queue="metrics",kind="demo.noop"} 5"#)
                && body
                    .contains(r#"cowans_jobs_completed_total{queue="metrics",kind="demo.fail"} 1"#))
            .then_some(body)
        },
    )
    .await;
    for needle in [
        r#"cowans_jobs_retried_total{queue="metrics",kind="demo.fail"} 1"#,
        r#"cowans_jobs_failed_total{queue="metrics",kind="demo.fail"} 1"#,
        r#"cowans_job_run_duration_seconds_bucket{queue="metrics",kind="demo.noop",le="0.001"}"#,
        r#"cowans_job_queue_wait_seconds_count{queue="metrics",kind="demo.noop"} 5"#,
        r#"cowans_jobs_in_flight{queue="metrics",kind="demo.noop"} 0"#,
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    let health = http.get(format!("{}/health", w.ops)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = http.get(format!("{}/ready", w.ops)).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}

fn run_worker(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(worker_binary());
    cmd.args(["run", "--ops-listen", "127.0.0.1:0"])
        .env("COWANS__APPS", "demo")
        .env_remove("DATABASE_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run cowans-worker");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_setting_is_one_line_naming_the_setting() {
    let (code, stderr) = run_worker(&[("COWANS__WORKER__CONCURRENCY", "lots")]);
    assert_eq!(code, Some(1));
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("worker.concurrency"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let (code, stderr) = run_worker(&[("COWANS__WORKER__QUEUES", "ok,Not Ok")]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("worker.queues") && stderr.contains("Not Ok"),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_database_names_the_url_without_its_password() {
    let (code, stderr) = run_worker(&[
        (
            "COWANS__DATABASE__URL",
            "postgres://app:hunter2@127.0.0.1:1/cowans",
        ),
        ("COWANS__LOG__FILTER", "off"),
    ]);
    assert_eq!(code, Some(1));
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("postgres://app:***@127.0.0.1:1/cowans"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(stderr.contains("COWANS__DATABASE__URL"), "{stderr}");
}
