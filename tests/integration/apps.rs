//! Applications on the engine: a job kind registered once is submittable over the API
//! (validated, listed with its schema) and run by a worker with its application enabled; an
//! application's tables exist only where it is enabled; every action reaches the same front door
//! whoever asks (the HTTP API, `cowans-worker ctl`), and API submits are counted.

use std::time::Duration;

use apalis_core::{error::BoxDynError, task::task_fn::task_fn};
use cowans_core::{Actor, JobState, Role};
use cowans_queue::{App, AppContext, FrontDoor, JobKind, JobMeta};
use cowans_service::Settings;
use cowans_testkit::{TestDb, wait_for};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::support::events::{next_json, open_ws};

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Greet {
    name: String,
    #[serde(default)]
    shout: bool,
}

/// The only place the kind `greeter.greet` is declared.
fn greeter_kinds(_: &AppContext) -> Result<Vec<JobKind>, String> {
    Ok(vec![
        JobKind::new(
            "greeter.greet",
            "greets someone",
            task_fn(|g: Greet, job: JobMeta| async move {
                // Proves the worker decoded the payload the API accepted.
                if g.name.is_empty() {
                    return Err::<(), BoxDynError>("nobody to greet".into());
                }
                assert_eq!(&*job.kind, "greeter.greet");
                let _ = g.shout;
                Ok(())
            }),
        )
        .queue("greetings"),
    ])
}

const GREETER: App = App {
    name: "greeter",
    description: "a test application",
    migrations: None,
    kinds: greeter_kinds,
};

fn settings(db: &TestDb, apps: &[&str]) -> Settings {
    let mut s = Settings {
        apps: apps.iter().map(|a| (*a).to_owned()).collect(),
        ..Settings::default()
    };
    s.database.url = db.url().into();
    s.engine.poll_interval = Duration::from_millis(200);
    s.engine.stats_interval = Duration::from_millis(200);
    s.engine.maintenance_interval = Duration::from_millis(200);
    s.api.rate_per_second = 1e6;
    s.api.rate_burst = 1_000_000;
    s
}

fn metrics() -> metrics_exporter_prometheus::PrometheusHandle {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .build_recorder()
        .handle()
}

async fn key(db: &TestDb, role: Role) -> String {
    FrontDoor::builder(db.pool.clone())
        .build()
        .create_api_key(&Actor::system("test"), "test", role)
        .await
        .unwrap()
        .0
}

/// `run_api` in this process (what `cowans-api serve` runs) with `available` applications; its
/// base URL once it accepts requests.
async fn start_api(settings: Settings, available: &'static [App]) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        cowans_api::run_api(
            settings,
            available,
            metrics(),
            listener,
            |addr| {
                let _ = tx.send(addr);
            },
            std::future::pending(),
        )
        .await
        .unwrap()
    });
    format!("http://{}", rx.await.unwrap())
}

#[tokio::test]
async fn a_kind_declared_once_is_validated_listed_submitted_and_run() {
    static AVAILABLE: [App; 1] = [GREETER];
    let db = TestDb::new().await;
    let base = start_api(settings(&db, &["greeter"]), &AVAILABLE).await;
    let worker = cowans_worker::Worker::start(
        settings(&db, &["greeter"]),
        &AVAILABLE,
        metrics(),
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        worker
            .queues()
            .iter()
            .map(|q| q.as_str())
            .collect::<Vec<_>>(),
        vec!["greetings"],
        "the worker consumes the kind's queue without being told"
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(worker.run(stop.clone().cancelled_owned()));

    let http = reqwest::Client::new();
    let operator = key(&db, Role::Operator).await;
    let kinds: Value = http
        .get(format!("{base}/api/v1/kinds"))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(kinds["reject_unknown"], true);
    let listed = &kinds["kinds"][0];
    assert_eq!(
        (&listed["kind"], &listed["queue"]),
        (&json!("greeter.greet"), &json!("greetings"))
    );
    assert_eq!(listed["schema"]["required"], json!(["name"]));

    let submit = |body: Value| {
        http.post(format!("{base}/api/v1/jobs"))
            .bearer_auth(&operator)
            .json(&body)
            .send()
    };
    let r = submit(json!({"kind": "greeter.greet", "args": {"name": 5}}))
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["details"]["field"], "args.name", "{v}");
    let r = submit(json!({"kind": "greeter.unknown"})).await.unwrap();
    assert_eq!(r.status(), 422, "a kind no application declares is refused");

    let r = submit(json!({"kind": "greeter.greet", "args": {"name": "Ada"}}))
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = cowans_core::JobId(r.json::<Value>().await.unwrap()["id"].as_i64().unwrap());
    let job = wait_for(
        "the worker to run the job",
        Duration::from_secs(20),
        || async {
            let j = cowans_store::get_job(&db.pool, id).await.unwrap()?;
            (j.state == JobState::Completed).then_some(j)
        },
    )
    .await;
    assert_eq!(job.queue, "greetings", "the kind's default queue");
    assert_eq!(job.attempt, 1);
    stop.cancel();
    assert!(running.await.unwrap().drained);
}

#[tokio::test]
async fn an_applications_tables_exist_only_where_it_is_enabled() {
    let exists = async |db: &TestDb| -> bool {
        sqlx::query_scalar("SELECT to_regclass('cowans_demo_effects') IS NOT NULL")
            .fetch_one(&db.pool)
            .await
            .unwrap()
    };
    let engine_only = TestDb::new().await;
    assert!(
        !exists(&engine_only).await,
        "the engine's migrations do not create it"
    );
    let migrations =
        cowans_service::apps::migrations(cowans_service::apps::AVAILABLE, &["demo".to_owned()])
            .unwrap();
    cowans_store::migrate(&engine_only.pool, &migrations.run, &migrations.known)
        .await
        .unwrap();
    assert!(exists(&engine_only).await, "enabling demo creates it");
    cowans_store::migrate(&engine_only.pool, &[], &migrations.known)
        .await
        .expect("a process without the demo enabled still accepts the database");
    let refused = cowans_store::migrate(&engine_only.pool, &[], &[]).await;
    assert!(
        matches!(refused, Err(cowans_store::StoreError::Migrate(_))),
        "a build that does not know the demo's migration refuses the database: {refused:?}"
    );
    let e = cowans_service::apps::migrations(cowans_service::apps::AVAILABLE, &["nope".into()])
        .unwrap_err();
    assert!(
        e.to_string().contains("\"nope\"") && e.to_string().contains("demo"),
        "{e}"
    );
}

#[tokio::test]
async fn pausing_from_the_command_line_is_audited_and_announced_like_the_http_route() {
    let db = TestDb::new().await;
    let base = start_api(settings(&db, &[]), &[]).await;
    let viewer = key(&db, Role::Viewer).await;
    let operator = key(&db, Role::Operator).await;
    let mut ws = open_ws(&base, "", Some(&viewer)).await.unwrap();

    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/queues/via-http/pause"))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let out = std::process::Command::new(cowans_tests::worker_binary())
        .args(["ctl", "pause", "via-cli"])
        .env("COWANS__DATABASE__URL", db.url())
        .env("COWANS__LOG__FILTER", "warn")
        .env("USER", "ana")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let first = next_json(&mut ws).await;
    let second = next_json(&mut ws).await;
    assert_eq!(first, json!({"type": "queue.paused", "queue": "via-http"}));
    assert_eq!(second, json!({"type": "queue.paused", "queue": "via-cli"}));

    let audit: Vec<(String, String, String, Option<String>, Value)> = sqlx::query_as(
        "SELECT actor, role, action, target, details FROM cowans_audit \
         WHERE action LIKE 'queue.%' ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(audit.len(), 2, "{audit:?}");
    let (http_actor, http_role, http_action, http_target, http_details) = &audit[0];
    let (cli_actor, cli_role, cli_action, cli_target, cli_details) = &audit[1];
    assert!(http_actor.starts_with("key:"), "{http_actor}");
    assert_eq!(http_role, "operator");
    assert_eq!(
        (cli_actor.as_str(), cli_role.as_str()),
        ("cli:ana", "admin")
    );
    assert_eq!((http_action, http_details), (cli_action, cli_details));
    assert_eq!(http_action, "queue.pause");
    assert_eq!(
        (http_target.as_deref(), cli_target.as_deref()),
        (Some("queue:via-http"), Some("queue:via-cli"))
    );
    for q in ["via-http", "via-cli"] {
        let c = cowans_store::queue_control(&db.pool, q).await.unwrap();
        assert!(c.paused, "{q} is paused");
    }
}

#[tokio::test]
async fn every_api_submit_is_counted_in_the_enqueued_metric() {
    let db = cowans_tests::demo_db().await;
    let api = cowans_tests::ApiProcess::spawn(
        &db.url(),
        &[
            ("COWANS__API__RATE_PER_SECOND", "1000000"),
            ("COWANS__API__RATE_BURST", "1000000"),
        ],
    );
    let base = api.base.clone();
    let operator = key(&db, Role::Operator).await;
    let http = reqwest::Client::new();
    let clients: Vec<_> = (0..20)
        .map(|c| {
            let (http, base, operator) = (http.clone(), base.clone(), operator.clone());
            tokio::spawn(async move {
                for i in 0..50 {
                    let r = http
                        .post(format!("{base}/api/v1/jobs"))
                        .bearer_auth(&operator)
                        .json(&json!({"kind": "demo.noop", "unique_key": format!("{c}-{i}")}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 201);
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    // A duplicate is not an enqueue.
    let r = http
        .post(format!("{base}/api/v1/jobs"))
        .bearer_auth(&operator)
        .json(&json!({"kind": "demo.noop", "unique_key": "0-0"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = cowans_tests::get_text(&http, &format!("{base}/metrics")).await;
    let line = text
        .lines()
        .find(|l| l.starts_with("cowans_jobs_enqueued_total{"))
        .unwrap_or_else(|| panic!("no enqueued counter in:\n{text}"));
    assert!(
        line.contains(r#"kind="demo.noop""#) && line.contains(r#"queue="default""#),
        "{line}"
    );
    assert!(line.ends_with(" 1000"), "{line}");
}
