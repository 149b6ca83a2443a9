//! The API with the things that need more than one request to see: a WebSocket watching real
//! worker processes run a batch, payloads checked against registered kinds, concurrent submits
//! sharing commits (each still audited), and key revocation reaching a running server.

use std::time::{Duration, Instant};

use cowans_tests::{FAST_ENGINE, WorkerProcess};
use futures::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

use crate::api::{Api, api_with, assert_error_shape, serve_api};

/// The API as the binary runs it with the demo application enabled: its kinds registered,
/// unknown kinds refused.
async fn api_with_kinds() -> Api {
    let db = cowans_tests::demo_db().await;
    let kinds = cowans_tests::demo_jobs(&db.pool)
        .registry()
        .reject_unknown(true);
    serve_api(db, cowans_api::ApiOptions::default(), kinds).await
}

async fn open_ws(
    api: &Api,
    query: &str,
    key: Option<&str>,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    tungstenite::Error,
> {
    let url = format!(
        "{}/api/v1/events/ws?{query}",
        api.base.replace("http", "ws")
    );
    let mut req = url.into_client_request().unwrap();
    if let Some(k) = key {
        req.headers_mut()
            .insert("authorization", format!("Bearer {k}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

#[tokio::test]
async fn a_websocket_client_sees_a_batch_progress_while_real_workers_run_it() {
    let api = api_with_kinds().await;
    let op = Some(api.operator.as_str());
    // Paused while the batch is created and the client subscribes, so it sees the whole run.
    api.call(Method::POST, "/api/v1/queues/wsq/pause", op, None)
        .await;
    // 40 × 100 ms at four at a time: a second of work, several of the leader's 200 ms passes.
    let jobs: Vec<Value> = (0..40)
        .map(|_| json!({"queue": "wsq", "kind": "demo.sleep", "args": {"ms": 100}}))
        .collect();
    let (s, batch) = api
        .call(
            Method::POST,
            "/api/v1/batches",
            op,
            Some(json!({ "jobs": jobs })),
        )
        .await;
    assert_eq!(s, 201, "{batch}");
    let id = batch["id"].as_i64().unwrap();
    match open_ws(&api, &format!("batch={id}"), None).await {
        Err(tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("a socket without credentials: {:?}", other.map(|_| ())),
    }
    let mut ws = open_ws(&api, &format!("batch={id}"), Some(&api.viewer))
        .await
        .expect("a viewer may watch");
    let mut other = open_ws(&api, &format!("batch={}", id + 1), Some(&api.viewer))
        .await
        .unwrap();
    let _worker = WorkerProcess::spawn(&api.db.url(), "wsq", 4, FAST_ENGINE);
    api.call(Method::POST, "/api/v1/queues/wsq/resume", op, None)
        .await;

    let mut progress = Vec::new();
    let finished = loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("an event within 20 s")
            .expect("the socket stays open")
            .unwrap();
        let tungstenite::Message::Text(text) = msg else {
            continue;
        };
        let event: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(event["batch_id"], json!(id), "only this batch: {event}");
        match event["type"].as_str() {
            Some("batch.progress") => {
                progress.push(event["counts"]["completed"].as_i64().unwrap_or(0))
            }
            Some("batch.finished") => break event,
            _ => panic!("unexpected event {event}"),
        }
    };
    assert_eq!(finished["counts"]["completed"], 40, "{finished}");
    assert_eq!(finished["total"], 40);
    let midway = progress.iter().filter(|&&c| c > 0 && c < 40).count();
    assert!(
        midway >= 2,
        "the client saw the batch move while it ran, not just its end: {progress:?}"
    );
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1]),
        "completed never goes back: {progress:?}"
    );
    // The other client's filter let nothing through.
    let quiet = tokio::time::timeout(Duration::from_millis(300), other.next()).await;
    assert!(
        quiet.is_err(),
        "a client filtered on another batch got {quiet:?}"
    );
    ws.send(tungstenite::Message::Close(None)).await.unwrap();
}

#[tokio::test]
async fn payloads_are_checked_against_their_kind_at_submit_naming_the_field() {
    let api = api_with_kinds().await;
    let op = Some(api.operator.as_str());
    let bad = |v: &Value, field: &str, says: &str| {
        assert_error_shape(v, "invalid");
        assert_eq!(v["error"]["details"]["field"], field, "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(says), "{msg}");
    };
    let submit = |body: Value| api.call(Method::POST, "/api/v1/jobs", op, Some(body));

    let (s, v) = submit(json!({"queue": "k", "kind": "demo.sleep", "args": {"ms": "soon"}})).await;
    assert_eq!(s, 422);
    bad(&v, "args.ms", "invalid type: string \"soon\", expected u64");
    let (s, v) = submit(json!({"queue": "k", "kind": "demo.sleep", "args": {}})).await;
    assert_eq!(s, 422);
    bad(&v, "args", "missing field `ms`");
    let (s, v) =
        submit(json!({"queue": "k", "kind": "demo.fail", "args": {"times": 1, "forever": true}}))
            .await;
    assert_eq!(s, 422);
    bad(
        &v,
        "args.forever",
        "unknown field `forever`, expected `times` or `permanent`",
    );
    let (s, v) = submit(json!({"queue": "k", "kind": "demo.sleeep", "args": {"ms": 1}})).await;
    assert_eq!(s, 422);
    bad(
        &v,
        "kind",
        "which no worker registers; known kinds: demo.effect, demo.fail",
    );
    let (s, v) = submit(json!({"queue": "k", "kind": "demo.sleep", "args": {"ms": 5}})).await;
    assert_eq!(s, 201, "{v}");

    // Bulk (all or nothing), NDJSON (per line) and batches name the item too.
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/jobs/bulk",
            op,
            Some(json!([
                {"queue": "k", "kind": "demo.noop"},
                {"queue": "k", "kind": "demo.effect", "args": {"key": 7}}
            ])),
        )
        .await;
    assert_eq!(s, 422);
    bad(
        &v,
        "jobs[1].args.key",
        "invalid type: integer `7`, expected a string",
    );
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/batches",
            op,
            Some(json!({"jobs": [{"queue": "k", "kind": "demo.sleep", "args": {"ms": -1}}]})),
        )
        .await;
    assert_eq!(s, 422);
    bad(
        &v,
        "jobs[0].args.ms",
        "invalid value: integer `-1`, expected u64",
    );
    let r = api
        .http
        .post(format!("{}/api/v1/jobs/bulk", api.base))
        .bearer_auth(&api.operator)
        .header("content-type", "application/x-ndjson")
        .body("{\"queue\":\"k\",\"kind\":\"demo.noop\"}\n{\"queue\":\"k\",\"kind\":\"demo.sleep\",\"args\":{\"ms\":[]}}\n")
        .send()
        .await
        .unwrap();
    let lines: Vec<Value> = r
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines[0]["id"].is_i64(), "{lines:?}");
    assert!(
        lines[1]["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("line 1.args.ms: invalid type: sequence"),
        "{lines:?}"
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM cowans_jobs")
        .fetch_one(&api.pool)
        .await
        .unwrap();
    assert_eq!(
        stored, 2,
        "only the valid single submit and the valid NDJSON line"
    );

    // Clients can read what each kind takes.
    let (s, v) = api
        .call(Method::GET, "/api/v1/kinds", Some(&api.viewer), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["reject_unknown"], true);
    let sleep = v["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "demo.sleep")
        .expect("demo.sleep listed");
    assert_eq!(sleep["schema"]["properties"]["ms"]["type"], "integer");
    assert_eq!(sleep["schema"]["required"], json!(["ms"]));
}

#[tokio::test]
async fn concurrent_single_submits_share_commits_and_each_is_audited_in_its_commit() {
    let api = api_with(cowans_api::ApiOptions {
        rate: cowans_api::rate_limit::RateConfig {
            per_second: 10_000.0,
            burst: 10_000.0,
        },
        ..Default::default()
    })
    .await;
    let clients = 50;
    let per_client = 8;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, base, key) = (api.http.clone(), api.base.clone(), api.operator.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..per_client {
                let r = http
                    .post(format!("{base}/api/v1/jobs"))
                    .bearer_auth(&key)
                    .json(&json!({"queue": "grp", "kind": "g", "args": {"c": c, "i": i}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                ids.push(r.json::<Value>().await.unwrap()["id"].as_i64().unwrap());
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        clients * per_client,
        "every submit got its own job"
    );
    // Rows written by one transaction share xmin: the jobs came in fewer commits than requests,
    // and every job's audit entry was written in the same commit as the job.
    let (jobs, commits, audited): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT j.xmin::text), \
                count(*) FILTER (WHERE a.xmin::text = j.xmin::text) \
         FROM cowans_jobs j LEFT JOIN cowans_audit a \
           ON a.target = 'job:' || j.id AND a.action = 'job.submit' \
         WHERE j.queue = 'grp'",
    )
    .fetch_one(&api.pool)
    .await
    .unwrap();
    assert_eq!(jobs, (clients * per_client) as i64);
    assert_eq!(audited, jobs, "each job audited in its own commit");
    assert!(
        commits * 2 <= jobs,
        "{jobs} submits from {clients} clients took {commits} commits"
    );
    println!("{jobs} concurrent single submits in {commits} commits");

    // Two concurrent submits of one unique key: one job, the other answer points at it.
    let body = json!({"queue": "grp", "kind": "g", "unique_key": "once"});
    let op = Some(api.operator.as_str());
    let (a, b) = tokio::join!(
        api.call(Method::POST, "/api/v1/jobs", op, Some(body.clone())),
        api.call(Method::POST, "/api/v1/jobs", op, Some(body.clone())),
    );
    let mut statuses = [a.0.as_u16(), b.0.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 201], "{a:?} {b:?}");
    assert_eq!(a.1["id"], b.1["id"]);
}

#[tokio::test]
async fn a_revoked_key_stops_working_on_a_running_server_within_the_cache_ttl() {
    let api = api_with(cowans_api::ApiOptions::default()).await;
    let key = crate::api::key(&api.pool, "viewer").await;
    let (s, _) = api
        .call(Method::GET, "/api/v1/queues", Some(&key), None)
        .await;
    assert_eq!(s, 200);
    let id: i64 = sqlx::query_scalar("SELECT max(id) FROM cowans_api_keys")
        .fetch_one(&api.pool)
        .await
        .unwrap();
    cowans_queue::FrontDoor::builder(api.pool.clone())
        .build()
        .revoke_api_key(&cowans_core::Actor::system("test"), id)
        .await
        .unwrap();
    let revoked_at = Instant::now();
    loop {
        let (s, v) = api
            .call(Method::GET, "/api/v1/queues", Some(&key), None)
            .await;
        if s == 401 {
            assert_error_shape(&v, "unauthorized");
            break;
        }
        assert!(
            revoked_at.elapsed() < cowans_api::auth::KEY_CACHE_TTL + Duration::from_secs(1),
            "the revoked key still works after {:?}",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `cowans-api serve` as deployed: its `/metrics` carries the queue gauges next to the request
/// metrics, and it refuses kinds no worker registers.
#[tokio::test]
async fn the_api_binary_exports_queue_gauges_and_refuses_unknown_kinds() {
    use std::io::{BufRead, BufReader};
    let db = cowans_testkit::TestDb::new().await;
    let mut child = std::process::Command::new(cowans_tests::binary("cowans-api"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("COWANS__DATABASE__URL", db.url())
        .env("COWANS__APPS", "demo")
        .env("COWANS__LOG__FILTER", "warn")
        .env("COWANS__ENGINE__STATS_INTERVAL", "200")
        .env_remove("DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn cowans-api");
    let stdout = child.stdout.take().unwrap();
    let ready = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    let base = ready
        .trim()
        .strip_prefix("cowans-api ready: ")
        .unwrap_or_else(|| panic!("unexpected first line {ready:?}"))
        .to_owned();
    let key = crate::api::key(&db.pool, "operator").await;
    let http = reqwest::Client::new();
    let submit = |kind: &str| {
        http.post(format!("{base}/api/v1/jobs"))
            .bearer_auth(&key)
            .json(&json!({"queue": "gauged", "kind": kind, "args": {"ms": 1}}))
            .send()
    };
    let r = submit("reports.build").await.unwrap();
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["details"]["field"], "kind", "{v}");
    for _ in 0..3 {
        assert_eq!(submit("demo.sleep").await.unwrap().status(), 201);
    }
    // No worker runs here, so this test plays the leader that refreshes the summary.
    cowans_store::refresh_queue_stats(&db.pool).await.unwrap();
    let want = r#"cowans_queue_depth{queue="gauged",state="available"} 3"#;
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains(want) || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains(want), "{want} missing from:\n{text}");
    assert!(text.contains("cowans_api_requests_total"), "{text}");
}

/// Next JSON event on a socket (10 s at most), skipping pings.
async fn next_json(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("an event within 10 s")
            .expect("the socket stays open")
            .unwrap();
        if let tungstenite::Message::Text(text) = msg {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

#[tokio::test]
async fn job_events_reach_websocket_clients_when_a_worker_dead_letters_and_an_operator_acts() {
    let api = api_with_kinds().await;
    let op = Some(api.operator.as_str());
    let mut ws = open_ws(&api, "queue=jev", Some(&api.viewer)).await.unwrap();
    let _worker = WorkerProcess::spawn(&api.db.url(), "jev", 2, FAST_ENGINE);
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/jobs",
            op,
            Some(json!({"queue": "jev", "kind": "demo.fail", "args": {"times": 9, "permanent": true}})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_i64().unwrap();
    let dead = next_json(&mut ws).await;
    assert_eq!(
        (
            dead["type"].as_str(),
            dead["job_id"].as_i64(),
            dead["kind"].as_str()
        ),
        (Some("job.dead"), Some(id), Some("demo.fail")),
        "{dead}"
    );
    assert!(
        dead["error"]
            .as_str()
            .unwrap()
            .contains("demo failure on attempt 1"),
        "{dead}"
    );
    // An operator re-runs it; it dies again (still permanent) and both show up in order.
    api.call(Method::POST, &format!("/api/v1/jobs/{id}/retry"), op, None)
        .await;
    let retried = next_json(&mut ws).await;
    assert_eq!(retried["type"], "job.retried", "{retried}");
    assert_eq!(retried["job_id"], id);
    let again = next_json(&mut ws).await;
    assert_eq!(again["type"], "job.dead", "{again}");
    // A cancelled job is announced with its queue.
    let (_, v) = api
        .call(
            Method::POST,
            "/api/v1/jobs",
            op,
            Some(json!({"queue": "jev", "kind": "demo.sleep", "args": {"ms": 1}, "run_at": "2099-01-01T00:00:00Z"})),
        )
        .await;
    let later = v["id"].as_i64().unwrap();
    api.call(
        Method::POST,
        &format!("/api/v1/jobs/{later}/cancel"),
        op,
        None,
    )
    .await;
    let cancelled = next_json(&mut ws).await;
    assert_eq!(
        (
            cancelled["type"].as_str(),
            cancelled["job_id"].as_i64(),
            cancelled["queue"].as_str()
        ),
        (Some("job.cancelled"), Some(later), Some("jev")),
        "{cancelled}"
    );
}

/// `POST /api/v1/jobs` of every body at once (as an operator), answers in input order.
async fn submit_together(
    api: &Api,
    bodies: impl Iterator<Item = Value>,
) -> Vec<(reqwest::StatusCode, Value)> {
    let calls =
        bodies.map(|b| api.call(Method::POST, "/api/v1/jobs", Some(&api.operator), Some(b)));
    futures::future::join_all(calls).await
}

#[tokio::test]
async fn a_payload_postgres_cannot_store_is_refused_alone_without_failing_its_group() {
    let api = api_with(cowans_api::ApiOptions::default()).await;
    // Twenty concurrent submits, one with a NUL character deep in its payload (jsonb refuses it).
    let answers = submit_together(
        &api,
        (0..20).map(|i| {
            let name = if i == 7 { "bad\u{0}name" } else { "fine" };
            json!({"queue": "nul", "kind": "k", "args": {"items": [{"name": "a"}, {"name": name}]}})
        }),
    )
    .await;
    for (i, (s, v)) in answers.iter().enumerate() {
        if i == 7 {
            assert_eq!(s.as_u16(), 422, "{v}");
            assert_eq!(v["error"]["details"]["field"], "args.items[1].name", "{v}");
        } else {
            assert_eq!(s.as_u16(), 201, "submit {i}: {v}");
        }
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM cowans_jobs WHERE queue = 'nul'")
        .fetch_one(&api.pool)
        .await
        .unwrap();
    assert_eq!(stored, 19);
    // The same in a bulk submit names the item.
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/jobs/bulk",
            Some(&api.operator),
            Some(json!([{"queue": "nul", "kind": "k"}, {"queue": "nul", "kind": "k", "args": {"\u{0}": 1}}])),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"]["details"]["field"], "jobs[1].args", "{v}");
}

#[tokio::test]
async fn a_job_the_database_refuses_fails_alone_and_its_group_still_lands() {
    let api = api_with(cowans_api::ApiOptions::default()).await;
    // A rule only the database knows (as a constraint or trigger of an operator's would be).
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.args->>'poison' = 'yes' THEN RAISE EXCEPTION 'poisoned'; END IF; \
         RETURN NEW; END $$; \
         CREATE TRIGGER refuse_poison BEFORE INSERT ON cowans_jobs \
         FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
    )
    .execute(&api.pool)
    .await
    .unwrap();
    let answers = submit_together(
        &api,
        (0..30).map(|i| {
            let poison = if i == 11 { "yes" } else { "no" };
            json!({"queue": "grp", "kind": "k", "args": {"poison": poison, "i": i}})
        }),
    )
    .await;
    for (i, (s, v)) in answers.iter().enumerate() {
        if i == 11 {
            assert_eq!(s.as_u16(), 500, "{v}");
            assert_error_shape(v, "internal");
            assert!(
                !v.to_string().contains("poisoned"),
                "no database text leaks: {v}"
            );
        } else {
            assert_eq!(s.as_u16(), 201, "submit {i}: {v}");
        }
    }
    let (stored, audited): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM cowans_jobs WHERE queue = 'grp'), \
                (SELECT count(*) FROM cowans_audit WHERE action = 'job.submit')",
    )
    .fetch_one(&api.pool)
    .await
    .unwrap();
    assert_eq!(
        (stored, audited),
        (29, 29),
        "every answered 201 is stored and audited"
    );
}
