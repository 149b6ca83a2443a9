//! The API's administration: queues listed, paused and resumed (every change audited), dead
//! letters listed, re-driven and purged only with the expected count, batches created, followed
//! and cancelled.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::api::api;

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
    crate::support::refresh_batches(&api.pool).await.unwrap();
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
