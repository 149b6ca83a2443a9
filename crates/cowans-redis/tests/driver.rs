//! The Redis driver against a real server (`COWANS_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`). An unreachable server fails the tests: nothing is skipped.

#![allow(clippy::unwrap_used)]

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::Utc;
use cowans_core::{
    JobId, JobState, QueueName, Wakeup,
    queue::{
        Driver, Failed, LEASE_EXPIRED, LeaderTerm, NewJob, QueueError, Retention, Unique,
        WakeupSink, WorkerInfo,
    },
};
use cowans_redis::RedisDriver;
use serde_json::json;
use tokio::sync::mpsc;
use uuid::Uuid;

fn url() -> String {
    std::env::var("COWANS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

async fn driver() -> RedisDriver {
    let prefix = format!("cowans-test-{}", Uuid::new_v4());
    match RedisDriver::connect(&url(), &prefix).await {
        Ok(d) => d,
        Err(e) => panic!(
            "cannot use the test Redis at {} ({e}): start redis-server there or set COWANS_TEST_REDIS_URL",
            url()
        ),
    }
}

fn q(name: &str) -> QueueName {
    QueueName::new(name).unwrap()
}

fn job(queue: &str) -> NewJob {
    NewJob::new(q(queue), "test.kind", json!({"n": 1}))
}

const TTL: Duration = Duration::from_secs(30);

#[tokio::test]
async fn claims_by_priority_then_run_at_then_id() {
    let d = driver().await;
    let t = Utc::now() - chrono::Duration::seconds(10);
    let jobs = vec![
        job("orders").priority(0).run_at(t),
        job("orders").priority(5).run_at(t),
        job("orders").priority(0).run_at(t),
        job("orders").priority(5).run_at(t).rate_key("shop-1"),
        job("orders").priority(-1).run_at(t),
        job("orders")
            .priority(0)
            .run_at(t - chrono::Duration::seconds(1)),
    ];
    let ids: Vec<JobId> = d
        .enqueue(&jobs)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            assert!(!e.duplicate);
            e.id
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in input order");
    let w = Uuid::new_v4();
    let first = d.claim(&q("orders"), 3, w, TTL, None).await.unwrap();
    let rest = d.claim(&q("orders"), 10, w, TTL, None).await.unwrap();
    let order: Vec<i64> = first.iter().chain(&rest).map(|j| j.id).collect();
    let expected: Vec<i64> = [1, 3, 5, 0, 2, 4].iter().map(|&i| ids[i].0).collect();
    assert_eq!(order, expected);
    assert!(first.iter().all(|j| j.attempt == 1 && j.queue == "orders"));
    let leases: std::collections::HashSet<i64> =
        first.iter().chain(&rest).map(|j| j.lease).collect();
    assert_eq!(leases.len(), 6, "every claim has its own lease");
    assert_eq!(first[0].args, r#"{"n":1}"#);
    assert_eq!(first[1].rate_key.as_deref(), Some("shop-1"));
    assert_eq!(first[0].rate_key, None);
    assert!(
        d.claim(&q("orders"), 10, w, TTL, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        d.count_by_state("orders").await.unwrap(),
        vec![(JobState::Running, 6)]
    );
    d.flush_prefix().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_never_share_a_job() {
    let d = driver().await;
    let jobs: Vec<NewJob> = (0..2000).map(|_| job("many")).collect();
    let ids = d.enqueue(&jobs).await.unwrap();
    assert_eq!(ids.len(), 2000);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let d = d.clone();
        tasks.push(tokio::spawn(async move {
            let w = Uuid::new_v4();
            let mut mine = Vec::new();
            loop {
                let c = d.claim(&q("many"), 25, w, TTL, None).await.unwrap();
                if c.is_empty() {
                    return mine;
                }
                let refs: Vec<_> = c.iter().map(|j| j.lease_ref()).collect();
                assert_eq!(d.complete(&refs, true).await.unwrap().len(), refs.len());
                mine.extend(c.into_iter().map(|j| j.id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let expected: Vec<i64> = ids.iter().map(|e| e.id.0).collect();
    assert_eq!(all, expected, "each job claimed exactly once");
    assert!(d.count_by_state("many").await.unwrap().is_empty());
    d.flush_prefix().await.unwrap();
}

#[tokio::test]
async fn invalid_jobs_are_refused_before_anything_is_stored() {
    let d = driver().await;
    let err = d
        .enqueue(&[job("a"), job("a").max_attempts(0)])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, QueueError::Invalid { field, .. } if field == "jobs[1].max_attempts"),
        "{err:?}"
    );
    assert!(d.count_by_state("a").await.unwrap().is_empty());
    d.flush_prefix().await.unwrap();
}

#[tokio::test]
async fn delayed_jobs_are_promoted_when_due() {
    let d = driver().await;
    let due = Utc::now() + chrono::Duration::milliseconds(2000);
    let id = d.enqueue(&[job("later").run_at(due)]).await.unwrap()[0].id;
    let w = Uuid::new_v4();
    assert!(
        d.claim(&q("later"), 5, w, TTL, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(d.job(id).await.unwrap().unwrap().state, JobState::Scheduled);
    let p = d.promote_due(&[q("later")], 100).await.unwrap();
    assert_eq!(p.promoted, 0);
    let next = p.next_due.expect("the next due time");
    assert!(
        (next - due).num_milliseconds().abs() <= 1,
        "{next} vs {due}"
    );
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let p = d.promote_due(&[q("later")], 100).await.unwrap();
    assert_eq!(p.promoted, 1);
    assert_eq!(p.next_due, None);
    let claimed = d.claim(&q("later"), 5, w, TTL, None).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, id.0);
    d.flush_prefix().await.unwrap();
}

#[tokio::test]
async fn acks_are_fenced_by_the_lease() {
    let d = driver().await;
    let ids = d.enqueue(&[job("f"), job("f")]).await.unwrap();
    let w = Uuid::new_v4();
    let c = d.claim(&q("f"), 2, w, TTL, None).await.unwrap();
    let mut wrong = c[0].lease_ref();
    wrong.lease += 1000;
    assert!(d.complete(&[wrong], false).await.unwrap().is_empty());
    assert!(d.release(&[wrong]).await.unwrap().is_empty());
    assert_eq!(
        d.job(ids[0].id).await.unwrap().unwrap().state,
        JobState::Running
    );
    assert_eq!(
        d.complete(&[c[0].lease_ref()], false).await.unwrap(),
        vec![c[0].job_id()]
    );
    assert!(
        d.complete(&[c[0].lease_ref()], false)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        d.job(c[0].job_id()).await.unwrap().unwrap().state,
        JobState::Completed
    );
    // delete: a completed job nothing refers to is gone at once.
    assert_eq!(
        d.complete(&[c[1].lease_ref()], true).await.unwrap(),
        vec![c[1].job_id()]
    );
    assert_eq!(d.job(c[1].job_id()).await.unwrap(), None);
    let client = redis::Client::open(url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mapped: bool = redis::cmd("HEXISTS")
        .arg(format!("{{{}}}:jobq", d.prefix()))
        .arg(c[1].id)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!mapped, "a deleted job's id -> queue entry goes too");
    // A fresh driver (no claim cache) finds the queue through the global map.
    let other = RedisDriver::connect(&url(), d.prefix()).await.unwrap();
    assert_eq!(other.job(c[0].job_id()).await.unwrap().unwrap().queue, "f");
    d.flush_prefix().await.unwrap();
}

#[tokio::test]
async fn release_and_defer_do_not_count_the_attempt() {
    let d = driver().await;
    d.enqueue(&[job("r"), job("r")]).await.unwrap();
    let w = Uuid::new_v4();
    let c = d.claim(&q("r"), 2, w, TTL, None).await.unwrap();
    assert_eq!(
        d.release(&[c[0].lease_ref()]).await.unwrap(),
        vec![c[0].job_id()]
    );
    let later = Utc::now() + chrono::Duration::seconds(60);
    assert_eq!(
        d.defer(&[(c[1].lease_ref(), later)]).await.unwrap(),
        vec![c[1].id]
    );
    let released = d.job(c[0].job_id()).await.unwrap().unwrap();
    assert_eq!((released.state, released.attempt), (JobState::Available, 0));
    let deferred = d.job(c[1].job_id()).await.unwrap().unwrap();
    assert_eq!((deferred.state, deferred.attempt), (JobState::Scheduled, 0));
    assert_eq!(deferred.run_at.timestamp_millis(), later.timestamp_millis());
    let again = d.claim(&q("r"), 5, w, TTL, None).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id, again[0].attempt), (c[0].id, 1));
    d.flush_prefix().await.unwrap();
}

fn worker(queues: &[&str]) -> WorkerInfo {
    WorkerInfo {
        id: Uuid::new_v4(),
        hostname: "test-host".to_owned(),
        pid: 42,
        queues: queues.iter().map(|s| s.to_string()).collect(),
        concurrency: 4,
    }
}

#[tokio::test]
async fn heartbeats_extend_leases_and_expired_ones_are_rescued() {
    let d = driver().await;
    let info = worker(&["hb"]);
    let ids = d
        .enqueue(&[job("hb"), job("hb").max_attempts(1)])
        .await
        .unwrap();
    // Long enough for the heartbeat below to arrive first on a loaded machine.
    let short = Duration::from_millis(1000);
    let c = d.claim(&q("hb"), 2, info.id, short, None).await.unwrap();
    assert_eq!(c.len(), 2);
    let held = d
        .heartbeat(&info, &[c[0].lease_ref()], Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(held, vec![c[0].job_id()]);
    let mut wrong = c[1].lease_ref();
    wrong.lease += 1000;
    assert!(d.heartbeat(&info, &[wrong], TTL).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let rescued = d.rescue_expired(100).await.unwrap();
    assert!(rescued.retried.is_empty(), "{rescued:?}");
    assert_eq!(
        rescued.dead,
        vec![("hb".to_owned(), "test.kind".to_owned())]
    );
    let dead = d.job(ids[1].id).await.unwrap().unwrap();
    assert_eq!(dead.state, JobState::Dead);
    assert_eq!(dead.errors.len(), 1);
    assert_eq!(dead.errors[0].error, LEASE_EXPIRED);
    assert_eq!(dead.errors[0].worker, Some(info.id.to_string()));
    assert_eq!(
        d.job(ids[0].id).await.unwrap().unwrap().state,
        JobState::Running,
        "the extended lease is not rescued"
    );
    // Let the first one expire too: it had attempts left, so it runs again, in place.
    let held = d
        .heartbeat(&info, &[c[0].lease_ref()], Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(held.len(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rescued = d.rescue_expired(100).await.unwrap();
    assert_eq!(
        rescued.retried,
        vec![("hb".to_owned(), "test.kind".to_owned())]
    );
    let j = d.job(ids[0].id).await.unwrap().unwrap();
    assert_eq!((j.state, j.attempt), (JobState::Available, 1));
    assert!(
        d.complete(&[c[0].lease_ref()], false)
            .await
            .unwrap()
            .is_empty(),
        "the rescued lease is fenced off"
    );
    let again = d.claim(&q("hb"), 1, info.id, TTL, None).await.unwrap();
    assert_eq!((again[0].id, again[0].attempt), (ids[0].id.0, 2));
    // The worker registry saw the heartbeats.
    let stats = d
        .queue_stats(Some("hb"), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(stats.len(), 1);
    assert_eq!((stats[0].workers, stats[0].worker_concurrency), (1, 4));
    assert_eq!((stats[0].running, stats[0].dead), (1, 1));
    d.deregister_worker(info.id).await.unwrap();
    let stats = d
        .queue_stats(Some("hb"), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(stats[0].workers, 0);
    d.flush_prefix().await.unwrap();
}

#[tokio::test]
async fn failures_retry_with_backoff_then_dead_letter_and_redrive() {
    let d = driver().await;
    let id = d.enqueue(&[job("retry").max_attempts(2)]).await.unwrap()[0].id;
    let w = Uuid::new_v4();
    let c = d.claim(&q("retry"), 1, w, TTL, None).await.unwrap();
    let settled = d
        .settle_failures(
            w,
            &[Failed {
                lease: c[0].lease_ref(),
                attempt: 1,
                error: "boom 1".to_owned(),
                retry_in: Some(Duration::from_millis(400)),
            }],
        )
        .await
        .unwrap();
    assert_eq!(settled.len(), 1);
    assert_eq!(
        (settled[0].id, settled[0].state, settled[0].queue.as_str()),
        (id, JobState::Scheduled, "retry")
    );
    assert!(
        d.claim(&q("retry"), 1, w, TTL, None)
            .await
            .unwrap()
            .is_empty()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(d.promote_due(&[q("retry")], 10).await.unwrap().promoted, 1);
    let c = d.claim(&q("retry"), 1, w, TTL, None).await.unwrap();
    assert_eq!(c[0].attempt, 2);
    // A stale lease is not settled.
    let mut wrong = c[0].lease_ref();
    wrong.lease += 1000;
    let fail = |lease, attempt, error: &str| Failed {
        lease,
        attempt,
        error: error.to_owned(),
        retry_in: None,
    };
    assert!(
        d.settle_failures(w, &[fail(wrong, 2, "nope")])
            .await
            .unwrap()
            .is_empty()
    );
    let settled = d
        .settle_failures(w, &[fail(c[0].lease_ref(), 2, "boom \"2\"")])
        .await
        .unwrap();
    assert_eq!(settled[0].state, JobState::Dead);
    let j = d.job(id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Dead);
    let history: Vec<(i32, &str)> = j
        .errors
        .iter()
        .map(|e| (e.attempt, e.error.as_str()))
        .collect();
    assert_eq!(history, vec![(1, "boom 1"), (2, "boom \"2\"")]);
    assert!(
        j.errors
            .iter()
            .all(|e| e.worker.as_deref() == Some(w.to_string().as_str()))
    );
    assert_eq!(d.redrive(&[id, JobId(id.0 + 999)]).await.unwrap(), vec![id]);
    let j = d.job(id).await.unwrap().unwrap();
    assert_eq!(
        (j.state, j.attempt, j.errors.len()),
        (JobState::Available, 0, 2)
    );
    assert!(d.redrive(&[id]).await.unwrap().is_empty(), "not dead now");
    let c = d.claim(&q("retry"), 1, w, TTL, None).await.unwrap();
    assert_eq!(c[0].attempt, 1);
    d.flush_prefix().await.unwrap();
}

#[tokio::test]
async fn unique_keys_hold_while_waiting_and_in_their_states() {
    let d = driver().await;
    let u = |key: &str| job("u").unique(Unique::key(key));
    let r = d.enqueue(&[u("k"), u("k")]).await.unwrap();
    assert!(!r[0].duplicate);
    assert_eq!((r[1].id, r[1].duplicate), (r[0].id, true));
    let again = d.enqueue(&[u("k")]).await.unwrap();
    assert_eq!((again[0].id, again[0].duplicate), (r[0].id, true));
    let w = Uuid::new_v4();
    let c = d.claim(&q("u"), 1, w, TTL, None).await.unwrap();
    assert_eq!(
        d.enqueue(&[u("k")]).await.unwrap()[0].id,
        r[0].id,
        "held while running"
    );
    d.complete(&[c[0].lease_ref()], true).await.unwrap();
    let after = d.enqueue(&[u("k")]).await.unwrap();
    assert!(!after[0].duplicate, "free after completion");
    assert_ne!(after[0].id, r[0].id);
    // A key that also holds while completed survives completion (and a deleting complete).
    let kept = |key: &str| job("u").unique(Unique::key(key).also_in(&[JobState::Completed]));
    let first = d.enqueue(&[kept("c")]).await.unwrap()[0].id;
    let c = d.claim(&q("u"), 5, w, TTL, None).await.unwrap();
    let mine = c.iter().find(|j| j.id == first.0).unwrap();
    d.complete(&[mine.lease_ref()], true).await.unwrap();
    assert_eq!(
        d.job(first).await.unwrap().unwrap().state,
        JobState::Completed
    );
    let dup = d.enqueue(&[kept("c")]).await.unwrap();
    assert_eq!((dup[0].id, dup[0].duplicate), (first, true));
    d.flush_prefix().await.unwrap();
}

struct Collect {
    tx: mpsc::UnboundedSender<Option<Wakeup>>,
    missed: Mutex<u32>,
}

impl WakeupSink for Collect {
    fn wake(&self, wakeup: Wakeup) {
        let _ = self.tx.send(Some(wakeup));
    }
    fn missed(&self) {
        *self.missed.lock().unwrap() += 1;
        let _ = self.tx.send(None);
    }
}

async fn next_matching(
    rx: &mut mpsc::UnboundedReceiver<Option<Wakeup>>,
    want: impl Fn(&Option<Wakeup>) -> bool,
) -> Option<Wakeup> {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let got = rx.recv().await.expect("the listener is gone");
            if want(&got) {
                return got;
            }
        }
    })
    .await
    .expect("no such wake-up within 5 s")
}

#[tokio::test]
async fn cancel_of_a_running_job_is_published_and_fenced() {
    let d = driver().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sink = Arc::new(Collect {
        tx,
        missed: Mutex::new(0),
    });
    let listener = {
        let d = d.clone();
        let sink: Arc<dyn WakeupSink> = sink.clone();
        tokio::spawn(async move { d.listen(sink).await })
    };
    next_matching(&mut rx, Option::is_none).await; // subscribed
    let ids = d.enqueue(&[job("c").priority(3), job("c")]).await.unwrap();
    assert_eq!(
        next_matching(&mut rx, Option::is_some).await,
        Some(Wakeup::Enqueued {
            queue: q("c"),
            priority: 3
        })
    );
    let w = Uuid::new_v4();
    let c = d.claim(&q("c"), 1, w, TTL, None).await.unwrap();
    assert_eq!(c[0].id, ids[0].id.0);
    assert_eq!(d.cancel(ids[0].id).await.unwrap(), JobState::Running);
    let cancel = Some(Wakeup::Cancel { job: ids[0].id });
    assert_eq!(next_matching(&mut rx, |w| *w == cancel).await, cancel);
    assert!(
        d.complete(&[c[0].lease_ref()], false)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        d.job(ids[0].id).await.unwrap().unwrap().state,
        JobState::Cancelled
    );
    let err = d.cancel(ids[0].id).await.unwrap_err();
    assert!(
        matches!(&err, QueueError::Conflict { message, .. } if message.contains("cancelled")),
        "{err:?}"
    );
    assert!(matches!(
        d.cancel(JobId(ids[1].id.0 + 1000)).await.unwrap_err(),
        QueueError::NotFound { .. }
    ));
    // A waiting job is cancelled without a Cancel wake-up and can no longer be claimed.
    assert_eq!(d.cancel(ids[1].id).await.unwrap(), JobState::Available);
    assert!(d.claim(&q("c"), 5, w, TTL, None).await.unwrap().is_empty());
    assert_eq!(
        d.count_by_state("c").await.unwrap(),
        vec![(JobState::Cancelled, 2)]
    );
    assert_eq!(*sink.missed.lock().unwrap(), 1);
    listener.abort();
    d.flush_prefix().await.unwrap();
}

#[tokio::test]
async fn a_paused_queue_gives_no_claims() {
    let d = driver().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sink: Arc<dyn WakeupSink> = Arc::new(Collect {
        tx,
        missed: Mutex::new(0),
    });
    let listener = {
        let d = d.clone();
        tokio::spawn(async move { d.listen(sink).await })
    };
    next_matching(&mut rx, Option::is_none).await;
    d.set_paused(&q("p"), true).await.unwrap();
    let control = Some(Wakeup::Control { queue: q("p") });
    next_matching(&mut rx, |w| *w == control).await;
    assert!(d.queue_control("p").await.unwrap().paused);
    d.enqueue(&[job("p")]).await.unwrap();
    let w = Uuid::new_v4();
    assert!(d.claim(&q("p"), 5, w, TTL, None).await.unwrap().is_empty());
    let stats = d.queue_stats(None, TTL).await.unwrap();
    assert_eq!(stats.len(), 1);
    assert!(stats[0].paused);
    assert_eq!(stats[0].available, 1);
    assert!(stats[0].oldest_available_at.is_some());
    d.set_paused(&q("p"), false).await.unwrap();
    assert!(!d.queue_control("p").await.unwrap().paused);
    assert_eq!(d.claim(&q("p"), 5, w, TTL, None).await.unwrap().len(), 1);
    listener.abort();
    d.flush_prefix().await.unwrap();
}

#[tokio::test]
async fn leadership_terms_and_worker_janitor() {
    let d = driver().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let ttl = Duration::from_secs(30);
    assert_eq!(
        d.try_lead("janitor", a, ttl).await.unwrap(),
        Some(LeaderTerm(1))
    );
    assert_eq!(d.try_lead("janitor", b, ttl).await.unwrap(), None);
    assert_eq!(
        d.try_lead("janitor", a, ttl).await.unwrap(),
        Some(LeaderTerm(1))
    );
    d.resign_leader("janitor", b).await.unwrap();
    assert_eq!(d.try_lead("janitor", b, ttl).await.unwrap(), None);
    d.resign_leader("janitor", a).await.unwrap();
    assert_eq!(
        d.try_lead("janitor", b, ttl).await.unwrap(),
        Some(LeaderTerm(2))
    );
    // An expired lead is taken over.
    assert_eq!(
        d.try_lead("other", a, Duration::from_millis(50))
            .await
            .unwrap(),
        Some(LeaderTerm(1))
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        d.try_lead("other", b, ttl).await.unwrap(),
        Some(LeaderTerm(2))
    );

    d.register_worker(&worker(&["x"])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        d.forget_stale_workers(Duration::from_secs(60))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        d.forget_stale_workers(Duration::from_millis(50))
            .await
            .unwrap(),
        1
    );
    d.flush_prefix().await.unwrap();
}

#[tokio::test]
async fn prune_deletes_finished_jobs_past_their_window() {
    let d = driver().await;
    let ids = d
        .enqueue(&[job("pr"), job("pr"), job("pr").max_attempts(1)])
        .await
        .unwrap();
    let w = Uuid::new_v4();
    let c = d.claim(&q("pr"), 3, w, TTL, None).await.unwrap();
    d.complete(&[c[0].lease_ref()], false).await.unwrap();
    d.cancel(ids[1].id).await.unwrap();
    d.settle_failures(
        w,
        &[Failed {
            lease: c[2].lease_ref(),
            attempt: 1,
            error: "x".to_owned(),
            retry_in: None,
        }],
    )
    .await
    .unwrap();
    let keep = Retention {
        finished: Duration::from_secs(3600),
        dead: Duration::from_secs(3600),
    };
    assert_eq!(d.prune(keep, 100).await.unwrap().finished, 0);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let now = Retention {
        finished: Duration::ZERO,
        dead: Duration::from_secs(3600),
    };
    let p = d.prune(now, 1).await.unwrap();
    assert_eq!((p.finished, p.dead), (1, 0));
    let p = d.prune(now, 100).await.unwrap();
    assert_eq!((p.finished, p.dead), (1, 0));
    assert_eq!(d.job(ids[0].id).await.unwrap(), None);
    assert_eq!(d.job(ids[1].id).await.unwrap(), None);
    assert_eq!(
        d.count_by_state("pr").await.unwrap(),
        vec![(JobState::Dead, 1)]
    );
    d.flush_prefix().await.unwrap();
}

/// A throw-away server on a free port, killed when dropped.
struct Throwaway(std::process::Child);

impl Drop for Throwaway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a throw-away `redis-server` on a free port (no persistence) with `extra` arguments;
/// returns it with its URL and a connection once it answers.
async fn throwaway(extra: &[&str]) -> (Throwaway, String, redis::aio::MultiplexedConnection) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let port = port.to_string();
    let mut args = vec![
        "--port",
        &port,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ];
    args.extend_from_slice(extra);
    let child = std::process::Command::new("redis-server")
        .args(&args)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server must be installed to run this test");
    let server = Throwaway(child);
    let url = format!("redis://127.0.0.1:{port}");
    let client = redis::Client::open(url.as_str()).unwrap();
    for _ in 0..50 {
        if let Ok(c) = client.get_multiplexed_async_connection().await {
            return (server, url, c);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the throw-away redis-server on port {port} did not start");
}

#[tokio::test]
async fn a_server_that_evicts_keys_is_refused() {
    let (_server, url, mut conn) = throwaway(&["--maxmemory-policy", "allkeys-lru"]).await;
    let err = RedisDriver::connect(&url, "evict").await.unwrap_err();
    assert!(
        matches!(&err, QueueError::Invalid { field, message }
            if field == "redis.maxmemory-policy" && message.contains("allkeys-lru")),
        "{err:?}"
    );
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .query_async(&mut conn)
        .await
        .unwrap();
    RedisDriver::connect(&url, "evict").await.unwrap();
}

#[tokio::test]
async fn a_server_without_config_is_accepted() {
    let (_server, url, _conn) = throwaway(&["--rename-command", "CONFIG", ""]).await;
    let d = RedisDriver::connect(&url, "noconfig").await.unwrap();
    d.enqueue(&[job("x")]).await.unwrap();
}

#[tokio::test]
async fn the_listener_reconnects_and_reports_missed_wakeups() {
    let (_server, url, mut conn) = throwaway(&[]).await;
    let d = RedisDriver::connect(&url, "relisten").await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sink = Arc::new(Collect {
        tx,
        missed: Mutex::new(0),
    });
    let listener = {
        let d = d.clone();
        let sink: Arc<dyn WakeupSink> = sink.clone();
        tokio::spawn(async move { d.listen(sink).await })
    };
    next_matching(&mut rx, Option::is_none).await;
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(killed, 1);
    next_matching(&mut rx, Option::is_none).await;
    assert_eq!(*sink.missed.lock().unwrap(), 2);
    d.set_paused(&q("z"), true).await.unwrap();
    let control = Some(Wakeup::Control { queue: q("z") });
    next_matching(&mut rx, |w| *w == control).await;
    listener.abort();
}

#[tokio::test]
async fn unreadable_job_data_is_a_backend_error() {
    let d = driver().await;
    let id = d.enqueue(&[job("bad")]).await.unwrap()[0].id;
    let client = redis::Client::open(url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{{{}:q:bad}}:job:{}", d.prefix(), id.0);
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("errors")
        .arg("not json")
        .query_async(&mut conn)
        .await
        .unwrap();
    let err = d.job(id).await.unwrap_err();
    assert!(
        matches!(
            err,
            QueueError::Backend {
                backend: "redis",
                ..
            }
        ),
        "{err:?}"
    );
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("attempt")
        .arg("many")
        .query_async(&mut conn)
        .await
        .unwrap();
    let err = d
        .claim(&q("bad"), 1, Uuid::new_v4(), TTL, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            QueueError::Backend {
                backend: "redis",
                ..
            }
        ),
        "{err:?}"
    );
    d.flush_prefix().await.unwrap();
}
