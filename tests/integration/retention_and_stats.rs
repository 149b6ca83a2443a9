//! Retention and queue statistics: finished jobs pruned in bounded batches (open batches kept),
//! the queue summary (states, age, throughput, pause, workers), autoscaling on it, and the queue
//! gauges exported by the worker and the API binaries.

use std::time::{Duration, Instant};

use chrono::Utc;
use cowans_core::JobState;
use cowans_store::{self as store, NewJob, Retention};
use cowans_testkit::{TestDb, wait_for};
use cowans_tests::{FAST_ENGINE, WorkerProcess, count, queue};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{TTL, complete_all, job, sleeps};

#[tokio::test]
async fn retention_prunes_finished_jobs_in_bounded_batches_and_keeps_open_batches() {
    let db = TestDb::new().await;
    let jobs: Vec<NewJob> = (0..25).map(|n| job("ret", n)).collect();
    store::enqueue_many(&db.pool, &jobs).await.unwrap();
    let (batch, _) =
        store::create_batch(&db.pool, "open", &[job("ret", 99), job("ret", 100)], None)
            .await
            .unwrap();
    let done = complete_all(&db, "ret").await;
    assert_eq!(done.len(), 27);
    // The batch's jobs are finished but the batch is not (the leader has not counted it yet).
    let keep = Retention {
        finished: Duration::ZERO,
        dead: Duration::from_secs(3600),
    };
    let p = store::prune(&db.pool, keep, 10).await.unwrap();
    assert_eq!(p.finished, 10, "bounded");
    let mut total = p.finished;
    loop {
        let p = store::prune(&db.pool, keep, 10).await.unwrap();
        total += p.finished;
        if p.finished < 10 {
            break;
        }
    }
    assert_eq!(total, 25, "the open batch's two jobs are kept");
    crate::support::refresh_batches(&db.pool).await.unwrap();
    assert!(
        store::batch_progress(&db.pool, batch)
            .await
            .unwrap()
            .unwrap()
            .finished_at
            .is_some()
    );
    assert_eq!(store::prune(&db.pool, keep, 10).await.unwrap().finished, 2);
    // A long window keeps everything.
    store::enqueue(&db.pool, &job("ret", 1)).await.unwrap();
    complete_all(&db, "ret").await;
    let long = Retention {
        finished: Duration::from_secs(60),
        dead: Duration::from_secs(60),
    };
    assert_eq!(store::prune(&db.pool, long, 10).await.unwrap().finished, 0);
}

#[tokio::test]
async fn queue_stats_summarise_states_age_throughput_pause_and_workers() {
    let db = TestDb::new().await;
    let old = Utc::now() - chrono::Duration::seconds(30);
    store::enqueue(&db.pool, &job("st", 1).run_at(old))
        .await
        .unwrap();
    store::enqueue_many(&db.pool, &[job("st", 2), job("st", 3), job("st", 4)])
        .await
        .unwrap();
    let claimed = store::claim(&db.pool, &queue("st"), 2, Uuid::new_v4(), TTL, None)
        .await
        .unwrap();
    store::complete(&db.pool, &[claimed[0].lease_ref()], false)
        .await
        .unwrap();
    // Enqueued after the claims, 12 s due: now the oldest waiting job.
    store::enqueue(
        &db.pool,
        &job("st", 5).run_at(Utc::now() - chrono::Duration::seconds(12)),
    )
    .await
    .unwrap();
    store::set_paused(&db.pool, &queue("st"), true)
        .await
        .unwrap();
    store::register_worker(
        &db.pool,
        &store::WorkerInfo {
            id: Uuid::new_v4(),
            hostname: "h".into(),
            pid: 1,
            queues: vec!["st".into()],
            concurrency: 7,
        },
    )
    .await
    .unwrap();
    store::refresh_queue_stats(&db.pool).await.unwrap();
    let s = &store::queue_stats(&db.pool, Some("st"), TTL).await.unwrap()[0];
    assert_eq!(
        (s.available, s.running, s.completed, s.completed_last_minute),
        (3, 1, 1, 1)
    );
    assert!(s.paused);
    assert_eq!((s.workers, s.worker_concurrency), (1, 7));
    assert!(
        (11.0..20.0).contains(&s.oldest_available_age_secs),
        "the 30 s old job was claimed first; the 12 s one is the oldest waiting: {}",
        s.oldest_available_age_secs
    );
    // Emptied queues drop to zero rather than keeping stale counts.
    store::cancel_jobs(&db.pool, &[claimed[1].job_id()])
        .await
        .unwrap();
    store::refresh_queue_stats(&db.pool).await.unwrap();
    let s = &store::queue_stats(&db.pool, Some("st"), TTL).await.unwrap()[0];
    assert_eq!((s.running, s.cancelled), (0, 1));
}

fn gauge(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn autoscaling_grows_under_backlog_shrinks_when_idle_and_queue_gauges_are_exported() {
    let db = TestDb::new().await;
    let mut env = FAST_ENGINE.to_vec();
    env.extend([
        ("COWANS__WORKER__AUTOSCALE__MIN", "1"),
        ("COWANS__WORKER__AUTOSCALE__MAX", "16"),
        ("COWANS__WORKER__AUTOSCALE__TARGET_WAIT", "50"),
        ("COWANS__WORKER__AUTOSCALE__INTERVAL", "200"),
    ]);
    let w = WorkerProcess::spawn(&db.url(), "as", 16, &env);
    let http = reqwest::Client::new();
    let metrics = || async {
        http.get(format!("{}/metrics", w.ops))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()
    };
    let target = r#"cowans_worker_concurrency_target{queue="as"}"#;
    // The gauge is exported (at 0) before the autoscaler's first decision sets it.
    let idle = wait_for("the starting target", Duration::from_secs(10), || async {
        gauge(&metrics().await?, target).filter(|t| *t > 0.0)
    })
    .await;
    assert_eq!(idle, 1.0, "starts at min");

    store::enqueue_many(&db.pool, &sleeps("as", 800, 40))
        .await
        .unwrap();
    let (grown, depth) = wait_for(
        "the target to grow and the depth gauge to show the backlog",
        Duration::from_secs(20),
        || async {
            let m = metrics().await?;
            let t = gauge(&m, target)?;
            let depth = gauge(&m, r#"cowans_queue_depth{queue="as",state="available"}"#)?;
            (t >= 8.0 && depth > 0.0).then_some((t, depth))
        },
    )
    .await;
    assert!(grown <= 16.0 && depth <= 800.0);
    let m = metrics().await.unwrap();
    assert!(
        gauge(&m, r#"cowans_queue_workers{queue="as"}"#) == Some(1.0),
        "{m}"
    );
    assert!(
        gauge(
            &m,
            r#"cowans_queue_oldest_available_age_seconds{queue="as"}"#
        )
        .is_some_and(|a| a > 0.0)
    );

    wait_for("the backlog to drain", Duration::from_secs(60), || async {
        (count(&db.pool, "as", JobState::Completed).await == 800).then_some(())
    })
    .await;
    wait_for(
        "the target to shrink back to min",
        Duration::from_secs(15),
        || async { (gauge(&metrics().await?, target)? == 1.0).then_some(()) },
    )
    .await;
    wait_for(
        "the depth gauge to show an empty queue",
        Duration::from_secs(5),
        || async {
            let m = metrics().await?;
            (gauge(&m, r#"cowans_queue_depth{queue="as",state="available"}"#)? == 0.0
                && gauge(&m, r#"cowans_queue_completed_last_minute{queue="as"}"#)? == 800.0)
                .then_some(())
        },
    )
    .await;
}

/// `cowans-api serve` as deployed: its `/metrics` carries the queue gauges next to the request
/// metrics, and it refuses kinds no worker registers.
#[tokio::test]
async fn the_api_binary_exports_queue_gauges_and_refuses_unknown_kinds() {
    let db = cowans_testkit::TestDb::new().await;
    let api =
        cowans_tests::ApiProcess::spawn(&db.url(), &[("COWANS__ENGINE__STATS_INTERVAL", "200")]);
    let base = api.base.clone();
    let key = crate::support::api::key(&db.pool, "operator").await;
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
        let text = cowans_tests::get_text(&http, &format!("{base}/metrics")).await;
        if text.contains(want) || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    drop(api);
    assert!(text.contains(want), "{want} missing from:\n{text}");
    assert!(text.contains("cowans_api_requests_total"), "{text}");
}

#[tokio::test]
async fn with_nothing_retained_a_completion_deletes_the_job_unless_its_row_still_counts() {
    let db = TestDb::new().await;
    let plain = store::enqueue(&db.pool, &job("del", 1)).await.unwrap().id;
    let once = store::enqueue(
        &db.pool,
        &job("del", 2).unique(store::Unique::key("once").also_in(&[JobState::Completed])),
    )
    .await
    .unwrap()
    .id;
    let retry_key = store::enqueue(&db.pool, &job("del", 3).unique(store::Unique::key("again")))
        .await
        .unwrap()
        .id;
    let (_, batch_jobs) = store::create_batch(&db.pool, "b", &[job("del", 4)], None)
        .await
        .unwrap();
    let claimed = store::claim(&db.pool, &queue("del"), 10, Uuid::new_v4(), TTL, None)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 4);
    let refs: Vec<_> = claimed.iter().map(|j| j.lease_ref()).collect();
    let done = store::complete(&db.pool, &refs, true).await.unwrap();
    assert_eq!(done.len(), 4, "every held job is acknowledged");
    // Plain jobs and unique ones whose key no longer holds once completed: gone.
    for id in [plain, retry_key] {
        assert!(
            store::get_job(&db.pool, id).await.unwrap().is_none(),
            "{id:?}"
        );
    }
    // Still meaningful as rows: a key that holds while completed, a batch's job.
    assert_eq!(
        store::get_job(&db.pool, once).await.unwrap().unwrap().state,
        JobState::Completed
    );
    assert_eq!(
        store::get_job(&db.pool, batch_jobs[0].id)
            .await
            .unwrap()
            .unwrap()
            .state,
        JobState::Completed
    );
    let dup = store::enqueue(
        &db.pool,
        &job("del", 5).unique(store::Unique::key("once").also_in(&[JobState::Completed])),
    )
    .await
    .unwrap();
    assert!(dup.duplicate, "the completed key still holds");
    // Fencing holds: a second ack of the same claims is refused.
    assert!(
        store::complete(&db.pool, &refs, true)
            .await
            .unwrap()
            .is_empty()
    );
}
