//! Hostile input against a real API server: what Postgres cannot store is refused at the door
//! naming the field (never a field-less refusal or a stream cut short), payloads must have their
//! schema's shape, content types are matched exactly, and the NDJSON bulk submit is all or
//! nothing per request: over its limits, stalled, or cut off mid-stream, it leaves no job behind;
//! a request head that never ends does not hold a connection forever.

use std::time::Duration;

use cowans_testkit::wait_for;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::api::{Api, api, api_with_kinds, assert_error_shape};

fn assert_invalid(status: reqwest::StatusCode, v: &Value, field: &str) {
    assert_eq!(status, 422, "{v}");
    assert_error_shape(v, "invalid");
    assert_eq!(v["error"]["details"]["field"], field, "{v}");
}

async fn jobs_in(api: &Api, queue: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM cowans_jobs WHERE queue = $1")
        .bind(queue)
        .fetch_one(&api.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn unstorable_text_is_refused_naming_the_field() {
    let api = api().await;
    let op = Some(api.operator.as_str());
    let submit = |body: Value| api.call(Method::POST, "/api/v1/jobs", op, Some(body));
    for (body, field) in [
        (
            json!({"queue": "h", "kind": "k", "unique_key": "a\u{0}b"}),
            "unique_key",
        ),
        (
            json!({"queue": "h", "kind": "k", "rate_key": "a\u{0}b"}),
            "rate_key",
        ),
        (
            json!({"queue": "h", "kind": "k", "args": {"deep": ["ok", {"x": "\u{0}"}]}}),
            "args.deep[1].x",
        ),
        (
            json!({"queue": "h", "kind": "k", "rate_key": "r".repeat(600)}),
            "rate_key",
        ),
        // Values of the wrong type are named by their path too.
        (
            json!({"queue": "h", "kind": "k", "run_at": "garbage"}),
            "run_at",
        ),
        (
            json!({"queue": "h", "kind": "k", "priority": 40000}),
            "priority",
        ),
    ] {
        let (s, v) = submit(body).await;
        assert_invalid(s, &v, field);
    }
    // An item of a bulk array is named by its index; nothing of the array is inserted.
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/jobs/bulk",
            op,
            Some(json!([
                {"queue": "h", "kind": "k"},
                {"queue": "h", "kind": "k"},
                {"queue": "h", "kind": "k", "unique_key": "\u{0}"}
            ])),
        )
        .await;
    assert_invalid(s, &v, "jobs[2].unique_key");
    // Batches: the description and the callback's args.
    let batch = |description: Value, callback_args: Value| {
        json!({"description": description, "jobs": [{"queue": "h", "kind": "k"}],
               "callback": {"queue": "h", "kind": "k", "args": callback_args}})
    };
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/batches",
            op,
            Some(batch(json!("a\u{0}"), json!({}))),
        )
        .await;
    assert_invalid(s, &v, "description");
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/batches",
            op,
            Some(batch(json!("d".repeat(5000)), json!({}))),
        )
        .await;
    assert_invalid(s, &v, "description");
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/batches",
            op,
            Some(batch(json!("ok"), json!({"note": "\u{0}"}))),
        )
        .await;
    assert_invalid(s, &v, "callback.args.note");
    assert_eq!(jobs_in(&api, "h").await, 0, "nothing refused was inserted");
    // The ops routes answer a wrong method in the same shape.
    let r = api
        .http
        .post(format!("{}/metrics", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let v: Value = r.json().await.unwrap();
    assert_error_shape(&v, "method_not_allowed");

    // Query parameters and paths, decoded: NUL and non-UTF-8 are named, also on exports (which
    // used to answer 200 and cut the stream).
    let viewer = Some(api.viewer.as_str());
    for (path, field) in [
        ("/api/v1/jobs?kind=a%00b", "kind"),
        ("/api/v1/jobs?queue=a%00b", "queue"),
        ("/api/v1/jobs?kind=%ff%fe", "kind"),
        ("/api/v1/jobs/export?format=jsonl&kind=a%00b", "kind"),
        ("/api/v1/queues/default/dead?kind=a%00b", "kind"),
        ("/api/v1/queues/de%00fault", "path"),
    ] {
        let (s, v) = api.call(Method::GET, path, viewer, None).await;
        assert_invalid(s, &v, field);
    }
}

#[tokio::test]
async fn payloads_must_have_their_schemas_shape_and_content_types_match_exactly() {
    let api = api_with_kinds().await;
    let op = Some(api.operator.as_str());
    // serde would take a positional array for a struct; the published schema says object. An
    // unknown kind without a queue is named as such, not as a missing default queue; the unique
    // key is named as the submission spells it.
    let cases = [
        (
            json!({"queue": "k", "kind": "demo.sleep", "args": [5]}),
            "args",
        ),
        (
            json!({"queue": "k", "kind": "demo.sleep", "args": 5}),
            "args",
        ),
        (
            json!({"queue": "k", "kind": "demo.sleep", "args": "x"}),
            "args",
        ),
        (json!({"kind": "no.such.kind"}), "kind"),
        (
            json!({"queue": "k", "kind": "demo.noop", "unique_key": "u".repeat(600)}),
            "unique_key",
        ),
    ];
    for (body, field) in cases {
        let (s, v) = api.call(Method::POST, "/api/v1/jobs", op, Some(body)).await;
        assert_invalid(s, &v, field);
    }
    // A whole number written with a fraction is the integer (JSON Schema agrees); the job's
    // stored payload holds the integer, so its handler can read it. A fraction is refused.
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/jobs",
            op,
            Some(json!({"queue": "k", "kind": "demo.sleep", "args": {"ms": 5.0}, "priority": 2.0})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (_, job) = api
        .call(Method::GET, &format!("/api/v1/jobs/{}", v["id"]), op, None)
        .await;
    assert_eq!(
        (&job["args"], &job["priority"]),
        (&json!({"ms": 5}), &json!(2))
    );
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/jobs",
            op,
            Some(json!({"queue": "k", "kind": "demo.sleep", "args": {"ms": 5.5}})),
        )
        .await;
    assert_invalid(s, &v, "args.ms");
    // A batch callback's kind must be registered and take {batch_id, counts, args}.
    let batch = |callback: Value| json!({"jobs": [{"queue": "k", "kind": "demo.noop"}], "callback": callback});
    for (callback, field) in [
        (
            json!({"queue": "k", "kind": "no.such.kind"}),
            "callback.kind",
        ),
        (
            json!({"queue": "k", "kind": "demo.sleep", "args": {}}),
            "callback.kind",
        ),
    ] {
        let (s, v) = api
            .call(Method::POST, "/api/v1/batches", op, Some(batch(callback)))
            .await;
        assert_invalid(s, &v, field);
    }
    for content_type in [
        "application/jsonfoo",
        "application/x-ndjsonXYZ",
        "text/plain",
    ] {
        let r = api
            .http
            .post(format!("{}/api/v1/jobs/bulk", api.base))
            .bearer_auth(&api.operator)
            .header("content-type", content_type)
            .body(r#"[{"queue": "k", "kind": "demo.noop"}]"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 415, "{content_type}");
        let v: Value = r.json().await.unwrap();
        assert_error_shape(&v, "unsupported_media_type");
    }
}

fn ndjson_lines(queue: &str, n: usize, bad_at: Option<usize>) -> String {
    let mut body = String::new();
    for i in 0..n {
        if Some(i) == bad_at {
            body.push_str(&format!(
                "{{\"queue\":\"{queue}\",\"kind\":\"k\",\"unique_key\":\"a\\u0000\"}}\n"
            ));
        } else {
            body.push_str(&format!(
                "{{\"queue\":\"{queue}\",\"kind\":\"k\",\"args\":{{\"n\":{i}}}}}\n"
            ));
        }
    }
    body
}

async fn post_ndjson(api: &Api, body: String) -> reqwest::Response {
    api.http
        .post(format!("{}/api/v1/jobs/bulk", api.base))
        .bearer_auth(&api.operator)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_ndjson_submit_is_all_or_nothing_with_a_result_per_line() {
    let api = api().await;
    // A bad line at 90 %: its own error, every other line inserted.
    let r = post_ndjson(&api, ndjson_lines("nd", 10_000, Some(9_000))).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let results: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), 10_000);
    assert_eq!(
        results[9_000]["error"]["details"]["field"],
        "line 9000.unique_key"
    );
    assert!(results[8_999]["id"].is_i64() && results[9_001]["id"].is_i64());
    assert_eq!(jobs_in(&api, "nd").await, 9_999);

    // One line over the limit: refused, and nothing of it inserted (it used to commit ~97,000).
    let r = post_ndjson(&api, ndjson_lines("over", 100_001, None)).await;
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert_invalid(reqwest::StatusCode::UNPROCESSABLE_ENTITY, &v, "body");
    assert_eq!(jobs_in(&api, "over").await, 0);

    // Over the byte limit: 413, nothing inserted.
    let pad = "p".repeat(900_000);
    let big: String = (0..20)
        .map(|i| {
            format!(
                "{{\"queue\":\"big\",\"kind\":\"k\",\"args\":{{\"n\":{i},\"pad\":\"{pad}\"}}}}\n"
            )
        })
        .collect();
    let r = post_ndjson(&api, big).await;
    assert_eq!(r.status(), 413);
    assert_eq!(jobs_in(&api, "big").await, 0);
}

/// Opens a raw connection and sends the head of an NDJSON submit declaring `length` bytes,
/// then `body` (fewer bytes than declared).
async fn partial_upload(api: &Api, length: usize, body: &str) -> tokio::net::TcpStream {
    let addr = api.base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/jobs/bulk HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/x-ndjson\r\nContent-Length: {length}\r\n\r\n",
        api.operator
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body.as_bytes()).await.unwrap();
    s
}

/// Waits until a transaction of the test's database is open (the server has inserted a chunk
/// it has not committed), then until none is.
async fn open_transactions(api: &Api) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND state LIKE 'idle in transaction%'",
    )
    .fetch_one(&api.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_ndjson_upload_cut_off_or_stalled_leaves_no_job_behind() {
    let api = api().await;
    // 12,000 lines of a body declared far longer: two chunks are inserted, uncommitted.
    let lines = ndjson_lines("cut", 12_000, None);
    let conn = partial_upload(&api, lines.len() * 2, &lines).await;
    wait_for(
        "the server to hold its inserted chunks open",
        Duration::from_secs(30),
        || async { (open_transactions(&api).await > 0).then_some(()) },
    )
    .await;
    // The client goes away mid-stream.
    drop(conn);
    wait_for(
        "the server to roll the upload back",
        Duration::from_secs(30),
        || async { (open_transactions(&api).await == 0).then_some(()) },
    )
    .await;
    assert_eq!(jobs_in(&api, "cut").await, 0);

    // The client stops sending: 408 once the body has been idle too long, nothing inserted.
    let lines = ndjson_lines("stall", 6_000, None);
    let mut conn = partial_upload(&api, lines.len() * 2, &lines).await;
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(60), conn.read(&mut answer))
        .await
        .expect("an answer once the body stalls")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert_eq!(jobs_in(&api, "stall").await, 0);
}

#[tokio::test]
async fn a_client_that_never_finishes_its_request_head_is_disconnected() {
    let api = api().await;
    let addr = api.base.trim_start_matches("http://");
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // The server gives up on it after HEADER_READ_TIMEOUT (10 s); the margin is for a busy
    // machine. Before, such a connection stayed open for as long as the client liked.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(90), slow.read_to_end(&mut rest))
        .await
        .expect("the server closes a connection whose request head never ends");
    // (A reset is as good as an orderly close.)
    drop(closed);
    // Other clients were served meanwhile and still are.
    let (status, _) = api
        .call(Method::GET, "/api/v1/queues", Some(&api.viewer), None)
        .await;
    assert_eq!(status, 200);
}

/// A raw request's answer: status and body.
async fn raw(api: &Api, head: String) -> (u16, Value) {
    let addr = api.base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    let status = answer[9..12].parse().unwrap();
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_request_head_larger_than_the_api_reads_is_refused_in_the_error_shape() {
    let api = api().await;
    let long_uri = format!(
        "GET /api/v1/jobs?kind={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "a".repeat(20_000)
    );
    let (status, body) = raw(&api, long_uri).await;
    assert_eq!(status, 414, "{body}");
    assert_error_shape(&body, "uri_too_long");
    let big_headers = format!(
        "GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(100_000)
    );
    let (status, body) = raw(&api, big_headers).await;
    assert_eq!(status, 431, "{body}");
    assert_error_shape(&body, "headers_too_large");
}
