//! The `cowans-worker` process as operators run it: Prometheus metrics, health and readiness; a
//! bad setting or an unreachable database is one line naming it (never the password).

use std::{process::Command, time::Duration};

use cowans_store::{self as store, NewJob};
use cowans_testkit::{TestDb, wait_for};
use cowans_tests::{FAST_ENGINE, WorkerProcess, queue, worker_binary};
use serde_json::json;

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
