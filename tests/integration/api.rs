//! The HTTP API on a real server (port 0) over real Postgres: every route's happy path, the auth
//! matrix, bad input, pagination, audit.

use cowans_testkit::TestDb;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub(crate) struct Api {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    pub(crate) db: TestDb,
    pub(crate) pool: cowans_store::PgPool,
    pub(crate) viewer: String,
    pub(crate) operator: String,
    pub(crate) admin: String,
}

/// A new API key named `<role>-key` (created through the front door, as the CLI does).
pub(crate) async fn key(pool: &cowans_store::PgPool, role: &str) -> String {
    let role = cowans_core::Role::parse(role).unwrap();
    let (key, _) = cowans_queue::FrontDoor::builder(pool.clone())
        .build()
        .create_api_key(
            &cowans_core::Actor::system("test"),
            &format!("{role}-key"),
            role,
        )
        .await
        .unwrap();
    key
}

async fn api() -> Api {
    api_with(cowans_api::ApiOptions::default()).await
}

/// A real API server on port 0 with `options`, over a fresh database, with a key per role; no
/// kinds registered (any kind accepted unchecked).
pub(crate) async fn api_with(options: cowans_api::ApiOptions) -> Api {
    serve_api(
        TestDb::new().await,
        options,
        cowans_core::KindRegistry::new(),
    )
    .await
}

/// A test recorder's handle, for the `/metrics` of an API served here.
fn metrics_handle() -> metrics_exporter_prometheus::PrometheusHandle {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .build_recorder()
        .handle()
}

/// Serves the API as the binary does (group commit of 500, the event relay listening before
/// the first request), with these kinds.
pub(crate) async fn serve_api(
    db: TestDb,
    options: cowans_api::ApiOptions,
    kinds: cowans_core::KindRegistry,
) -> Api {
    let base = serve(&db, options, kinds, metrics_handle()).await;
    let pool = db.pool.clone();
    Api {
        viewer: key(&pool, "viewer").await,
        operator: key(&pool, "operator").await,
        admin: key(&pool, "admin").await,
        base,
        http: reqwest::Client::new(),
        pool,
        db,
    }
}

/// Serves the API on port 0 over `db`; its base URL.
pub(crate) async fn serve(
    db: &TestDb,
    options: cowans_api::ApiOptions,
    kinds: cowans_core::KindRegistry,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
) -> String {
    let front = cowans_queue::FrontDoor::builder(db.pool.clone())
        .kinds(kinds)
        .group_commit(500)
        .build();
    let ops = cowans_service::ops::router(db.pool.clone(), metrics, &[]);
    let server = cowans_api::ApiServer::new(front, ops, options);
    server.ready().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(server.serve(listener, std::future::pending()));
    base
}

impl Api {
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

pub(crate) fn assert_error_shape(v: &Value, code: &str) {
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    assert!(v["error"].get("details").is_some(), "{v}");
}

#[tokio::test]
async fn every_route_refuses_missing_malformed_wrong_and_revoked_credentials_and_low_roles() {
    let api = api().await;
    // (method, path, body, least role)
    let routes: Vec<(Method, &str, Option<Value>, &str)> = vec![
        (
            Method::POST,
            "/api/v1/jobs",
            Some(json!({"queue": "q", "kind": "k"})),
            "operator",
        ),
        (
            Method::POST,
            "/api/v1/jobs/bulk",
            Some(json!([{"queue": "q", "kind": "k"}])),
            "operator",
        ),
        (Method::GET, "/api/v1/jobs", None, "viewer"),
        (Method::GET, "/api/v1/jobs/1", None, "viewer"),
        (Method::POST, "/api/v1/jobs/1/cancel", None, "operator"),
        (Method::POST, "/api/v1/jobs/1/retry", None, "operator"),
        (Method::GET, "/api/v1/kinds", None, "viewer"),
        (Method::GET, "/api/v1/events/ws", None, "viewer"),
        (Method::GET, "/api/v1/queues", None, "viewer"),
        (Method::GET, "/api/v1/queues/q", None, "viewer"),
        (Method::POST, "/api/v1/queues/q/pause", None, "operator"),
        (Method::POST, "/api/v1/queues/q/resume", None, "operator"),
        (Method::GET, "/api/v1/queues/q/dead", None, "viewer"),
        (
            Method::POST,
            "/api/v1/queues/q/dead/redrive",
            Some(json!({"all": true})),
            "operator",
        ),
        (
            Method::POST,
            "/api/v1/queues/q/dead/purge",
            Some(json!({"expected": 0})),
            "admin",
        ),
        (
            Method::POST,
            "/api/v1/batches",
            Some(json!({"jobs": [{"queue": "q", "kind": "k"}]})),
            "operator",
        ),
        (Method::GET, "/api/v1/batches/1", None, "viewer"),
        (Method::POST, "/api/v1/batches/1/cancel", None, "operator"),
        (Method::GET, "/api/v1/audit", None, "admin"),
    ];
    let revoked = key(&api.pool, "admin").await;
    let front = cowans_queue::FrontDoor::builder(api.pool.clone()).build();
    let row = front.find_api_key(&revoked).await.unwrap().unwrap();
    front
        .revoke_api_key(&cowans_core::Actor::system("test"), row.id)
        .await
        .unwrap();
    for (method, path, body, least) in &routes {
        let (s, v) = api.call(method.clone(), path, None, body.clone()).await;
        assert_eq!(s, 401, "{method} {path} without credentials");
        assert_error_shape(&v, "unauthorized");
        let r = api
            .http
            .request(method.clone(), format!("{}{path}", api.base))
            .header("authorization", "Basic dXNlcjpwYXNz")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} {path} with a malformed header");
        for bad in ["cwk_not_a_real_key", "garbage", revoked.as_str()] {
            let (s, _) = api
                .call(method.clone(), path, Some(bad), body.clone())
                .await;
            assert_eq!(s, 401, "{method} {path} with key {bad:.8}…");
        }
        for (role, key) in [
            ("viewer", &api.viewer),
            ("operator", &api.operator),
            ("admin", &api.admin),
        ] {
            let (s, v) = api
                .call(method.clone(), path, Some(key), body.clone())
                .await;
            let allowed = matches!(
                (*least, role),
                ("viewer", _) | ("operator", "operator" | "admin") | ("admin", "admin")
            );
            if allowed {
                assert!(s != 401 && s != 403, "{method} {path} as {role}: {s} {v}");
            } else {
                assert_eq!(s, 403, "{method} {path} as {role}");
                assert_error_shape(&v, "forbidden");
            }
        }
    }
    // The X-Api-Key header works too.
    let r = api
        .http
        .get(format!("{}/api/v1/queues", api.base))
        .header("x-api-key", &api.viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn jobs_are_submitted_read_listed_cancelled_and_retried() {
    let api = api().await;
    let op = Some(api.operator.as_str());
    let (s, v) = api.call(Method::POST, "/api/v1/jobs", op, Some(json!({"queue": "mail", "kind": "mail.send", "args": {"to": "a@b.c"}, "priority": 3, "unique_key": "order-1"}))).await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_i64().unwrap();
    assert_eq!(v["duplicate"], false);
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/jobs",
            op,
            Some(json!({"queue": "mail", "kind": "mail.send", "unique_key": "order-1"})),
        )
        .await;
    assert_eq!(
        (s, v["id"].as_i64(), v["duplicate"].clone()),
        (StatusCode::OK, Some(id), json!(true))
    );
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/jobs/bulk",
            op,
            Some(json!([
                {"queue": "mail", "kind": "mail.send", "args": {"n": 1}},
                {"queue": "mail", "kind": "mail.send", "unique_key": "order-1"},
                {"queue": "other", "kind": "x.y"}
            ])),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(
        (results[1]["id"].as_i64(), results[1]["duplicate"].clone()),
        (Some(id), json!(true))
    );

    let (s, v) = api
        .call(
            Method::GET,
            &format!("/api/v1/jobs/{id}"),
            Some(&api.viewer),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        (
            v["queue"].clone(),
            v["state"].clone(),
            v["args"]["to"].clone(),
            v["priority"].clone()
        ),
        (json!("mail"), json!("available"), json!("a@b.c"), json!(3))
    );
    let (s, v) = api
        .call(Method::GET, "/api/v1/jobs/999999", Some(&api.viewer), None)
        .await;
    assert_eq!(s, 404);
    assert_error_shape(&v, "not_found");

    // Keyset pagination over a queue.
    let (_, page1) = api
        .call(
            Method::GET,
            "/api/v1/jobs?queue=mail&limit=1",
            Some(&api.viewer),
            None,
        )
        .await;
    assert_eq!(page1["jobs"].as_array().unwrap().len(), 1);
    let next = page1["next_after"].as_i64().unwrap();
    let (_, page2) = api
        .call(
            Method::GET,
            &format!("/api/v1/jobs?queue=mail&limit=1&after={next}"),
            Some(&api.viewer),
            None,
        )
        .await;
    assert!(page2["jobs"][0]["id"].as_i64().unwrap() > next);
    let (_, page3) = api
        .call(
            Method::GET,
            &format!(
                "/api/v1/jobs?queue=mail&limit=5&after={}",
                page2["jobs"][0]["id"]
            ),
            Some(&api.viewer),
            None,
        )
        .await;
    assert!(page3["jobs"].as_array().unwrap().is_empty() && page3["next_after"].is_null());

    // Cancel, then retry; both refused from the wrong state.
    let (s, v) = api
        .call(Method::POST, &format!("/api/v1/jobs/{id}/cancel"), op, None)
        .await;
    assert_eq!((s, v["was"].clone()), (StatusCode::OK, json!("available")));
    let (s, v) = api
        .call(Method::POST, &format!("/api/v1/jobs/{id}/cancel"), op, None)
        .await;
    assert_eq!(s, 409);
    assert_error_shape(&v, "conflict");
    let (_, listed) = api
        .call(
            Method::GET,
            "/api/v1/jobs?state=cancelled",
            Some(&api.viewer),
            None,
        )
        .await;
    assert_eq!(listed["jobs"][0]["id"].as_i64(), Some(id));
    let (s, v) = api
        .call(Method::POST, &format!("/api/v1/jobs/{id}/retry"), op, None)
        .await;
    assert_eq!(
        (s, v["state"].clone()),
        (StatusCode::OK, json!("available")),
        "{v}"
    );
    let (s, _) = api
        .call(Method::POST, &format!("/api/v1/jobs/{id}/retry"), op, None)
        .await;
    assert_eq!(s, 409);
    let (s, _) = api
        .call(Method::POST, "/api/v1/jobs/424242/cancel", op, None)
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn bad_input_is_refused_with_422_naming_the_field() {
    let api = api().await;
    let op = Some(api.operator.as_str());
    let cases = [
        (json!({"kind": "k"}), "queue"),
        (json!({"queue": "Bad Queue", "kind": "k"}), "queue"),
        (json!({"queue": "q", "kind": "Not A Kind"}), "kind"),
        (
            json!({"queue": "q", "kind": "k", "max_attempts": 0}),
            "max_attempts",
        ),
        (
            json!({"queue": "q", "kind": "k", "surprise": 1}),
            "surprise",
        ),
        (
            json!({"queue": "q", "kind": "k", "priority": "high"}),
            "priority",
        ),
    ];
    for (body, field) in cases {
        let (s, v) = api
            .call(Method::POST, "/api/v1/jobs", op, Some(body.clone()))
            .await;
        assert_eq!(s, 422, "{body} -> {v}");
        assert_error_shape(&v, "invalid");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(field),
            "{body}: {v}"
        );
    }
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/jobs/bulk",
            op,
            Some(json!([{"queue": "q", "kind": "k"}, {"queue": "q", "kind": "BAD"}])),
        )
        .await;
    assert_eq!(s, 422);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("jobs[1].kind"),
        "{v}"
    );
    let (s, v) = api
        .call(
            Method::GET,
            "/api/v1/jobs?state=sleeping",
            Some(&api.viewer),
            None,
        )
        .await;
    assert_eq!(s, 422);
    assert_eq!(v["error"]["details"]["field"], "state");
    let (s, v) = api
        .call(Method::GET, "/api/v1/jobs?limit=0", Some(&api.viewer), None)
        .await;
    assert_eq!(
        (s, v["error"]["details"]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("limit"))
    );
    let (s, _) = api
        .call(Method::POST, "/api/v1/queues/Bad%20Q/pause", op, None)
        .await;
    assert_eq!(s, 422);
    // Not JSON, and too large.
    let r = api
        .http
        .post(format!("{}/api/v1/jobs", api.base))
        .bearer_auth(&api.operator)
        .body("queue=q")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let huge = format!("[{}]", vec![r#"{"queue":"q","kind":"k","args":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#; 200_000].join(","));
    let r = api
        .http
        .post(format!("{}/api/v1/jobs/bulk", api.base))
        .bearer_auth(&api.operator)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let (s, v) = api
        .call(Method::GET, "/api/v1/nope", Some(&api.viewer), None)
        .await;
    assert_eq!(s, 404);
    assert_error_shape(&v, "not_found");
}

#[tokio::test]
async fn queues_are_listed_paused_resumed_and_every_change_is_audited() {
    let api = api().await;
    let op = Some(api.operator.as_str());
    api.call(
        Method::POST,
        "/api/v1/jobs",
        op,
        Some(json!({"queue": "mail", "kind": "k"})),
    )
    .await;
    cowans_store::refresh_queue_stats(&api.pool).await.unwrap();
    let (s, v) = api
        .call(Method::GET, "/api/v1/queues", Some(&api.viewer), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["queues"][0]["queue"], "mail");
    assert_eq!(v["queues"][0]["counts"]["available"], 1);
    let (s, v) = api
        .call(Method::POST, "/api/v1/queues/mail/pause", op, None)
        .await;
    assert_eq!((s, v["paused"].clone()), (StatusCode::OK, json!(true)));
    let (_, v) = api
        .call(Method::GET, "/api/v1/queues/mail", Some(&api.viewer), None)
        .await;
    assert_eq!(v["paused"], true);
    api.call(Method::POST, "/api/v1/queues/mail/resume", op, None)
        .await;
    let (_, v) = api
        .call(Method::GET, "/api/v1/queues/mail", Some(&api.viewer), None)
        .await;
    assert_eq!(v["paused"], false);
    let (s, _) = api
        .call(
            Method::GET,
            "/api/v1/queues/never-seen",
            Some(&api.viewer),
            None,
        )
        .await;
    assert_eq!(s, 404);

    let (s, v) = api
        .call(Method::GET, "/api/v1/audit?limit=1", Some(&api.admin), None)
        .await;
    assert_eq!(s, 200);
    let e = &v["entries"][0];
    assert_eq!(e["action"], "queue.resume");
    assert_eq!(e["target"], "queue:mail");
    assert_eq!(e["role"], "operator");
    assert!(
        e["actor"].as_str().unwrap().ends_with(":operator-key"),
        "{e}"
    );
    assert!(
        e["client_addr"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{e}"
    );
    let (_, older) = api
        .call(
            Method::GET,
            &format!("/api/v1/audit?limit=5&before={}", v["next_before"]),
            Some(&api.admin),
            None,
        )
        .await;
    assert_eq!(older["entries"][0]["action"], "queue.pause");
}

#[tokio::test]
async fn keys_are_created_on_the_command_line_shown_once_and_stored_hashed() {
    let db = TestDb::new().await;
    let run = |args: &[&str]| {
        std::process::Command::new(cowans_tests::binary("cowans-api"))
            .args(args)
            .env("COWANS__DATABASE__URL", db.url())
            .env("COWANS__LOG__FILTER", "warn")
            .env_remove("DATABASE_URL")
            .output()
            .expect("run cowans-api")
    };
    let out = run(&["keys", "create", "--name", "ci", "--role", "operator"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let key = stdout
        .lines()
        .find(|l| l.starts_with("cwk_"))
        .unwrap_or_else(|| panic!("{stdout}"))
        .to_owned();
    let front = cowans_queue::FrontDoor::builder(db.pool.clone()).build();
    let row = front.find_api_key(&key).await.unwrap().unwrap();
    assert_eq!((row.name.as_str(), row.role.as_str()), ("ci", "operator"));
    let stored: Vec<u8> = sqlx::query_scalar("SELECT key_hash FROM cowans_api_keys WHERE id = $1")
        .bind(row.id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(
        !stored.windows(key.len()).any(|w| w == key.as_bytes()),
        "only the hash is stored"
    );
    let out = run(&["keys", "create", "--name", "x", "--role", "root"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("role") && err.trim().lines().count() == 1,
        "{err}"
    );
    let out = run(&["keys", "revoke", "--id", &row.id.to_string()]);
    assert!(out.status.success());
    assert!(front.find_api_key(&key).await.unwrap().is_none());
}

#[tokio::test]
async fn dead_letters_are_listed_redriven_and_purged_only_with_the_expected_count() {
    let api = api().await;
    let op = Some(api.operator.as_str());
    // Three dead letters in "mail" (two of kind a), one in "other".
    let mut dead = Vec::new();
    for (q, kind) in [("mail", "a"), ("mail", "a"), ("mail", "b"), ("other", "a")] {
        let id = cowans_store::enqueue(
            &api.pool,
            &cowans_store::NewJob::new(cowans_tests::queue(q), kind, json!({})).max_attempts(1),
        )
        .await
        .unwrap()
        .id;
        let c = cowans_store::claim(
            &api.pool,
            &cowans_tests::queue(q),
            1,
            uuid::Uuid::new_v4(),
            std::time::Duration::from_secs(30),
            None,
        )
        .await
        .unwrap();
        let lease = cowans_store::LeaseRef {
            id,
            lease: c[0].lease,
        };
        cowans_store::settle_failures(
            &api.pool,
            uuid::Uuid::new_v4(),
            &[cowans_store::Failed {
                lease,
                attempt: 1,
                error: "boom".into(),
                retry_in: None,
            }],
        )
        .await
        .unwrap();
        dead.push(id.0);
    }
    let (s, v) = api
        .call(
            Method::GET,
            "/api/v1/queues/mail/dead?limit=2",
            Some(&api.viewer),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["jobs"].as_array().unwrap().len(), 2);
    assert_eq!(v["jobs"][0]["errors"][0]["error"], "boom");
    let (_, v2) = api
        .call(
            Method::GET,
            &format!("/api/v1/queues/mail/dead?after={}", v["next_after"]),
            Some(&api.viewer),
            None,
        )
        .await;
    assert_eq!(v2["jobs"].as_array().unwrap().len(), 1);
    // Purge with the wrong count: refused, nothing deleted. Operators may not purge at all.
    let (s, _) = api
        .call(
            Method::POST,
            "/api/v1/queues/mail/dead/purge",
            op,
            Some(json!({"kind": "a", "expected": 2})),
        )
        .await;
    assert_eq!(s, 403);
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/queues/mail/dead/purge",
            Some(&api.admin),
            Some(json!({"kind": "a", "expected": 5})),
        )
        .await;
    assert_eq!(s, 409);
    assert_eq!(
        (
            v["error"]["details"]["expected"].clone(),
            v["error"]["details"]["actual"].clone()
        ),
        (json!(5), json!(2))
    );
    // Re-drive one by id (an id of another queue is ignored), then purge the kind "a" pair... one left.
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/queues/mail/dead/redrive",
            op,
            Some(json!({"ids": [dead[0], dead[3]]})),
        )
        .await;
    assert_eq!(
        (s, v["redriven"].clone()),
        (StatusCode::OK, json!(1)),
        "{v}"
    );
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/queues/mail/dead/purge",
            Some(&api.admin),
            Some(json!({"kind": "a", "expected": 1})),
        )
        .await;
    assert_eq!((s, v["purged"].clone()), (StatusCode::OK, json!(1)), "{v}");
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/queues/mail/dead/redrive",
            op,
            Some(json!({"all": true})),
        )
        .await;
    assert_eq!((s, v["redriven"].clone()), (StatusCode::OK, json!(1)));
    let (s, _) = api
        .call(
            Method::POST,
            "/api/v1/queues/mail/dead/redrive",
            op,
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 422);
    let other = cowans_store::get_job(&api.pool, cowans_core::JobId(dead[3]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        other.state,
        cowans_core::JobState::Dead,
        "the other queue's dead letter was not touched"
    );
}

#[tokio::test]
async fn batches_are_created_followed_and_cancelled() {
    let api = api().await;
    let op = Some(api.operator.as_str());
    let (s, v) = api
        .call(Method::POST, "/api/v1/batches", op, Some(json!({
            "description": "reprice",
            "jobs": [{"queue": "b", "kind": "k"}, {"queue": "b", "kind": "k"}, {"queue": "b", "kind": "k"}],
            "callback": {"queue": "b", "kind": "batch.done", "args": {"x": 1}}
        })))
        .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_i64().unwrap();
    assert_eq!(v["results"].as_array().unwrap().len(), 3);
    let (s, v) = api
        .call(
            Method::GET,
            &format!("/api/v1/batches/{id}"),
            Some(&api.viewer),
            None,
        )
        .await;
    assert_eq!(
        (s, v["total"].clone(), v["counts"]["available"].clone()),
        (StatusCode::OK, json!(3), json!(3))
    );
    let (s, v) = api
        .call(
            Method::POST,
            &format!("/api/v1/batches/{id}/cancel"),
            op,
            None,
        )
        .await;
    assert_eq!((s, v["cancelled_jobs"].clone()), (StatusCode::OK, json!(3)));
    cowans_store::refresh_batches(&api.pool, 10).await.unwrap();
    let (_, v) = api
        .call(
            Method::GET,
            &format!("/api/v1/batches/{id}"),
            Some(&api.viewer),
            None,
        )
        .await;
    assert!(
        v["finished_at"].is_string() && v["callback_job_id"].is_i64(),
        "{v}"
    );
    let (s, _) = api
        .call(
            Method::GET,
            "/api/v1/batches/99999",
            Some(&api.viewer),
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = api
        .call(Method::POST, "/api/v1/batches/99999/cancel", op, None)
        .await;
    assert_eq!(s, 404);
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/batches",
            op,
            Some(json!({"jobs": []})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["details"]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("jobs"))
    );
}

#[tokio::test]
async fn a_key_over_its_rate_gets_429_with_retry_after_and_metrics_count_requests() {
    let db = TestDb::new().await;
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let rate = cowans_api::rate_limit::RateConfig {
        per_second: 1.0,
        burst: 3.0,
    };
    // The router records through the global facade; route this test's recorder there.
    let _ = metrics::set_global_recorder(recorder);
    let options = cowans_api::ApiOptions {
        rate,
        ..Default::default()
    };
    let base = serve(
        &db,
        options,
        cowans_core::KindRegistry::new(),
        handle.clone(),
    )
    .await;
    let (k1, k2) = (key(&db.pool, "viewer").await, key(&db.pool, "viewer").await);
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = http
            .get(format!("{base}/api/v1/queues"))
            .bearer_auth(&k1)
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            assert_eq!(r.headers()["retry-after"], "1");
            let v: Value = r.json().await.unwrap();
            assert_error_shape(&v, "rate_limited");
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    let r = http
        .get(format!("{base}/api/v1/queues"))
        .bearer_auth(&k2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "another key has its own budget");
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            r#"cowans_api_requests_total{route="/api/v1/queues",method="GET",status="429"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"cowans_api_request_duration_seconds_count{route="/api/v1/queues"}"#)
            || text.contains("cowans_api_request_duration_seconds{route=\"/api/v1/queues\""),
        "{text}"
    );
}

/// Reads SSE frames until `want` data lines arrived (or 10 s pass).
async fn sse_events(resp: &mut reqwest::Response, want: usize) -> Vec<(String, Value)> {
    let mut buf = String::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while out.len() < want {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .expect("events within 10 s")
            .unwrap()
            .unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let name = frame
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("message")
                .to_owned();
            if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) {
                out.push((name, serde_json::from_str(data).unwrap()));
            }
        }
    }
    out
}

#[tokio::test]
async fn a_live_event_stream_relays_batch_and_queue_events_filtered_per_client() {
    let api = api().await;
    let op = Some(api.operator.as_str());
    let mk = |n: usize| json!({"jobs": (0..n).map(|_| json!({"queue": "ev", "kind": "k"})).collect::<Vec<_>>()});
    let (_, a) = api
        .call(Method::POST, "/api/v1/batches", op, Some(mk(2)))
        .await;
    let (_, b) = api
        .call(Method::POST, "/api/v1/batches", op, Some(mk(3)))
        .await;
    let (a, b) = (a["id"].as_i64().unwrap(), b["id"].as_i64().unwrap());
    let mut batch_stream = api
        .http
        .get(format!("{}/api/v1/events?batch={a}", api.base))
        .bearer_auth(&api.viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(batch_stream.headers()["content-type"], "text/event-stream");
    let mut queue_stream = api
        .http
        .get(format!("{}/api/v1/events?queue=ev", api.base))
        .bearer_auth(&api.viewer)
        .send()
        .await
        .unwrap();
    // The leader's batch pass publishes; another process (this test) plays the leader.
    api.call(
        Method::POST,
        &format!("/api/v1/batches/{b}/cancel"),
        op,
        None,
    )
    .await;
    api.call(
        Method::POST,
        &format!("/api/v1/batches/{a}/cancel"),
        op,
        None,
    )
    .await;
    cowans_store::refresh_batches(&api.pool, 10).await.unwrap();
    let got = sse_events(&mut batch_stream, 2).await;
    assert_eq!(
        (got[0].0.as_str(), got[1].0.as_str()),
        ("batch.cancelled", "batch.finished")
    );
    assert!(
        got.iter().all(|(_, e)| e["batch_id"] == json!(a)),
        "only batch {a}'s events: {got:?}"
    );
    assert_eq!(got[0].1["cancelled_jobs"], json!(2));
    assert_eq!(got[1].1["counts"]["cancelled"], json!(2));
    api.call(Method::POST, "/api/v1/queues/ev/pause", op, None)
        .await;
    let got = sse_events(&mut queue_stream, 1).await;
    assert_eq!(
        (got[0].0.as_str(), got[0].1["queue"].clone()),
        ("queue.paused", json!("ev"))
    );
    let (s, _) = api.call(Method::GET, "/api/v1/events", None, None).await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn a_hundred_thousand_job_ndjson_submit_streams_in_with_a_result_per_line() {
    let api = api().await;
    let mut body = String::with_capacity(100_000 * 80);
    for i in 0..100_000 {
        if i == 500 {
            body.push_str("{\"queue\":\"nd\",\"kind\":\"Bad Kind\"}\n");
        } else if i == 700 {
            body.push_str("not json\n");
        } else {
            body.push_str(&format!("{{\"queue\":\"nd\",\"kind\":\"nd.job\",\"args\":{{\"n\":{i},\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxx\"}}}}\n"));
        }
    }
    let bytes = body.len();
    let before = cowans_tests::rss_kib();
    let t0 = std::time::Instant::now();
    let r = api
        .http
        .post(format!("{}/api/v1/jobs/bulk", api.base))
        .bearer_auth(&api.operator)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let text = r.text().await.unwrap();
    let elapsed = t0.elapsed();
    let grew = cowans_tests::rss_kib().saturating_sub(before);
    let results: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), 100_000, "a result per line");
    assert!(
        results[500]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("kind"),
        "{}",
        results[500]
    );
    assert!(
        results[700]["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("line 700"),
        "{}",
        results[700]
    );
    assert_eq!(results[699]["line"], 699);
    assert!(results[699]["id"].is_i64());
    let inserted: i64 = sqlx::query_scalar("SELECT count(*) FROM cowans_jobs WHERE queue = 'nd'")
        .fetch_one(&api.pool)
        .await
        .unwrap();
    assert_eq!(inserted, 99_998);
    println!(
        "ndjson submit: 100000 lines ({bytes} bytes) in {:.2} s = {:.0} jobs/s; process RSS grew {grew} KiB (client body and server together)",
        elapsed.as_secs_f64(),
        100_000.0 / elapsed.as_secs_f64()
    );
    assert!(grew < 48 * 1024, "memory grew {grew} KiB");
}

#[tokio::test]
async fn the_openapi_document_is_generated_and_lists_every_route() {
    let api = api().await;
    let (s, doc) = api
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(s, 200, "public");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let expected = [
        ("post", "/api/v1/jobs"),
        ("get", "/api/v1/jobs"),
        ("post", "/api/v1/jobs/bulk"),
        ("get", "/api/v1/jobs/{id}"),
        ("post", "/api/v1/jobs/{id}/cancel"),
        ("post", "/api/v1/jobs/{id}/retry"),
        ("get", "/api/v1/queues"),
        ("get", "/api/v1/queues/{queue}"),
        ("post", "/api/v1/queues/{queue}/pause"),
        ("post", "/api/v1/queues/{queue}/resume"),
        ("get", "/api/v1/queues/{queue}/dead"),
        ("post", "/api/v1/queues/{queue}/dead/redrive"),
        ("post", "/api/v1/queues/{queue}/dead/purge"),
        ("post", "/api/v1/batches"),
        ("get", "/api/v1/batches/{id}"),
        ("post", "/api/v1/batches/{id}/cancel"),
        ("get", "/api/v1/audit"),
        ("get", "/api/v1/events"),
        ("get", "/api/v1/events/ws"),
        ("get", "/api/v1/kinds"),
    ];
    for (method, path) in expected {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} missing from the document");
        assert!(
            op["description"]
                .as_str()
                .unwrap_or("")
                .starts_with("Role: "),
            "{method} {path} declares its role"
        );
        assert!(
            op["security"].is_array(),
            "{method} {path} declares its security"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["SubmitJob"]["properties"]["queue"].is_object());
}

#[tokio::test]
async fn jwt_bearer_tokens_carry_a_role_and_expire() {
    use jsonwebtoken::{EncodingKey, Header, encode};
    let db = TestDb::new().await;
    let options = cowans_api::ApiOptions {
        jwt: Some(cowans_api::auth::JwtConfig::hs256(b"jwt-secret")),
        ..Default::default()
    };
    let base = serve(
        &db,
        options,
        cowans_core::KindRegistry::new(),
        metrics_handle(),
    )
    .await;
    let now = chrono::Utc::now().timestamp();
    let token = |role: &str, exp: i64, secret: &[u8]| {
        encode(
            &Header::default(),
            &json!({"sub": "ci-bot", "role": role, "exp": exp}),
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    };
    let http = reqwest::Client::new();
    let submit = |t: String| {
        http.post(format!("{base}/api/v1/jobs"))
            .bearer_auth(t)
            .json(&json!({"queue": "jwt", "kind": "k"}))
            .send()
    };
    let status = async |role: &str, exp: i64, secret: &[u8]| {
        submit(token(role, exp, secret)).await.unwrap().status()
    };
    assert_eq!(status("operator", now + 600, b"jwt-secret").await, 201);
    assert_eq!(status("viewer", now + 600, b"jwt-secret").await, 403);
    let expired = submit(token("operator", now - 600, b"jwt-secret"))
        .await
        .unwrap();
    assert_eq!(expired.status(), 401);
    let v: Value = expired.json().await.unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("expired"),
        "{v}"
    );
    assert_eq!(status("operator", now + 600, b"other-secret").await, 401);
    assert_eq!(status("root", now + 600, b"jwt-secret").await, 401);
    let audit: Vec<(String, String)> = sqlx::query_as("SELECT actor, action FROM cowans_audit")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        audit,
        [("jwt:ci-bot".to_owned(), "job.submit".to_owned())],
        "the one accepted submit is audited under the token's subject"
    );
}
