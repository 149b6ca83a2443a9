//! The API's live events: a server-sent event stream filtered per client, and WebSocket clients
//! watching real worker processes run a batch and dead-letter a job.

use std::time::Duration;

use cowans_tests::{FAST_ENGINE, WorkerProcess};
use futures::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;

use crate::support::{
    api::{api, api_with_kinds},
    events::{next_json, open_ws, sse_events},
};

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
    crate::support::refresh_batches(&api.pool).await.unwrap();
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
    match open_ws(&api.base, &format!("batch={id}"), None).await {
        Err(tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("a socket without credentials: {:?}", other.map(|_| ())),
    }
    let mut ws = open_ws(&api.base, &format!("batch={id}"), Some(&api.viewer))
        .await
        .expect("a viewer may watch");
    let mut other = open_ws(&api.base, &format!("batch={}", id + 1), Some(&api.viewer))
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
async fn job_events_reach_websocket_clients_when_a_worker_dead_letters_and_an_operator_acts() {
    let api = api_with_kinds().await;
    let op = Some(api.operator.as_str());
    let mut ws = open_ws(&api.base, "queue=jev", Some(&api.viewer))
        .await
        .unwrap();
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

#[tokio::test]
async fn shutting_the_server_down_ends_live_streams_and_answers_every_accepted_submit() {
    let db = cowans_testkit::TestDb::new().await;
    let front = cowans_queue::FrontDoor::builder(db.pool.clone())
        .group_commit(500)
        .build();
    let ops = cowans_service::ops::router(
        db.pool.clone(),
        crate::support::api::metrics_handle(),
        &[],
        None,
    );
    let server = cowans_api::ApiServer::new(front, ops, cowans_api::ApiOptions::default());
    server.ready().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server.serve(listener, async {
        let _ = stopped.await;
    }));
    let key = crate::support::api::key(&db.pool, "operator").await;
    let http = reqwest::Client::new();
    let mut stream = http
        .get(format!("{base}/api/v1/events"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let submits: Vec<_> = (0..20)
        .map(|i| {
            http.post(format!("{base}/api/v1/jobs"))
                .bearer_auth(&key)
                .json(&json!({"queue": "bye", "kind": "k", "args": {"i": i}}))
                .send()
        })
        .collect();
    let answers = futures::future::join_all(submits).await;
    stop.send(()).unwrap();
    // The live stream ends instead of holding the shutdown open.
    tokio::time::timeout(Duration::from_secs(10), async {
        while stream.chunk().await.unwrap().is_some() {}
    })
    .await
    .expect("the event stream ends at shutdown");
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
    let created = answers
        .into_iter()
        .filter(|a| a.as_ref().is_ok_and(|r| r.status() == 201))
        .count();
    assert_eq!(
        created, 20,
        "every submit sent before shutdown was committed"
    );
    assert_eq!(
        cowans_tests::count(&db.pool, "bye", cowans_core::JobState::Available).await,
        20
    );
    assert!(
        http.get(format!("{base}/health")).send().await.is_err(),
        "no longer listening"
    );
}
