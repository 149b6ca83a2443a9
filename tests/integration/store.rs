//! The store's statements against real Postgres: enqueue, claim order, fencing, retries, leases,
//! leadership and the dead-letter set.

use std::time::Duration;

use chrono::Utc;
use cowans_core::{JobId, JobState};
use cowans_store::{self as store, DeadLetterFilter, Failed, LeaseRef, NewJob};
use cowans_testkit::TestDb;
use cowans_tests::queue;
use serde_json::json;
use uuid::Uuid;

const TTL: Duration = Duration::from_secs(30);

fn job(q: &str, n: i64) -> NewJob {
    NewJob::new(queue(q), "test.job", json!({ "n": n }))
}

async fn state_of(db: &TestDb, id: JobId) -> JobState {
    store::get_job(&db.pool, id).await.unwrap().unwrap().state
}

#[tokio::test]
async fn bulk_enqueue_inserts_ten_thousand_in_one_call_in_order() {
    let db = TestDb::new().await;
    let jobs: Vec<NewJob> = (0..10_000).map(|n| job("bulk", n)).collect();
    let ids = cowans_tests::enqueue_ids(&db.pool, &jobs).await;
    assert_eq!(ids.len(), 10_000);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids come back in input order"
    );
    let last = store::get_job(&db.pool, ids[9_999]).await.unwrap().unwrap();
    assert_eq!(last.args, json!({ "n": 9_999 }));
    assert_eq!(last.state, JobState::Available);
    let counts = store::count_by_state(&db.pool, "bulk").await.unwrap();
    assert!(counts.contains(&(JobState::Available, 10_000)));

    // The autocommit variant (NOTIFY after the commit) answers the same way.
    let mixed = [job("bulk", 1), job("other", 2), job("bulk", 3)];
    let ids = store::enqueue_autocommit(&db.pool, &mixed)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect::<Vec<_>>();
    assert_eq!(ids.len(), 3, "one id per job, no notification rows");
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let second = store::get_job(&db.pool, ids[1]).await.unwrap().unwrap();
    assert_eq!(
        (second.queue.as_str(), second.args.clone()),
        ("other", json!({ "n": 2 }))
    );
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field() {
    let db = TestDb::new().await;
    let mut bad = job("q", 1);
    bad.kind = "Not A Kind".into();
    let err = store::enqueue_many(&db.pool, &[job("q", 0), bad])
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("jobs[1].kind"), "{err}");
    let err = store::enqueue(&db.pool, &job("q", 0).max_attempts(0))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("max_attempts"), "{err}");
    assert!(
        store::count_by_state(&db.pool, "q")
            .await
            .unwrap()
            .iter()
            .all(|(_, n)| *n == 0)
    );
}

#[tokio::test]
async fn enqueue_in_a_rolled_back_transaction_never_appears() {
    let db = TestDb::new().await;
    let q = queue("tx");
    let mut tx = db.pool.begin().await.unwrap();
    let id = store::enqueue(&mut *tx, &job("tx", 1)).await.unwrap().id;
    // Not visible to workers before commit.
    let claimed = store::claim(&db.pool, &q, 10, Uuid::new_v4(), TTL, None)
        .await
        .unwrap();
    assert!(claimed.is_empty());
    tx.rollback().await.unwrap();
    assert!(store::get_job(&db.pool, id).await.unwrap().is_none());

    let mut tx = db.pool.begin().await.unwrap();
    let id = store::enqueue(&mut *tx, &job("tx", 2)).await.unwrap().id;
    tx.commit().await.unwrap();
    let claimed = store::claim(&db.pool, &q, 10, Uuid::new_v4(), TTL, None)
        .await
        .unwrap();
    assert_eq!(claimed.iter().map(|j| j.id).collect::<Vec<_>>(), vec![id.0]);
}

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
        store::complete(&db.pool, &[stale])
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

    assert_eq!(store::complete(&db.pool, &[fresh]).await.unwrap(), vec![id]);
    let rec = store::get_job(&db.pool, id).await.unwrap().unwrap();
    assert_eq!(rec.state, JobState::Completed);
    assert_eq!(rec.errors.len(), 1, "the expired lease is in the history");
    assert!(rec.errors[0].error.contains("lease expired"));
}

#[tokio::test]
async fn a_retry_is_persisted_with_its_backoff_and_error_history() {
    let db = TestDb::new().await;
    let q = queue("retry");
    let id = store::enqueue(&db.pool, &job("retry", 1)).await.unwrap().id;
    let w = Uuid::new_v4();
    let c = store::claim(&db.pool, &q, 1, w, TTL, None).await.unwrap();
    let before = Utc::now();
    let failed = Failed {
        lease: LeaseRef {
            id,
            lease: c[0].lease,
        },
        attempt: 1,
        error: "upstream 503".into(),
        retry_in: Some(Duration::from_secs(30)),
    };
    let settled = store::settle_failures(&db.pool, w, &[failed])
        .await
        .unwrap();
    assert_eq!(settled.len(), 1);
    let rec = store::get_job(&db.pool, id).await.unwrap().unwrap();
    assert_eq!(rec.state, JobState::Scheduled);
    let wait = (rec.run_at - before).num_milliseconds();
    assert!(
        (29_000..=31_000).contains(&wait),
        "run_at is now + backoff, got {wait} ms"
    );
    assert_eq!(rec.errors.len(), 1);
    assert_eq!(rec.errors[0].attempt, 1);
    assert_eq!(rec.errors[0].error, "upstream 503");
    assert_eq!(
        rec.errors[0].worker.as_deref(),
        Some(w.to_string().as_str())
    );
}

#[tokio::test]
async fn an_expired_last_attempt_becomes_a_dead_letter() {
    let db = TestDb::new().await;
    let q = queue("dl");
    let id = store::enqueue(&db.pool, &job("dl", 1).max_attempts(1))
        .await
        .unwrap()
        .id;
    store::claim(
        &db.pool,
        &q,
        1,
        Uuid::new_v4(),
        Duration::from_millis(1),
        None,
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut events = sqlx::postgres::PgListener::connect_with(&db.pool)
        .await
        .unwrap();
    events.listen(store::EVENTS_CHANNEL).await.unwrap();
    let rescued = store::rescue_expired(&db.pool, 100).await.unwrap();
    assert_eq!(rescued.dead.len(), 1);
    assert_eq!(state_of(&db, id).await, JobState::Dead);
    // Live clients hear about it like any other dead letter.
    let n = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("a job.dead event")
        .unwrap();
    let event: serde_json::Value = serde_json::from_str(n.payload()).unwrap();
    assert_eq!(
        (
            event["type"].as_str(),
            event["job_id"].as_i64(),
            event["queue"].as_str()
        ),
        (Some("job.dead"), Some(id.0), Some("dl")),
        "{event}"
    );
    assert!(event["error"].as_str().unwrap().contains("lease expired"));
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

#[tokio::test]
async fn heartbeats_extend_only_leases_still_held() {
    let db = TestDb::new().await;
    let q = queue("hb");
    let ids = cowans_tests::enqueue_ids(&db.pool, &[job("hb", 1), job("hb", 2)]).await;
    let w = Uuid::new_v4();
    let c = store::claim(&db.pool, &q, 2, w, Duration::from_millis(200), None)
        .await
        .unwrap();
    let refs: Vec<LeaseRef> = c.iter().map(|j| j.lease_ref()).collect();
    store::complete(&db.pool, &refs[..1]).await.unwrap();
    let kept = store::heartbeat(&db.pool, w, &refs, TTL).await.unwrap();
    assert_eq!(kept, vec![refs[1].id]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rescued = store::rescue_expired(&db.pool, 100).await.unwrap();
    assert!(
        rescued.retried.is_empty(),
        "the heartbeat kept the lease alive"
    );
    assert_eq!(state_of(&db, ids[1]).await, JobState::Running);
}

#[tokio::test]
async fn one_leader_at_a_time_and_a_new_term_after_expiry() {
    let db = TestDb::new().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let ttl = Duration::from_millis(1000);
    let t1 = store::try_lead(&db.pool, "m", a, ttl)
        .await
        .unwrap()
        .expect("a leads");
    assert!(
        store::try_lead(&db.pool, "m", b, ttl)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store::try_lead(&db.pool, "m", a, ttl).await.unwrap(),
        Some(t1),
        "renewal keeps the term"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t2 = store::try_lead(&db.pool, "m", b, ttl)
        .await
        .unwrap()
        .expect("b takes over");
    assert!(t2.0 > t1.0);
    store::resign_leader(&db.pool, "m", b).await.unwrap();
    assert!(
        store::try_lead(&db.pool, "m", a, ttl)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn dead_letters_are_listed_redriven_and_purged_by_filter() {
    let db = TestDb::new().await;
    let w = Uuid::new_v4();
    let mut jobs = Vec::new();
    for n in 0..4 {
        jobs.push(job("dlq", n));
    }
    jobs.push(NewJob::new(queue("dlq"), "other.kind", json!({})));
    store::enqueue_many(&db.pool, &jobs).await.unwrap();
    let claimed = store::claim(&db.pool, &queue("dlq"), 10, w, TTL, None)
        .await
        .unwrap();
    let fails: Vec<Failed> = claimed
        .iter()
        .map(|j| Failed {
            lease: j.lease_ref(),
            attempt: 1,
            error: "bad".into(),
            retry_in: None,
        })
        .collect();
    store::settle_failures(&db.pool, w, &fails).await.unwrap();

    let all = DeadLetterFilter {
        queue: Some("dlq".into()),
        kind: None,
    };
    let page1 = store::list_dead(&db.pool, &all, None, 3).await.unwrap();
    assert_eq!(page1.len(), 3);
    let page2 = store::list_dead(&db.pool, &all, Some(page1[2].id), 3)
        .await
        .unwrap();
    assert_eq!(
        page2.len(),
        2,
        "keyset pagination continues after the last id"
    );
    assert!(
        page1
            .iter()
            .all(|j| j.errors.len() == 1 && j.errors[0].error == "bad")
    );

    let one = store::redrive_ids(&db.pool, &[page1[0].id]).await.unwrap();
    assert_eq!(one, vec![page1[0].id]);
    let rec = store::get_job(&db.pool, page1[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (rec.state, rec.attempt, rec.errors.len()),
        (JobState::Available, 0, 1)
    );

    let other = DeadLetterFilter {
        queue: Some("dlq".into()),
        kind: Some("other.kind".into()),
    };
    assert_eq!(store::redrive_matching(&db.pool, &other).await.unwrap(), 1);
    assert_eq!(store::purge_dead(&db.pool, &all, None).await.unwrap(), 3);
    assert!(
        store::list_dead(&db.pool, &all, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let counts = store::count_by_state(&db.pool, "dlq").await.unwrap();
    assert!(counts.contains(&(JobState::Available, 2)));
}
