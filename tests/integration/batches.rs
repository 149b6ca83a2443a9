//! Batches: counted as their jobs move, finished once with their callback (also with racing
//! refreshers), progress events while they run.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use apalis_core::{
    error::BoxDynError,
    task::{data::Data, task_fn::task_fn},
    worker::builder::WorkerBuilder,
};
use cowans_core::JobState;
use cowans_queue::{JobMeta, QueueConfig};
use cowans_store::{self as store, BatchCallback, LeaseRef, NewJob};
use cowans_testkit::{TestDb, wait_for};
use cowans_tests::queue;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::control_kinds::{Log, control_router, engine, retries};
use crate::support::{TTL, job};

#[tokio::test]
async fn a_purged_dead_letter_still_counts_and_its_batch_finishes() {
    let db = TestDb::new().await;
    let (batch, _) = store::create_batch(&db.pool, "two", &[job("pd", 1), job("pd", 2)], None)
        .await
        .unwrap();
    let c = store::claim(&db.pool, &queue("pd"), 2, Uuid::new_v4(), TTL, None)
        .await
        .unwrap();
    store::complete(&db.pool, &[c[0].lease_ref()], false)
        .await
        .unwrap();
    let dead = store::Failed {
        lease: c[1].lease_ref(),
        attempt: 1,
        error: "boom".into(),
        retry_in: None,
    };
    store::settle_failures(&db.pool, Uuid::new_v4(), &[dead])
        .await
        .unwrap();
    let filter = store::DeadLetterFilter {
        queue: Some("pd".into()),
        kind: None,
    };
    assert_eq!(
        store::purge_dead(&db.pool, &filter, Some(1)).await.unwrap(),
        1
    );
    let r = crate::support::refresh_batches(&db.pool).await.unwrap();
    assert_eq!(
        r.finished,
        vec![batch],
        "the purged dead letter still counts"
    );
    let p = store::batch_progress(&db.pool, batch)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (p.count(JobState::Completed), p.count(JobState::Dead)),
        (1, 1)
    );
}

#[tokio::test]
async fn a_batch_counts_its_jobs_and_finishes_once_with_its_callback() {
    let db = TestDb::new().await;
    let jobs: Vec<NewJob> = (0..5).map(|n| job("b", n)).collect();
    let cb = BatchCallback {
        queue: queue("cb"),
        kind: "batch.done".into(),
        args: json!({"x": 1}),
    };
    let (batch, results) = store::create_batch(&db.pool, "five", &jobs, Some(&cb))
        .await
        .unwrap();
    assert_eq!(results.len(), 5);
    let p = store::batch_progress(&db.pool, batch)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((p.total, p.count(JobState::Available)), (5, 5));

    let claimed = store::claim(&db.pool, &queue("b"), 3, Uuid::new_v4(), TTL, None)
        .await
        .unwrap();
    let refs: Vec<LeaseRef> = claimed.iter().map(|j| j.lease_ref()).collect();
    store::complete(&db.pool, &refs[..2], false).await.unwrap();
    let r = crate::support::refresh_batches(&db.pool).await.unwrap();
    assert_eq!(r.progressed, vec![batch]);
    let p = store::batch_progress(&db.pool, batch)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            p.count(JobState::Completed),
            p.count(JobState::Running),
            p.count(JobState::Available)
        ),
        (2, 1, 2)
    );
    // Unchanged counts publish nothing.
    assert_eq!(
        crate::support::refresh_batches(&db.pool).await.unwrap(),
        Default::default()
    );

    // Cancel the rest: the batch is done (cancelled jobs are finished) and the callback fires once,
    // even with two refreshers racing.
    let cancelled = store::cancel_batch(&db.pool, batch, 0).await.unwrap();
    assert_eq!(cancelled.len(), 3);
    let (r1, r2) = tokio::join!(
        crate::support::refresh_batches(&db.pool),
        crate::support::refresh_batches(&db.pool)
    );
    let finished = r1.unwrap().finished.len() + r2.unwrap().finished.len();
    assert_eq!(finished, 1);
    let p = store::batch_progress(&db.pool, batch)
        .await
        .unwrap()
        .unwrap();
    assert!(p.finished_at.is_some() && p.cancelled_at.is_some());
    assert_eq!(p.count(JobState::Cancelled), 3);
    let cb_job = store::get_job(&db.pool, p.callback_job_id.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (cb_job.queue.as_str(), cb_job.kind.as_str()),
        ("cb", "batch.done")
    );
    assert_eq!(cb_job.args["batch_id"], json!(batch));
    assert_eq!(cb_job.args["counts"]["completed"], json!(2));
    assert_eq!(cb_job.args["args"], json!({"x": 1}));
    let callbacks = store::count_by_state(&db.pool, "cb").await.unwrap();
    assert!(
        callbacks.contains(&(JobState::Available, 1)),
        "{callbacks:?}"
    );
}

#[tokio::test]
async fn a_batch_reports_progress_events_and_its_callback_runs_once() {
    let db = TestDb::new().await;
    let mut events = sqlx::postgres::PgListener::connect_with(&db.pool)
        .await
        .unwrap();
    events.listen(store::EVENTS_CHANNEL).await.unwrap();
    let engine = engine(&db).await;
    let log: Log = Default::default();
    let callbacks = Arc::new(Mutex::new(Vec::<Value>::new()));
    let seen = callbacks.clone();
    let router = control_router(log.clone())
        .route(
            "flaky",
            task_fn(|_: Value, job: JobMeta| async move {
                // Fails once, then waits out a 1 s backoff: long enough to be seen as failed.
                if job.attempt == 1 {
                    return Err(cowans_core::JobError::retry_after(
                        "flaky",
                        Duration::from_secs(1),
                    ));
                }
                Ok(())
            }),
        )
        .route(
            "batch.done",
            task_fn(
                move |a: Value, seen: Data<Arc<Mutex<Vec<Value>>>>| async move {
                    seen.lock().unwrap().push(a);
                    Ok::<(), BoxDynError>(())
                },
            ),
        );
    let worker = WorkerBuilder::new("bt")
        .backend(
            engine.backend::<Value>(
                QueueConfig::new(queue("bt"))
                    .concurrency(4)
                    .retry(retries(1)),
            ),
        )
        .data(seen)
        .build(router);
    tokio::spawn(worker.run());
    let mut jobs: Vec<NewJob> = (0..20)
        .map(|_| NewJob::new(queue("bt"), "slow", json!({"ms": 30})))
        .collect();
    jobs.push(NewJob::new(queue("bt"), "unknown.kind", json!({})).max_attempts(1));
    jobs.push(NewJob::new(queue("bt"), "flaky", json!({})).max_attempts(3));
    let cb = BatchCallback {
        queue: queue("bt"),
        kind: "batch.done".into(),
        args: json!({"note": "all done"}),
    };
    let (batch, _) = store::create_batch(&db.pool, "twenty-one", &jobs, Some(&cb))
        .await
        .unwrap();

    let mut progress = Vec::new();
    let finished = loop {
        let n = tokio::time::timeout(Duration::from_secs(15), events.recv())
            .await
            .unwrap()
            .unwrap();
        let e: Value = serde_json::from_str(n.payload()).unwrap();
        assert_eq!(e["batch_id"], json!(batch));
        if e["type"] == "batch.finished" {
            break e;
        }
        progress.push(e);
    };
    assert!(!progress.is_empty(), "progress events before the end");
    assert!(
        progress.iter().any(|e| e["counts"]["failed"] == json!(1)),
        "the flaky job was counted as failed while it waited for its retry: {progress:?}"
    );
    assert_eq!(finished["counts"]["completed"], json!(21));
    assert_eq!(finished["counts"]["dead"], json!(1));
    wait_for("the callback to run", Duration::from_secs(5), || async {
        (!callbacks.lock().unwrap().is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await; // a second callback would show up by now
    let calls = callbacks.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["args"], json!({"note": "all done"}));
    assert_eq!(calls[0]["counts"]["completed"], json!(21));
    let p = store::batch_progress(&db.pool, batch)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((p.total, p.finished_jobs(), p.failed()), (22, 22, 0));
    engine.shutdown().await;
}
