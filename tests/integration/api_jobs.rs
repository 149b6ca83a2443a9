//! The API's jobs: submitted (single, bulk, 100,000 as NDJSON), read, listed, cancelled and
//! retried; bad input refused with 422 naming the field; payloads checked against their kind.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::api::{api, api_with_kinds, assert_error_shape};

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
    // A line answers either {line, id, duplicate} or {line, error}, never both.
    assert!(results[699].get("error").is_none(), "{}", results[699]);
    assert!(results[500].get("id").is_none(), "{}", results[500]);
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
        "unknown field `forever`, expected one of `times`, `permanent`, `until_redriven`",
    );
    let (s, v) = submit(json!({"queue": "k", "kind": "demo.sleeep", "args": {"ms": 1}})).await;
    assert_eq!(s, 422);
    bad(
        &v,
        "kind",
        "which no worker registers; known kinds: demo.batch_done, demo.effect, demo.fail",
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
