//! The engine-control statements against real Postgres: unique keys, cancel, pause, the
//! Postgres limiter, batches, cron compare-and-set, retention and queue stats.

use std::time::Duration;

use chrono::Utc;
use cowans_core::{JobId, JobState};
use cowans_store::{self as store, BatchCallback, LeaseRef, NewJob, Retention, Unique};
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

async fn complete_all(db: &TestDb, q: &str) -> Vec<JobId> {
    let claimed = store::claim(&db.pool, &queue(q), 1000, Uuid::new_v4(), TTL, None)
        .await
        .unwrap();
    let refs: Vec<LeaseRef> = claimed.iter().map(|j| j.lease_ref()).collect();
    store::complete(&db.pool, &refs).await.unwrap()
}

#[tokio::test]
async fn a_duplicate_unique_key_answers_with_the_existing_job_never_an_error() {
    let db = TestDb::new().await;
    let first = store::enqueue(&db.pool, &job("u", 1).unique(Unique::key("sku-1")))
        .await
        .unwrap();
    assert!(!first.duplicate);
    let again = store::enqueue(&db.pool, &job("u", 2).unique(Unique::key("sku-1")))
        .await
        .unwrap();
    assert_eq!((again.id, again.duplicate), (first.id, true));
    // Same key on another queue is another job.
    let other = store::enqueue(&db.pool, &job("u2", 3).unique(Unique::key("sku-1")))
        .await
        .unwrap();
    assert!(!other.duplicate);

    // Bulk: a result per item, duplicates within the call and against the table, in order.
    let bulk = [
        job("u", 10).unique(Unique::key("sku-2")),
        job("u", 11),
        job("u", 12).unique(Unique::key("sku-1")),
        job("u", 13).unique(Unique::key("sku-2")),
        job("u", 14),
    ];
    let res = store::enqueue_autocommit(&db.pool, &bulk).await.unwrap();
    let dup: Vec<bool> = res.iter().map(|r| r.duplicate).collect();
    assert_eq!(dup, [false, false, true, true, false]);
    assert_eq!(res[2].id, first.id);
    assert_eq!(res[3].id, res[0].id);
    assert_eq!(
        store::get_job(&db.pool, res[4].id)
            .await
            .unwrap()
            .unwrap()
            .args,
        json!({ "n": 14 })
    );

    // Once the holder completes, the key is free again (default states)...
    let done = complete_all(&db, "u").await;
    assert!(done.contains(&first.id));
    let fresh = store::enqueue(&db.pool, &job("u", 4).unique(Unique::key("sku-1")))
        .await
        .unwrap();
    assert!(!fresh.duplicate && fresh.id != first.id);
    // ...unless completed is one of the key's states.
    let kept = Unique::key("once").also_in(&[JobState::Completed]);
    let a = store::enqueue(&db.pool, &job("v", 1).unique(kept.clone()))
        .await
        .unwrap();
    complete_all(&db, "v").await;
    let b = store::enqueue(&db.pool, &job("v", 2).unique(kept))
        .await
        .unwrap();
    assert_eq!((b.id, b.duplicate), (a.id, true));

    // States that must always be covered cannot be left out.
    let bad = Unique {
        key: "k".into(),
        states: vec![JobState::Available],
    };
    let err = store::enqueue(&db.pool, &job("u", 9).unique(bad))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unique.states"), "{err}");
}

#[tokio::test]
async fn concurrent_enqueues_of_one_key_insert_exactly_one_job() {
    let db = TestDb::new().await;
    let mut tasks = Vec::new();
    for n in 0..20 {
        let pool = db.pool.clone();
        tasks.push(tokio::spawn(async move {
            store::enqueue_autocommit(&pool, &[job("race", n).unique(Unique::key("same"))])
                .await
                .unwrap()[0]
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let inserted: Vec<_> = results.iter().filter(|r| !r.duplicate).collect();
    assert_eq!(inserted.len(), 1, "{results:?}");
    assert!(results.iter().all(|r| r.id == inserted[0].id));
}

#[tokio::test]
async fn redrive_skips_a_dead_letter_whose_key_a_live_job_holds() {
    let db = TestDb::new().await;
    let dead = store::enqueue(
        &db.pool,
        &job("rd", 1).unique(Unique::key("k")).max_attempts(1),
    )
    .await
    .unwrap()
    .id;
    let claimed = store::claim(&db.pool, &queue("rd"), 1, Uuid::new_v4(), TTL, None)
        .await
        .unwrap();
    let lease = LeaseRef {
        id: dead,
        lease: claimed[0].lease,
    };
    store::settle_failures(
        &db.pool,
        Uuid::new_v4(),
        &[store::Failed {
            lease,
            attempt: 1,
            error: "boom".into(),
            retry_in: None,
        }],
    )
    .await
    .unwrap();
    assert_eq!(state_of(&db, dead).await, JobState::Dead);
    let live = store::enqueue(&db.pool, &job("rd", 2).unique(Unique::key("k")))
        .await
        .unwrap();
    assert!(!live.duplicate, "a dead job does not hold its key");
    assert!(
        store::redrive_ids(&db.pool, &[dead])
            .await
            .unwrap()
            .is_empty()
    );
    store::cancel_jobs(&db.pool, &[live.id]).await.unwrap();
    assert_eq!(
        store::redrive_ids(&db.pool, &[dead]).await.unwrap(),
        vec![dead]
    );
}

#[tokio::test]
async fn cancel_stops_waiting_jobs_at_once_and_marks_running_ones() {
    let db = TestDb::new().await;
    let waiting = store::enqueue(&db.pool, &job("c", 1)).await.unwrap().id;
    let later = store::enqueue(
        &db.pool,
        &job("c", 2).run_at(Utc::now() + chrono::Duration::hours(1)),
    )
    .await
    .unwrap()
    .id;
    let running = store::enqueue(&db.pool, &job("c", 3).priority(9))
        .await
        .unwrap()
        .id;
    let claimed = store::claim(&db.pool, &queue("c"), 1, Uuid::new_v4(), TTL, None)
        .await
        .unwrap();
    assert_eq!(claimed[0].job_id(), running);
    let done = complete_all(&db, "c").await; // completes `waiting`
    assert_eq!(done, vec![waiting]);
    let again = store::enqueue(&db.pool, &job("c", 4)).await.unwrap().id;

    let cancelled = store::cancel_jobs(&db.pool, &[waiting, later, running, again])
        .await
        .unwrap();
    let was: Vec<(JobId, JobState)> = cancelled.iter().map(|c| (c.id, c.was)).collect();
    assert_eq!(
        was,
        vec![
            (later, JobState::Scheduled),
            (running, JobState::Running),
            (again, JobState::Available)
        ],
        "the completed job is left alone"
    );
    for id in [later, running, again] {
        assert_eq!(state_of(&db, id).await, JobState::Cancelled);
    }
    // The running job's late result is discarded by the fencing: it stays cancelled.
    let lease = LeaseRef {
        id: running,
        lease: claimed[0].lease,
    };
    assert!(
        store::complete(&db.pool, &[lease])
            .await
            .unwrap()
            .is_empty()
    );
    let failed = store::settle_failures(
        &db.pool,
        Uuid::new_v4(),
        &[store::Failed {
            lease,
            attempt: 1,
            error: "x".into(),
            retry_in: Some(Duration::ZERO),
        }],
    )
    .await
    .unwrap();
    assert!(failed.is_empty(), "a cancelled job is never retried");
    assert_eq!(state_of(&db, running).await, JobState::Cancelled);
}

#[tokio::test]
async fn a_paused_queue_gives_nothing_to_claims_until_resumed() {
    let db = TestDb::new().await;
    store::enqueue(&db.pool, &job("p", 1)).await.unwrap();
    store::set_paused(&db.pool, &queue("p"), true)
        .await
        .unwrap();
    let w = Uuid::new_v4();
    assert!(
        store::claim(&db.pool, &queue("p"), 10, w, TTL, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store::queue_control(&db.pool, "p").await.unwrap().paused);
    store::set_paused(&db.pool, &queue("p"), false)
        .await
        .unwrap();
    assert_eq!(
        store::claim(&db.pool, &queue("p"), 10, w, TTL, None)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn permits_never_exceed_the_limit_and_expired_ones_are_taken_over() {
    let db = TestDb::new().await;
    store::ensure_permit_slots(&db.pool, "q", 4).await.unwrap();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let pa = store::acquire_permits(&db.pool, "q", 4, 3, a, TTL)
        .await
        .unwrap();
    let pb = store::acquire_permits(&db.pool, "q", 4, 3, b, TTL)
        .await
        .unwrap();
    assert_eq!((pa.len(), pb.len()), (3, 1));
    assert!(
        store::acquire_permits(&db.pool, "q", 4, 1, b, TTL)
            .await
            .unwrap()
            .is_empty()
    );
    store::release_permits(&db.pool, "q", &pa[..1])
        .await
        .unwrap();
    assert_eq!(
        store::acquire_permits(&db.pool, "q", 4, 5, b, TTL)
            .await
            .unwrap()
            .len(),
        1
    );
    // A lower limit counts only the first slots (a holds 1 and 2, so only slot 0 is left).
    store::release_holder_permits(&db.pool, b).await.unwrap();
    let short = store::acquire_permits(&db.pool, "q", 2, 5, b, Duration::from_millis(1))
        .await
        .unwrap();
    assert_eq!(short.len(), 1);
    // b "crashes": its permit expires and another holder takes it over.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let c = Uuid::new_v4();
    assert_eq!(
        store::acquire_permits(&db.pool, "q", 2, 5, c, TTL)
            .await
            .unwrap()
            .len(),
        1
    );
    // b's late release is fenced by the token and does not free c's permit.
    store::release_permits(&db.pool, "q", &short).await.unwrap();
    assert!(
        store::acquire_permits(&db.pool, "q", 2, 5, b, TTL)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn rate_buckets_grant_a_burst_then_one_token_per_interval() {
    let db = TestDb::new().await;
    let period = Duration::from_millis(1000);
    let keys = vec!["shop-a".to_owned(), "shop-b".to_owned()];
    let g = store::rate_take(&db.pool, "r", 5, period, &keys, &[7, 2])
        .await
        .unwrap();
    assert_eq!(
        (g[0].granted, g[1].granted),
        (5, 2),
        "burst of at most 5 per key"
    );
    let now = Utc::now();
    let wait = (g[0].next_at - now).num_milliseconds();
    assert!(
        (100..=250).contains(&wait),
        "next token of shop-a in ~200 ms, got {wait} ms"
    );
    let g = store::rate_take(&db.pool, "r", 5, period, &keys[..1], &[1])
        .await
        .unwrap();
    assert_eq!(g[0].granted, 0);
    store::rate_refund(&db.pool, "r", 5, period, "shop-a", 2)
        .await
        .unwrap();
    let g = store::rate_take(&db.pool, "r", 5, period, &keys[..1], &[5])
        .await
        .unwrap();
    assert_eq!(g[0].granted, 2, "refunded tokens come back");
    tokio::time::sleep(Duration::from_millis(450)).await;
    let g = store::rate_take(&db.pool, "r", 5, period, &keys[..1], &[5])
        .await
        .unwrap();
    assert_eq!(g[0].granted, 2, "two tokens accrue in 400+ ms at 5/s");
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
    store::complete(&db.pool, &refs[..2]).await.unwrap();
    let r = store::refresh_batches(&db.pool, 100).await.unwrap();
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
        store::refresh_batches(&db.pool, 100).await.unwrap(),
        Default::default()
    );

    // Cancel the rest: the batch is done (cancelled jobs are finished) and the callback fires once,
    // even with two refreshers racing.
    let cancelled = store::cancel_batch(&db.pool, batch).await.unwrap();
    assert_eq!(cancelled.len(), 3);
    let (r1, r2) = tokio::join!(
        store::refresh_batches(&db.pool, 100),
        store::refresh_batches(&db.pool, 100)
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
async fn a_cron_tick_is_enqueued_by_exactly_one_racer() {
    let db = TestDb::new().await;
    let row = store::CronRow {
        name: "nightly".into(),
        schedule: "0 0 * * *".into(),
        timezone: "Europe/Paris".into(),
        queue: "cron".into(),
        kind: "test.job".into(),
        args: json!({}),
        catch_up: 0,
        last_tick: None,
    };
    store::upsert_cron(&db.pool, &row).await.unwrap();
    let seen = store::list_cron(&db.pool).await.unwrap()[0].last_tick;
    assert!(seen.is_some(), "a new entry counts from now");
    let tick = Utc::now();
    let jobs = [job("cron", 1)];
    let mut racers = Vec::new();
    for _ in 0..5 {
        let pool = db.pool.clone();
        let jobs = jobs.clone();
        racers.push(tokio::spawn(async move {
            store::advance_cron(&pool, "nightly", seen, tick, &jobs)
                .await
                .unwrap()
        }));
    }
    let mut won = 0;
    for r in racers {
        won += usize::from(r.await.unwrap());
    }
    assert_eq!(won, 1);
    assert!(
        store::count_by_state(&db.pool, "cron")
            .await
            .unwrap()
            .contains(&(JobState::Available, 1))
    );
}

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
    store::refresh_batches(&db.pool, 10).await.unwrap();
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
    store::complete(&db.pool, &[claimed[0].lease_ref()])
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
