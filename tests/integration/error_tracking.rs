//! Error tracking with real processes: a worker's failed attempts are grouped by kind and error
//! pattern (`GET /api/v1/errors`), and counted by kind and class on its `/metrics`.

use std::time::Duration;

use cowans_testkit::wait_for;
use cowans_tests::{ApiProcess, FAST_ENGINE, WorkerProcess};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn failed_attempts_are_grouped_by_kind_and_pattern_and_counted_by_class() {
    let db = cowans_tests::demo_db().await;
    let worker = WorkerProcess::spawn(&db.url(), "errs", 4, FAST_ENGINE);
    let api = ApiProcess::spawn(&db.url(), FAST_ENGINE);
    let key = crate::support::api::key(&db.pool, "viewer").await;
    let op = crate::support::api::key(&db.pool, "operator").await;
    let http = reqwest::Client::new();
    let get = |path: String| {
        let (http, key, base) = (http.clone(), key.clone(), api.base.clone());
        async move {
            let res = http
                .get(format!("{base}{path}"))
                .bearer_auth(&key)
                .send()
                .await
                .expect("request");
            let status = res.status();
            (status, res.json::<Value>().await.expect("json"))
        }
    };
    // Three jobs failing both their attempts ("demo failure on attempt 1", "... 2"): one group
    // of six; one job that fails once, then completes, joins it.
    let mut ids = Vec::new();
    for (times, attempts) in [(5, 2), (5, 2), (5, 2), (1, 3)] {
        let res = http
            .post(format!("{}/api/v1/jobs", api.base))
            .bearer_auth(&op)
            .json(
                &json!({"queue": "errs", "kind": "demo.fail", "max_attempts": attempts,
                "args": {"times": times}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        ids.push(res.json::<Value>().await.unwrap()["id"].as_i64().unwrap());
    }
    let groups = wait_for(
        "seven failed attempts grouped",
        Duration::from_secs(60),
        || async {
            let (_, b) = get("/api/v1/errors?kind=demo.fail".into()).await;
            (b["groups"][0]["count"] == 7).then_some(b)
        },
    )
    .await;
    let g = &groups["groups"][0];
    assert_eq!(groups["groups"].as_array().unwrap().len(), 1, "{groups}");
    assert_eq!(g["pattern"], "demo failure on attempt <n>", "{g}");
    assert_eq!(g["class"], "other", "{g}");
    assert_eq!(g["last_queue"], "errs", "{g}");
    assert!(
        ids.contains(&g["last_job_id"].as_i64().unwrap()),
        "the example is one of the failed jobs: {g}"
    );
    assert!(
        g["last_error"]
            .as_str()
            .unwrap()
            .starts_with("demo failure on attempt "),
        "{g}"
    );
    assert!(g["first_seen"].as_str() <= g["last_seen"].as_str(), "{g}");

    // Filters, and bad filters named.
    let (s, b) = get("/api/v1/errors?kind=demo.noop".into()).await;
    assert_eq!(
        (s, b["groups"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0))
    );
    let (s, b) = get("/api/v1/errors?class=other&limit=5".into()).await;
    assert_eq!(
        (s, b["groups"][0]["id"].clone()),
        (StatusCode::OK, g["id"].clone())
    );
    let (s, b) = get("/api/v1/errors?class=boom".into()).await;
    assert_eq!(
        (s, b["error"]["details"]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("class")),
        "{b}"
    );
    let (s, b) = get("/api/v1/errors?kind=a%00b".into()).await;
    assert_eq!(
        (s, b["error"]["details"]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("kind")),
        "{b}"
    );

    // The worker counts them by kind and class (a bounded label set).
    let metrics = cowans_tests::get_text(&http, &format!("{}/metrics", worker.ops)).await;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("cowans_job_errors_total{") && l.contains("kind=\"demo.fail\""))
        .unwrap_or_else(|| panic!("cowans_job_errors_total for demo.fail in:\n{metrics}"));
    assert!(line.contains("class=\"other\""), "{line}");
    assert!(line.ends_with(" 7"), "{line}");
}
