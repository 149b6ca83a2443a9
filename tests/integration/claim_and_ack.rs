//! Claims and acks: priority order (FIFO within), never more than asked, the claim cursor and a
//! higher-priority job overtaking a backlog, delayed jobs, leases fenced against a worker that
//! lost them, heartbeats, handing back, completing in the handler's transaction, and a killed
//! worker's jobs rescued with each effect landing exactly once.

use std::time::Duration;

use apalis_core::{error::BoxDynError, task::data::Data, worker::builder::WorkerBuilder};
use chrono::Utc;
use cowans_core::JobState;
use cowans_queue::{EngineConfig, JobMeta, QueueConfig};
use cowans_store::{self as store, Failed, LeaseRef, NewJob};
use cowans_testkit::{TestDb, wait_for};
use cowans_tests::{FAST_ENGINE, WorkerProcess, count, queue};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::engine::{engine, enqueue, fast, finished, run_demo, wait_count};
use crate::support::{TTL, job, state_of};

#[tokio::test]
async fn claims_take_higher_priority_first_fifo_within_and_never_more_than_asked() {
    let db = TestDb::new().await;
    let q = queue("prio");
    let mut jobs = Vec::new();
    for n in 0..6 {
        jobs.push(job("prio", n).priority((n % 3) as i16));
    }
    let ids = cowans_tests::enqueue_ids(&db.pool, &jobs).await;
    let w = Uuid::new_v4();
    let first = store::claim(&db.pool, &q, 4, w, TTL, None).await.unwrap();
    assert_eq!(first.len(), 4, "never more than the free slots asked for");
    let order: Vec<i64> = first.iter().map(|j| j.id).collect();
    // priority 2: n=2,5; priority 1: n=1,4 — oldest first within each.
    assert_eq!(order, vec![ids[2].0, ids[5].0, ids[1].0, ids[4].0]);
    assert!(first.iter().all(|j| j.attempt == 1));
    let rest = store::claim(&db.pool, &q, 10, w, TTL, None).await.unwrap();
    assert_eq!(
        rest.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![ids[0].0, ids[3].0]
    );
}

#[tokio::test]
async fn a_claim_cursor_continues_where_the_last_claim_stopped() {
    let db = TestDb::new().await;
    let q = queue("cursor");
    let ids = store::enqueue_many(
        &db.pool,
        &(0..6).map(|n| job("cursor", n)).collect::<Vec<_>>(),
    )
    .await
    .unwrap()
    .into_iter()
    .map(|e| e.id)
    .collect::<Vec<_>>();
    let w = Uuid::new_v4();
    let first = store::claim(&db.pool, &q, 2, w, TTL, None).await.unwrap();
    let cursor = first.last().unwrap().cursor();
    let next = store::claim(&db.pool, &q, 2, w, TTL, Some(&cursor))
        .await
        .unwrap();
    assert_eq!(
        next.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![ids[2].0, ids[3].0]
    );
    // A job that sorts before the cursor (higher priority) is not seen through the cursor...
    let urgent = store::enqueue(&db.pool, &job("cursor", 9).priority(5))
        .await
        .unwrap()
        .id;
    let after = store::claim(&db.pool, &q, 10, w, TTL, Some(&next[1].cursor()))
        .await
        .unwrap();
    assert_eq!(
        after.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![ids[4].0, ids[5].0]
    );
    // ...but by the claim from the head, which the producer falls back to.
    let head = store::claim(&db.pool, &q, 10, w, TTL, None).await.unwrap();
    assert_eq!(
        head.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![urgent.0]
    );
}

#[tokio::test]
async fn a_higher_priority_job_overtakes_a_backlog_being_drained() {
    let db = TestDb::new().await;
    // No poll tick during the test: only the notification can move the claim cursor back.
    let config = EngineConfig {
        poll_interval: Duration::from_secs(30),
        ..fast()
    };
    let engine = engine(&db, config).await;
    run_demo(&engine, "prio", 1);
    let backlog: Vec<NewJob> = (0..20)
        .map(|_| NewJob::new(queue("prio"), "demo.sleep", json!({"ms": 50})))
        .collect();
    store::enqueue_many(&db.pool, &backlog).await.unwrap();
    wait_count(&db, "prio", JobState::Completed, 3, Duration::from_secs(10)).await;
    let urgent = store::enqueue(
        &db.pool,
        &NewJob::new(queue("prio"), "demo.sleep", json!({"ms": 1})).priority(5),
    )
    .await
    .unwrap()
    .id;
    let urgent = finished(&db, urgent).await;
    let still_waiting = store::count_by_state(&db.pool, "prio").await.unwrap();
    let available = still_waiting
        .iter()
        .find(|(s, _)| *s == JobState::Available)
        .map_or(0, |(_, n)| *n);
    assert_eq!(urgent.state, JobState::Completed);
    assert!(
        available >= 10,
        "the urgent job ran ahead of the backlog: {still_waiting:?}"
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn delayed_jobs_wait_for_run_at() {
    let db = TestDb::new().await;
    let q = queue("later");
    let at = Utc::now() + chrono::Duration::milliseconds(600);
    let id = store::enqueue(&db.pool, &job("later", 1).run_at(at))
        .await
        .unwrap()
        .id;
    assert_eq!(state_of(&db, id).await, JobState::Scheduled);
    let p = store::promote_due(&db.pool, std::slice::from_ref(&q), 100)
        .await
        .unwrap();
    assert_eq!(p.promoted, 0);
    let due = p
        .next_due
        .expect("the scheduled job is reported as next due");
    assert!((due - at).num_milliseconds().abs() < 5);
    assert!(
        store::claim(&db.pool, &q, 10, Uuid::new_v4(), TTL, None)
            .await
            .unwrap()
            .is_empty()
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let p = store::promote_due(&db.pool, std::slice::from_ref(&q), 100)
        .await
        .unwrap();
    assert_eq!(p.promoted, 1);
    let claimed = store::claim(&db.pool, &q, 10, Uuid::new_v4(), TTL, None)
        .await
        .unwrap();
    assert_eq!(claimed[0].id, id.0);
}

#[tokio::test]
async fn a_worker_that_lost_its_lease_can_neither_complete_nor_fail_the_job() {
    let db = TestDb::new().await;
    let q = queue("fence");
    let id = store::enqueue(&db.pool, &job("fence", 1)).await.unwrap().id;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let first = store::claim(&db.pool, &q, 1, a, Duration::from_millis(1), None)
        .await
        .unwrap();
    let stale = LeaseRef {
        id,
        lease: first[0].lease,
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let rescued = store::rescue_expired(&db.pool, 100).await.unwrap();
    assert_eq!(rescued.retried.len(), 1);
    let second = store::claim(&db.pool, &q, 1, b, TTL, None).await.unwrap();
    assert_eq!(second[0].attempt, 2, "the lost attempt counts");
    let fresh = LeaseRef {
        id,
        lease: second[0].lease,
    };
    assert_ne!(stale.lease, fresh.lease);

    assert!(
        store::complete(&db.pool, &[stale], false)
            .await
            .unwrap()
            .is_empty()
    );
    let fail = Failed {
        lease: stale,
        attempt: 1,
        error: "late".into(),
        retry_in: None,
    };
    assert!(
        store::settle_failures(&db.pool, a, &[fail])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        store::complete_in_tx(&db.pool, stale).await,
        Err(store::StoreError::StaleLease)
    ));
    assert!(store::release(&db.pool, &[stale]).await.unwrap().is_empty());
    assert_eq!(state_of(&db, id).await, JobState::Running);

    assert_eq!(
        store::complete(&db.pool, &[fresh], false).await.unwrap(),
        vec![id]
    );
    let rec = store::get_job(&db.pool, id).await.unwrap().unwrap();
    assert_eq!(rec.state, JobState::Completed);
    assert_eq!(rec.errors.len(), 1, "the expired lease is in the history");
    assert!(rec.errors[0].error.contains("lease expired"));
}

/// With asynchronous commit (the engine's default) a crash of the server can lose a claim that a
/// worker already holds, and the lease sequence comes back where its last flushed WAL record
/// left it, so it hands the same numbers out again. The crash is replayed here by hand: the
/// claim undone, the sequence set back. The reclaim must still get a fence of its own, or the
/// first attempt's ack would complete the job under the second attempt.
#[tokio::test]
async fn a_claim_lost_in_a_server_crash_does_not_lend_its_fence_to_the_reclaim() {
    let db = TestDb::new().await;
    let q = queue("crash");
    let id = store::enqueue(&db.pool, &job("crash", 1)).await.unwrap().id;
    let w = Uuid::new_v4();
    let (last, called): (i64, bool) =
        sqlx::query_as("SELECT last_value, is_called FROM cowans_lease_seq")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let lost = store::claim(&db.pool, &q, 1, w, TTL, None).await.unwrap();
    let stale = LeaseRef {
        id,
        lease: lost[0].lease,
    };
    // The crash: the claim's row as it was before, the sequence back where it stood.
    sqlx::query(
        "UPDATE cowans_jobs SET state = 'available', attempt = attempt - 1, attempted_at = NULL, \
         lease = NULL, lease_expires_at = NULL, worker_id = NULL WHERE id = $1",
    )
    .bind(id.0)
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query("SELECT setval('cowans_lease_seq', $1, $2)")
        .bind(last)
        .bind(called)
        .execute(&db.pool)
        .await
        .unwrap();
    // Recovery takes far longer than this; the fence must not depend on more.
    tokio::time::sleep(Duration::from_millis(2)).await;

    let again = store::claim(&db.pool, &q, 1, w, TTL, None).await.unwrap();
    assert_eq!(again[0].attempt, 1, "the lost claim left no trace");
    assert_ne!(
        again[0].lease, stale.lease,
        "the reclaim has a fence of its own"
    );
    assert!(
        store::complete(&db.pool, &[stale], false)
            .await
            .unwrap()
            .is_empty(),
        "the lost claim's ack is refused"
    );
    assert_eq!(state_of(&db, id).await, JobState::Running);
    let fresh = LeaseRef {
        id,
        lease: again[0].lease,
    };
    assert_eq!(
        store::complete(&db.pool, &[fresh], false).await.unwrap(),
        vec![id]
    );
}

#[tokio::test]
async fn heartbeats_extend_only_leases_still_held_and_register_a_forgotten_worker() {
    let db = TestDb::new().await;
    let q = queue("hb");
    let ids = cowans_tests::enqueue_ids(&db.pool, &[job("hb", 1), job("hb", 2)]).await;
    let w = Uuid::new_v4();
    let c = store::claim(&db.pool, &q, 2, w, Duration::from_millis(200), None)
        .await
        .unwrap();
    let refs: Vec<LeaseRef> = c.iter().map(|j| j.lease_ref()).collect();
    store::complete(&db.pool, &refs[..1], false).await.unwrap();
    let me = store::WorkerInfo {
        id: w,
        hostname: "h".into(),
        pid: 1,
        queues: vec!["hb".into()],
        concurrency: 2,
    };
    let kept = store::heartbeat(&db.pool, &me, &refs, TTL).await.unwrap();
    assert_eq!(kept, vec![refs[1].id]);
    // The process was not in the registry (as after an outage longer than the janitor's
    // horizon): its heartbeat put it back, with what it consumes.
    let registered: Vec<(Vec<String>, i32)> =
        sqlx::query_as("SELECT queues, concurrency FROM cowans_workers WHERE id = $1")
            .bind(w)
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(registered, vec![(vec!["hb".to_owned()], 2)]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rescued = store::rescue_expired(&db.pool, 100).await.unwrap();
    assert!(
        rescued.retried.is_empty(),
        "the heartbeat kept the lease alive"
    );
    assert_eq!(state_of(&db, ids[1]).await, JobState::Running);
}

#[tokio::test]
async fn a_rescued_job_keeps_its_place_ahead_of_jobs_queued_after_it() {
    let db = TestDb::new().await;
    let q = queue("place");
    let first = store::enqueue(&db.pool, &job("place", 0)).await.unwrap().id;
    let lost = store::claim(
        &db.pool,
        &q,
        1,
        Uuid::new_v4(),
        Duration::from_millis(1),
        None,
    )
    .await
    .unwrap();
    assert_eq!(lost[0].id, first.0);
    // A backlog arrives while the first job's worker is dying.
    let backlog: Vec<NewJob> = (1..=20).map(|n| job("place", n)).collect();
    store::enqueue_many(&db.pool, &backlog).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        store::rescue_expired(&db.pool, 100)
            .await
            .unwrap()
            .retried
            .len(),
        1
    );
    let next = store::claim(&db.pool, &q, 5, Uuid::new_v4(), TTL, None)
        .await
        .unwrap();
    assert_eq!(
        next[0].id, first.0,
        "back at the head, not behind the backlog"
    );
    assert_eq!(next[0].attempt, 2);
}

#[tokio::test]
async fn handing_back_does_not_count_the_attempt() {
    let db = TestDb::new().await;
    let q = queue("back");
    let id = store::enqueue(&db.pool, &job("back", 1)).await.unwrap().id;
    let c = store::claim(&db.pool, &q, 1, Uuid::new_v4(), TTL, None)
        .await
        .unwrap();
    let released = store::release(
        &db.pool,
        &[LeaseRef {
            id,
            lease: c[0].lease,
        }],
    )
    .await
    .unwrap();
    assert_eq!(released, vec![id]);
    let rec = store::get_job(&db.pool, id).await.unwrap().unwrap();
    assert_eq!((rec.state, rec.attempt), (JobState::Available, 0));
}

async fn effect_then_complete(
    _: Value,
    job: JobMeta,
    pool: Data<sqlx::PgPool>,
) -> Result<(), BoxDynError> {
    let mut tx = pool.begin().await?;
    cowans_store::demo::record_effect(&mut *tx, job.id, "once").await?;
    job.complete_in_tx(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

#[tokio::test]
async fn completing_in_the_handlers_transaction_commits_effect_and_completion_together() {
    let db = cowans_tests::demo_db().await;
    let engine = engine(&db, fast()).await;
    let backend = engine.backend::<Value>(QueueConfig::new(queue("tx")));
    let worker = WorkerBuilder::new("tx")
        .backend(backend)
        .data(db.pool.clone())
        .build(effect_then_complete);
    tokio::spawn(worker.run());
    let id = enqueue(&db, "tx", "effect", json!({})).await;
    let job = finished(&db, id).await;
    assert_eq!((job.state, job.attempt), (JobState::Completed, 1));
    assert_eq!(
        store::demo::effect_counts(&db.pool).await.unwrap(),
        vec![("once".to_owned(), 1)]
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_killed_workers_jobs_are_rescued_and_each_effect_lands_exactly_once() {
    let db = cowans_tests::demo_db().await;
    let jobs: Vec<NewJob> = (0..120)
        .map(|i| {
            NewJob::new(
                queue("crash"),
                "demo.effect",
                json!({"key": format!("k{i:03}"), "sleep_ms": 250}),
            )
        })
        .collect();
    store::enqueue_many(&db.pool, &jobs).await.unwrap();

    let mut a = WorkerProcess::spawn(&db.url(), "crash", 10, FAST_ENGINE);
    wait_for(
        "worker A to finish some jobs and hold ten",
        Duration::from_secs(20),
        || async {
            let (done, running) = (
                count(&db.pool, "crash", JobState::Completed).await,
                count(&db.pool, "crash", JobState::Running).await,
            );
            (done >= 10 && running == 10).then_some(())
        },
    )
    .await;
    a.kill9();
    assert!(
        count(&db.pool, "crash", JobState::Running).await > 0,
        "A died holding running jobs"
    );

    let b = WorkerProcess::spawn(&db.url(), "crash", 10, FAST_ENGINE);
    wait_for("every job to complete", Duration::from_secs(60), || async {
        (count(&db.pool, "crash", JobState::Completed).await == 120).then_some(())
    })
    .await;

    let effects = store::demo::effect_counts(&db.pool).await.unwrap();
    assert_eq!(effects.len(), 120, "every job's effect is present");
    assert!(
        effects.iter().all(|(_, n)| *n == 1),
        "no effect twice: {effects:?}"
    );
    let rescued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM cowans_jobs WHERE attempt = 2 AND errors::text LIKE '%lease expired%'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(
        rescued >= 1,
        "the jobs A held were rescued (attempt counted)"
    );
    let (code, last) = b.terminate(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{last}");
}
