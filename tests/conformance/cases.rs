//! The cases, each an `async fn(&Harness)`, written against the `Driver` trait only.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::Utc;
use cowans_core::{
    JobId, JobState, QueueName, Wakeup,
    queue::{
        ClaimedJob, Failed, LEASE_EXPIRED, LeaseRef, NewJob, Permit, QueueError, RateLimit,
        Retention, Unique, WakeupSink, WorkerInfo,
    },
};
use cowans_testkit::wait_for;
use serde_json::json;
use uuid::Uuid;

use crate::backends::Harness;

const TTL: Duration = Duration::from_secs(30);
/// How long a case waits for something the backend does on its own clock (margins for a
/// loaded machine).
const PATIENCE: Duration = Duration::from_secs(20);

fn queue(name: &str) -> QueueName {
    QueueName::new(name).unwrap()
}

fn job(q: &str, kind: &str) -> NewJob {
    NewJob::new(queue(q), kind, json!({"n": kind}))
}

fn kinds(jobs: &[ClaimedJob]) -> Vec<&str> {
    jobs.iter().map(|j| j.kind.as_str()).collect()
}

async fn claim(h: &Harness, q: &str, n: usize, ttl: Duration) -> Vec<ClaimedJob> {
    h.driver
        .claim(&queue(q), n, Uuid::new_v4(), ttl, None)
        .await
        .unwrap()
}

async fn state(h: &Harness, id: JobId) -> Option<JobState> {
    h.driver.job(id).await.unwrap().map(|j| j.state)
}

/// Jobs of `q` in state `s`.
pub(crate) async fn count(h: &Harness, q: &str, s: JobState) -> i64 {
    h.driver
        .count_by_state(q)
        .await
        .unwrap()
        .into_iter()
        .find(|(st, _)| *st == s)
        .map_or(0, |(_, n)| n)
}

/// Completes the jobs still held under these leases; the ids it accepted.
async fn complete(h: &Harness, refs: &[LeaseRef], delete: bool) -> Vec<JobId> {
    h.driver.complete(refs, delete).await.unwrap()
}

fn fail(c: &ClaimedJob, error: &str, retry_in: Option<Duration>) -> Failed {
    Failed {
        lease: c.lease_ref(),
        attempt: c.attempt,
        error: error.to_owned(),
        retry_in,
    }
}

/// Collects the wake-ups a driver delivers.
#[derive(Default)]
struct Collect {
    seen: Mutex<Vec<Wakeup>>,
    connected: Mutex<u32>,
}

impl WakeupSink for Collect {
    fn wake(&self, wakeup: Wakeup) {
        self.seen.lock().unwrap().push(wakeup);
    }
    fn missed(&self) {
        *self.connected.lock().unwrap() += 1;
    }
}

/// Starts listening and waits until the driver says it is connected.
async fn listening(h: &Harness) -> (Arc<Collect>, tokio::task::JoinHandle<()>) {
    let sink = Arc::new(Collect::default());
    let driver = h.driver.clone();
    let s = sink.clone();
    let task = tokio::spawn(async move { driver.listen(s).await });
    wait_for("the listener to connect", PATIENCE, || async {
        (*sink.connected.lock().unwrap() > 0).then_some(())
    })
    .await;
    (sink, task)
}

pub async fn claims_come_in_priority_then_enqueue_order(h: &Harness) {
    let jobs = vec![
        job("order", "a"),
        job("order", "b").priority(5),
        job("order", "c"),
        job("order", "d").priority(5),
        job("order", "e").priority(1),
    ];
    let done = h.driver.enqueue(&jobs).await.unwrap();
    assert_eq!(done.len(), 5);
    assert!(done.iter().all(|e| !e.duplicate));
    let claimed = claim(h, "order", 10, TTL).await;
    assert_eq!(kinds(&claimed), ["b", "d", "e", "a", "c"]);
    assert!(claimed.iter().all(|c| c.attempt == 1 && c.queue == "order"));
    let args: serde_json::Value = serde_json::from_str(&claimed[0].args).unwrap();
    assert_eq!(args, json!({"n": "b"}));
    // Jobs enqueued one call after another keep their order too.
    for k in ["x", "y", "z"] {
        h.driver.enqueue(&[job("order", k)]).await.unwrap();
    }
    assert_eq!(kinds(&claim(h, "order", 10, TTL).await), ["x", "y", "z"]);
}

pub async fn claims_order_by_due_time_within_a_priority(h: &Harness) {
    let t = Utc::now() - chrono::Duration::seconds(10);
    let done = h
        .driver
        .enqueue(&[
            job("due", "late").run_at(t),
            job("due", "early").run_at(t - chrono::Duration::seconds(1)),
            job("due", "top").priority(5).run_at(t).rate_key("shop-1"),
        ])
        .await
        .unwrap();
    assert!(
        done.windows(2).all(|w| w[0].id < w[1].id),
        "ids follow the input order"
    );
    let claimed = claim(h, "due", 10, TTL).await;
    assert_eq!(kinds(&claimed), ["top", "early", "late"]);
    assert_eq!(claimed[0].rate_key.as_deref(), Some("shop-1"));
    assert_eq!(claimed[1].rate_key, None);
}

pub async fn a_claim_never_takes_more_than_asked_and_each_job_once(h: &Harness) {
    let jobs: Vec<NewJob> = (0..10).map(|i| job("many", &format!("k{i}"))).collect();
    h.driver.enqueue(&jobs).await.unwrap();
    assert!(claim(h, "many", 0, TTL).await.is_empty());
    let (a, b) = tokio::join!(claim(h, "many", 4, TTL), claim(h, "many", 4, TTL));
    assert_eq!((a.len(), b.len()), (4, 4));
    let rest = claim(h, "many", 10, TTL).await;
    assert_eq!(rest.len(), 2);
    let mut ids: Vec<i64> = a.iter().chain(&b).chain(&rest).map(|c| c.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10, "no job was claimed twice");
    assert!(claim(h, "many", 10, TTL).await.is_empty());
    assert_eq!(count(h, "many", JobState::Running).await, 10);
}

pub async fn delayed_jobs_run_only_once_due(h: &Harness) {
    let now = Utc::now();
    let soon = now + chrono::Duration::milliseconds(1500);
    let later = now + chrono::Duration::hours(1);
    let done = h
        .driver
        .enqueue(&[
            job("delay", "soon").run_at(soon),
            job("delay", "later").run_at(later),
            job("delay", "past").run_at(now - chrono::Duration::hours(1)),
        ])
        .await
        .unwrap();
    assert_eq!(kinds(&claim(h, "delay", 10, TTL).await), ["past"]);
    assert_eq!(state(h, done[0].id).await, Some(JobState::Scheduled));
    let q = [queue("delay")];
    let p = h.driver.promote_due(&q, 100).await.unwrap();
    if p.promoted == 0 {
        let next = p.next_due.expect("a scheduled job is due later");
        assert!(
            next <= soon + chrono::Duration::seconds(1),
            "{next} vs {soon}"
        );
    }
    let got = wait_for("the delayed job to become claimable", PATIENCE, || async {
        h.driver.promote_due(&q, 100).await.unwrap();
        let c = claim(h, "delay", 10, TTL).await;
        (!c.is_empty()).then_some(c)
    })
    .await;
    assert_eq!(kinds(&got), ["soon"]);
    assert!(Utc::now() >= soon - chrono::Duration::milliseconds(50));
    let p = h.driver.promote_due(&q, 100).await.unwrap();
    assert_eq!(p.promoted, 0);
    let next = p.next_due.expect("the later job is still scheduled");
    assert!((next - later).num_seconds().abs() <= 1, "{next} vs {later}");
    assert_eq!(count(h, "delay", JobState::Scheduled).await, 1);
}

pub async fn acks_are_fenced_by_the_lease(h: &Harness) {
    h.driver.enqueue(&[job("fence", "a")]).await.unwrap();
    let c = claim(h, "fence", 1, TTL).await.remove(0);
    let stale = LeaseRef {
        id: c.job_id(),
        lease: c.lease + 1000,
    };
    assert!(complete(h, &[stale], false).await.is_empty());
    let stale_fail = Failed {
        lease: stale,
        ..fail(&c, "boom", None)
    };
    let w = Uuid::new_v4();
    assert!(
        h.driver
            .settle_failures(w, &[stale_fail])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(h.driver.release(&[stale]).await.unwrap().is_empty());
    assert_eq!(state(h, c.job_id()).await, Some(JobState::Running));
    assert_eq!(complete(h, &[c.lease_ref()], false).await, [c.job_id()]);
    assert_eq!(state(h, c.job_id()).await, Some(JobState::Completed));
    assert!(
        complete(h, &[c.lease_ref()], false).await.is_empty(),
        "a job completes once"
    );
    // A deleting complete leaves nothing behind (no unique key keeps it).
    h.driver.enqueue(&[job("fence", "b")]).await.unwrap();
    let c = claim(h, "fence", 1, TTL).await.remove(0);
    assert_eq!(complete(h, &[c.lease_ref()], true).await, [c.job_id()]);
    assert_eq!(state(h, c.job_id()).await, None);
}

fn worker(queues: &[&str]) -> WorkerInfo {
    WorkerInfo {
        id: Uuid::new_v4(),
        hostname: "conformance".to_owned(),
        pid: std::process::id(),
        queues: queues.iter().map(|q| q.to_string()).collect(),
        concurrency: 4,
    }
}

pub async fn heartbeats_keep_a_lease_and_expired_ones_are_rescued(h: &Harness) {
    h.driver
        .enqueue(&[job("rescue", "kept"), job("rescue", "lost")])
        .await
        .unwrap();
    let claimed = claim(h, "rescue", 2, Duration::from_secs(1)).await;
    let (kept, lost) = (&claimed[0], &claimed[1]);
    let w = worker(&["rescue"]);
    let held = h
        .driver
        .heartbeat(&w, &[kept.lease_ref()], TTL)
        .await
        .unwrap();
    assert_eq!(held, [kept.job_id()]);
    wait_for("the lost lease to be rescued", PATIENCE, || async {
        let r = h.driver.rescue_expired(100).await.unwrap();
        (!r.retried.is_empty()).then_some(())
    })
    .await;
    assert_eq!(state(h, kept.job_id()).await, Some(JobState::Running));
    let j = h.driver.job(lost.job_id()).await.unwrap().unwrap();
    assert_eq!((j.state, j.attempt), (JobState::Available, 1));
    assert_eq!(j.errors.last().unwrap().error, LEASE_EXPIRED);
    assert!(
        complete(h, &[lost.lease_ref()], false).await.is_empty(),
        "the rescued attempt's ack is fenced off"
    );
    let again = claim(h, "rescue", 10, TTL).await;
    assert_eq!(kinds(&again), ["lost"]);
    assert_eq!(again[0].attempt, 2);
    assert_ne!(again[0].lease, lost.lease);
    // The heartbeat no longer holds the lost lease.
    let held = h
        .driver
        .heartbeat(&w, &[kept.lease_ref(), lost.lease_ref()], TTL)
        .await
        .unwrap();
    assert_eq!(held, [kept.job_id()]);
}

pub async fn a_lost_last_attempt_becomes_a_dead_letter(h: &Harness) {
    h.driver
        .enqueue(&[job("lastlost", "a").max_attempts(1)])
        .await
        .unwrap();
    let c = claim(h, "lastlost", 1, Duration::from_millis(500))
        .await
        .remove(0);
    let r = wait_for(
        "the expired last attempt to be rescued",
        PATIENCE,
        || async {
            let r = h.driver.rescue_expired(100).await.unwrap();
            (!r.dead.is_empty()).then_some(r)
        },
    )
    .await;
    assert_eq!(r.dead, [("lastlost".to_owned(), "a".to_owned())]);
    assert_eq!(r.dead_ids, [c.job_id()]);
    assert_eq!(state(h, c.job_id()).await, Some(JobState::Dead));
}

pub async fn failures_retry_with_their_backoff_then_dead_letter_with_history(h: &Harness) {
    let w = Uuid::new_v4();
    h.driver
        .enqueue(&[
            job("retry", "slow").max_attempts(3),
            job("retry", "now").max_attempts(3),
        ])
        .await
        .unwrap();
    let c = claim(h, "retry", 2, TTL).await;
    let (slow, now) = (&c[0], &c[1]);
    let before = Utc::now();
    let settled = h
        .driver
        .settle_failures(
            w,
            &[
                fail(slow, "first", Some(Duration::from_secs(3600))),
                fail(now, "one", Some(Duration::ZERO)),
            ],
        )
        .await
        .unwrap();
    assert_eq!(settled.len(), 2);
    let s = settled.iter().find(|s| s.id == slow.job_id()).unwrap();
    assert_eq!(s.state, JobState::Scheduled);
    assert!(s.run_at >= before + chrono::Duration::minutes(59), "{s:?}");
    let n = settled.iter().find(|s| s.id == now.job_id()).unwrap();
    assert_eq!(n.state, JobState::Available);
    // The backoff is persisted: the slow one is not claimable, the other is, at attempt 2.
    let again = claim(h, "retry", 10, TTL).await;
    assert_eq!(kinds(&again), ["now"]);
    assert_eq!(again[0].attempt, 2);
    let settled = h
        .driver
        .settle_failures(w, &[fail(&again[0], "two", None)])
        .await
        .unwrap();
    assert_eq!(settled[0].state, JobState::Dead);
    let j = h.driver.job(now.job_id()).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Dead);
    let history: Vec<(i32, &str)> = j
        .errors
        .iter()
        .map(|e| (e.attempt, e.error.as_str()))
        .collect();
    assert_eq!(history, [(1, "one"), (2, "two")]);
    let w = w.to_string();
    assert!(
        j.errors
            .iter()
            .all(|e| e.worker.as_deref() == Some(w.as_str())),
        "{:?}",
        j.errors
    );
    let slow = h.driver.job(slow.job_id()).await.unwrap().unwrap();
    assert_eq!((slow.state, slow.errors.len()), (JobState::Scheduled, 1));
}

pub async fn dead_letters_are_redriven_with_fresh_attempts(h: &Harness) {
    let w = Uuid::new_v4();
    h.driver
        .enqueue(&[job("redrive", "a").max_attempts(1), job("redrive", "b")])
        .await
        .unwrap();
    let c = claim(h, "redrive", 2, TTL).await;
    h.driver
        .settle_failures(w, &[fail(&c[0], "boom", None)])
        .await
        .unwrap();
    assert_eq!(state(h, c[0].job_id()).await, Some(JobState::Dead));
    let moved = h
        .driver
        .redrive(&[c[0].job_id(), c[1].job_id(), JobId(i64::MAX - 7)])
        .await
        .unwrap();
    assert_eq!(moved, [c[0].job_id()], "only dead letters are re-driven");
    let j = h.driver.job(c[0].job_id()).await.unwrap().unwrap();
    assert_eq!((j.state, j.attempt), (JobState::Available, 0));
    assert_eq!(j.errors.len(), 1, "the error history is kept");
    let again = claim(h, "redrive", 10, TTL).await;
    assert_eq!((again[0].kind.as_str(), again[0].attempt), ("a", 1));
}

pub async fn jobs_are_listed_in_id_order_by_state_and_kind_and_dead_letters_purged(h: &Harness) {
    let w = Uuid::new_v4();
    // 30 jobs: kinds a, b, c in turn; a stranger queue's jobs never show.
    let jobs: Vec<NewJob> = (0..30)
        .map(|i| job("listed", ["a", "b", "c"][i % 3]).max_attempts(1))
        .collect();
    let ids: Vec<JobId> = h
        .driver
        .enqueue(&jobs)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    h.driver.enqueue(&[job("other", "a")]).await.unwrap();
    // Pages of 7 walk every job once, in id order.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = h
            .driver
            .list_jobs("listed", None, None, after, 7)
            .await
            .unwrap();
        assert!(page.len() <= 7);
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        assert!(page.iter().all(|j| j.queue == "listed"));
        seen.extend(page.iter().map(|j| j.id));
    }
    assert_eq!(seen, ids);
    // Kill the first five claimed (kinds a, b, c, a, b): dead letters, listed by state and kind.
    let c = claim(h, "listed", 5, TTL).await;
    let failed: Vec<Failed> = c.iter().map(|j| fail(j, "boom", None)).collect();
    h.driver.settle_failures(w, &failed).await.unwrap();
    let dead = h
        .driver
        .list_jobs("listed", Some(JobState::Dead), None, None, 100)
        .await
        .unwrap();
    assert_eq!(dead.iter().map(|j| j.id).collect::<Vec<_>>(), ids[..5]);
    let dead_a = h
        .driver
        .list_jobs("listed", Some(JobState::Dead), Some("a"), None, 100)
        .await
        .unwrap();
    assert_eq!(
        dead_a.iter().map(|j| j.id).collect::<Vec<_>>(),
        [ids[0], ids[3]]
    );
    let waiting_c = h
        .driver
        .list_jobs("listed", Some(JobState::Available), Some("c"), None, 100)
        .await
        .unwrap();
    assert_eq!(waiting_c.len(), 9, "10 of kind c, one dead");
    // Purge takes exactly the expected count, or nothing.
    let wrong = h
        .driver
        .purge_dead("listed", Some("a"), 3)
        .await
        .unwrap_err();
    assert!(matches!(wrong, QueueError::Conflict { .. }), "{wrong:?}");
    assert_eq!(count(h, "listed", JobState::Dead).await, 5);
    assert_eq!(
        h.driver.purge_dead("listed", Some("a"), 2).await.unwrap(),
        2
    );
    assert_eq!(
        h.driver.job(ids[0]).await.unwrap(),
        None,
        "purged jobs are gone"
    );
    assert_eq!(count(h, "listed", JobState::Dead).await, 3);
    let listed = h
        .driver
        .list_jobs("listed", None, None, None, 100)
        .await
        .unwrap();
    assert_eq!(listed.len(), 28, "purged jobs are no longer listed");
}

pub async fn fleet_limits_hold_across_holders_and_free_on_release_or_expiry(h: &Harness) {
    let l = &h.limiter;
    let scope: Arc<str> = "limited".into();
    let (a, b, c, d, e) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    // Three permits in all, whoever asks.
    let pa = l.acquire(&scope, 3, 2, a, TTL).await.unwrap();
    assert_eq!(pa.len(), 2);
    let pb = l.acquire(&scope, 3, 5, b, TTL).await.unwrap();
    assert_eq!(pb.len(), 1, "only one left");
    assert!(l.acquire(&scope, 3, 1, b, TTL).await.unwrap().is_empty());
    // A release is fenced by its token: a stale one frees nothing.
    let stale = Permit {
        token: pb[0].token + 1_000_000,
        ..pb[0].clone()
    };
    l.release(&[stale]).await.unwrap();
    assert!(l.acquire(&scope, 3, 1, b, TTL).await.unwrap().is_empty());
    l.release(&pa[..1]).await.unwrap();
    assert_eq!(l.acquire(&scope, 3, 5, b, TTL).await.unwrap().len(), 1);
    // A holder's shutdown gives all of its permits back.
    l.release_all(b).await.unwrap();
    // A holder that stops extending loses its permits; one that extends keeps them: c and e
    // each take one of b's two for 300 ms, and only e extends.
    let short = Duration::from_millis(300);
    assert_eq!(l.acquire(&scope, 3, 1, c, short).await.unwrap().len(), 1);
    assert_eq!(l.acquire(&scope, 3, 1, e, short).await.unwrap().len(), 1);
    l.extend(e, TTL).await.unwrap();
    let taken = wait_for("c's permit expires", PATIENCE, || async {
        let got = l.acquire(&scope, 3, 5, d, TTL).await.unwrap();
        (!got.is_empty()).then_some(got)
    })
    .await;
    tokio::time::sleep(short * 2).await;
    let more = l.acquire(&scope, 3, 5, d, TTL).await.unwrap();
    assert_eq!(
        (taken.len(), more.len()),
        (1, 0),
        "c's permit came free; a's (long) and e's (extended) did not"
    );

    // Rate: a bucket of 3 per minute, for the whole scope or per key.
    let rate = RateLimit {
        jobs: 3,
        period: Duration::from_secs(60),
        by_key: false,
    };
    let all = vec!["all".to_owned()];
    let g = l.take("rated", rate, &all, &[5]).await.unwrap();
    assert_eq!(g[0].granted, 3);
    assert!(g[0].next_at > Utc::now(), "{:?}", g[0].next_at);
    assert!(
        g[0].next_at <= Utc::now() + chrono::Duration::seconds(21),
        "{:?}",
        g[0].next_at
    );
    assert_eq!(
        l.take("rated", rate, &all, &[1]).await.unwrap()[0].granted,
        0
    );
    l.refund("rated", rate, "all", 1).await.unwrap();
    assert_eq!(
        l.take("rated", rate, &all, &[2]).await.unwrap()[0].granted,
        1
    );
    let keys = vec!["x".to_owned(), "y".to_owned()];
    let g = l.take("rated-by-key", rate, &keys, &[2, 4]).await.unwrap();
    assert_eq!(
        (g[0].granted, g[1].granted),
        (2, 3),
        "each key has its own bucket"
    );
}

pub async fn a_released_job_runs_again_without_counting_the_attempt(h: &Harness) {
    h.driver.enqueue(&[job("release", "a")]).await.unwrap();
    let c = claim(h, "release", 1, TTL).await.remove(0);
    assert_eq!(
        h.driver.release(&[c.lease_ref()]).await.unwrap(),
        [c.job_id()]
    );
    let j = h.driver.job(c.job_id()).await.unwrap().unwrap();
    assert_eq!((j.state, j.attempt), (JobState::Available, 0));
    let again = claim(h, "release", 1, TTL).await.remove(0);
    assert_eq!(again.attempt, 1);
    assert_ne!(again.lease, c.lease);
}

pub async fn a_deferred_job_waits_without_counting_the_attempt(h: &Harness) {
    h.driver.enqueue(&[job("defer", "a")]).await.unwrap();
    let c = claim(h, "defer", 1, TTL).await.remove(0);
    let later = Utc::now() + chrono::Duration::seconds(60);
    let stale = LeaseRef {
        id: c.job_id(),
        lease: c.lease + 1000,
    };
    assert!(h.driver.defer(&[(stale, later)]).await.unwrap().is_empty());
    assert_eq!(
        h.driver.defer(&[(c.lease_ref(), later)]).await.unwrap(),
        [c.id]
    );
    let j = h.driver.job(c.job_id()).await.unwrap().unwrap();
    assert_eq!((j.state, j.attempt), (JobState::Scheduled, 0));
    assert!(
        (j.run_at - later).num_milliseconds().abs() <= 1,
        "{} vs {later}",
        j.run_at
    );
    assert!(claim(h, "defer", 10, TTL).await.is_empty());
    let p = h.driver.promote_due(&[queue("defer")], 100).await.unwrap();
    assert_eq!(p.promoted, 0);
}

pub async fn unique_keys_hold_while_waiting_or_running(h: &Harness) {
    let keyed = || job("uniq", "a").unique(Unique::key("sku-1"));
    let first = h.driver.enqueue(&[keyed()]).await.unwrap()[0];
    assert!(!first.duplicate);
    let dup = h.driver.enqueue(&[keyed()]).await.unwrap()[0];
    assert_eq!((dup.id, dup.duplicate), (first.id, true));
    let c = claim(h, "uniq", 1, TTL).await.remove(0);
    let dup = h.driver.enqueue(&[keyed()]).await.unwrap()[0];
    assert_eq!(
        (dup.id, dup.duplicate),
        (first.id, true),
        "held while running"
    );
    complete(h, &[c.lease_ref()], false).await;
    let next = h.driver.enqueue(&[keyed()]).await.unwrap()[0];
    assert!(!next.duplicate, "released once completed");
    assert_ne!(next.id, first.id);
    // A key that also covers completed jobs holds after completion.
    let sticky = || job("uniq", "b").unique(Unique::key("sku-2").also_in(&[JobState::Completed]));
    let s = h.driver.enqueue(&[sticky()]).await.unwrap()[0];
    let c = claim(h, "uniq", 10, TTL).await;
    let c = c.iter().find(|c| c.job_id() == s.id).unwrap();
    complete(h, &[c.lease_ref()], true).await;
    let again = h.driver.enqueue(&[sticky()]).await.unwrap()[0];
    assert_eq!((again.id, again.duplicate), (s.id, true));
    // Within one call, the second job with a key is the first one's duplicate.
    let both = h
        .driver
        .enqueue(&[
            job("uniq", "c").unique(Unique::key("sku-3")),
            job("uniq", "c").unique(Unique::key("sku-3")),
        ])
        .await
        .unwrap();
    assert_eq!((both[1].id, both[1].duplicate), (both[0].id, true));
}

pub async fn cancel_stops_waiting_and_running_jobs_and_tells_the_handler(h: &Harness) {
    let (sink, listener) = listening(h).await;
    let done = h
        .driver
        .enqueue(&[
            job("cancel", "running"),
            job("cancel", "waiting").priority(-1),
        ])
        .await
        .unwrap();
    let c = claim(h, "cancel", 1, TTL).await.remove(0);
    assert_eq!(c.kind, "running");
    assert_eq!(
        h.driver.cancel(done[1].id).await.unwrap(),
        JobState::Available
    );
    assert_eq!(
        h.driver.cancel(c.job_id()).await.unwrap(),
        JobState::Running
    );
    wait_for("the handler's cancel wake-up", PATIENCE, || async {
        sink.seen
            .lock()
            .unwrap()
            .contains(&Wakeup::Cancel { job: c.job_id() })
            .then_some(())
    })
    .await;
    assert!(
        complete(h, &[c.lease_ref()], false).await.is_empty(),
        "a cancelled job's result is discarded"
    );
    assert_eq!(state(h, c.job_id()).await, Some(JobState::Cancelled));
    assert!(claim(h, "cancel", 10, TTL).await.is_empty());
    assert!(matches!(
        h.driver.cancel(c.job_id()).await,
        Err(QueueError::Conflict { .. })
    ));
    assert!(matches!(
        h.driver.cancel(JobId(i64::MAX - 3)).await,
        Err(QueueError::NotFound { .. })
    ));

    // A cancelled job can be retried: it runs again from its first attempt; a waiting one
    // cannot be, and an unknown one is not found.
    h.driver.retry(c.job_id()).await.unwrap();
    let again = claim(h, "cancel", 10, TTL).await;
    assert_eq!(kinds(&again), ["running"]);
    assert_eq!(again[0].attempt, 1, "attempts start over");
    assert!(matches!(
        h.driver.retry(c.job_id()).await,
        Err(QueueError::Conflict { .. })
    ));
    assert!(matches!(
        h.driver.retry(JobId(i64::MAX - 3)).await,
        Err(QueueError::NotFound { .. })
    ));
    listener.abort();
}

pub async fn a_paused_queue_gives_nothing_until_resumed(h: &Harness) {
    let (sink, listener) = listening(h).await;
    h.driver
        .enqueue(&[job("pause", "a"), job("pause", "b")])
        .await
        .unwrap();
    h.driver.set_paused(&queue("pause"), true).await.unwrap();
    wait_for("the pause's control wake-up", PATIENCE, || async {
        sink.seen
            .lock()
            .unwrap()
            .contains(&Wakeup::Control {
                queue: queue("pause"),
            })
            .then_some(())
    })
    .await;
    listener.abort();
    assert!(h.driver.queue_control("pause").await.unwrap().paused);
    assert!(claim(h, "pause", 10, TTL).await.is_empty());
    h.driver.refresh_queue_stats().await.unwrap();
    let s = h.driver.queue_stats(Some("pause"), TTL).await.unwrap();
    assert_eq!((s[0].paused, s[0].available), (true, 2), "{s:?}");
    assert!(!h.driver.queue_control("other").await.unwrap().paused);
    h.driver.set_paused(&queue("pause"), false).await.unwrap();
    assert_eq!(claim(h, "pause", 10, TTL).await.len(), 2);
}

pub async fn enqueues_wake_listeners(h: &Harness) {
    let (sink, listener) = listening(h).await;
    h.driver
        .enqueue(&[job("wake", "a").priority(3)])
        .await
        .unwrap();
    wait_for("an enqueue wake-up", PATIENCE, || async {
        sink.seen
            .lock()
            .unwrap()
            .iter()
            .any(|w| matches!(w, Wakeup::Enqueued { queue, .. } if queue.as_str() == "wake"))
            .then_some(())
    })
    .await;
    listener.abort();
}

pub async fn one_leader_at_a_time(h: &Harness) {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let t1 = h.driver.try_lead("conformance", a, TTL).await.unwrap();
    assert!(t1.is_some());
    assert_eq!(
        h.driver.try_lead("conformance", b, TTL).await.unwrap(),
        None
    );
    assert_eq!(
        h.driver.try_lead("conformance", a, TTL).await.unwrap(),
        t1,
        "renewing keeps the term"
    );
    assert!(
        h.driver
            .try_lead("other-role", b, TTL)
            .await
            .unwrap()
            .is_some()
    );
    h.driver.resign_leader("conformance", b).await.unwrap();
    assert_eq!(
        h.driver.try_lead("conformance", b, TTL).await.unwrap(),
        None,
        "only the holder resigns"
    );
    h.driver.resign_leader("conformance", a).await.unwrap();
    let t2 = h.driver.try_lead("conformance", b, TTL).await.unwrap();
    assert!(t2.is_some());
    assert_ne!(t2, t1, "a new holder gets a new term");
    // An expired term can be taken over.
    let short = h
        .driver
        .try_lead("short", a, Duration::from_millis(300))
        .await
        .unwrap();
    assert!(short.is_some());
    wait_for("the expired term to be taken over", PATIENCE, || async {
        h.driver
            .try_lead("short", b, TTL)
            .await
            .unwrap()
            .filter(|t| Some(*t) != short)
    })
    .await;
}

pub async fn stale_workers_are_forgotten(h: &Harness) {
    h.driver.register_worker(&worker(&["x"])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        h.driver
            .forget_stale_workers(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        h.driver
            .forget_stale_workers(Duration::from_millis(50))
            .await
            .unwrap(),
        1
    );
}

pub async fn retention_prunes_finished_jobs(h: &Harness) {
    let w = Uuid::new_v4();
    h.driver
        .enqueue(&[
            job("prune", "a"),
            job("prune", "b"),
            job("prune", "dead").max_attempts(1),
        ])
        .await
        .unwrap();
    let c = claim(h, "prune", 3, TTL).await;
    let cancelled = h.driver.enqueue(&[job("prune", "x")]).await.unwrap()[0].id;
    h.driver.cancel(cancelled).await.unwrap();
    complete(h, &[c[0].lease_ref(), c[1].lease_ref()], false).await;
    h.driver
        .settle_failures(w, &[fail(&c[2], "boom", None)])
        .await
        .unwrap();
    assert_eq!(count(h, "prune", JobState::Completed).await, 2);
    let keep_dead = Retention {
        finished: Duration::ZERO,
        dead: Duration::from_secs(86_400),
    };
    wait_for("completed jobs to be pruned", PATIENCE, || async {
        h.driver.prune(keep_dead, 1000).await.unwrap();
        (count(h, "prune", JobState::Completed).await == 0).then_some(())
    })
    .await;
    assert_eq!(state(h, c[0].job_id()).await, None);
    wait_for("cancelled jobs to be pruned", PATIENCE, || async {
        h.driver.prune(keep_dead, 1000).await.unwrap();
        (state(h, cancelled).await.is_none()).then_some(())
    })
    .await;
    assert_eq!(
        state(h, c[2].job_id()).await,
        Some(JobState::Dead),
        "dead letters have their own window"
    );
}

pub async fn batch_counts_follow_their_jobs_and_survive_deletion(h: &Harness) {
    let in_batch = |kind: &str, batch: i64| {
        let mut j = job("batch", kind);
        j.batch_id = Some(batch);
        j
    };
    let ids: Vec<JobId> = h
        .driver
        .enqueue(&[
            in_batch("a", 7),
            in_batch("b", 7),
            in_batch("c", 7),
            in_batch("d", 7),
            job("batch", "alone"),
            in_batch("e", 8),
        ])
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    let counts = |pairs: &[(&str, i64)]| -> cowans_core::event::BatchCounts {
        pairs.iter().map(|(s, n)| ((*s).to_owned(), *n)).collect()
    };
    let counted = h.driver.count_batches("batch", &[7, 8, 9]).await.unwrap();
    assert_eq!(counted.get(&7), Some(&counts(&[("available", 4)])));
    assert_eq!(counted.get(&8), Some(&counts(&[("available", 1)])));
    assert_eq!(
        counted.get(&9).map_or(0, |c| c.len()),
        0,
        "a batch without jobs here"
    );
    assert_eq!(
        h.driver.job(ids[1]).await.unwrap().unwrap().batch_id,
        Some(7)
    );

    // a completes without retention (deleted at once where the backend can), b fails and waits
    // for its retry, c runs, d is cancelled and then pruned where the backend may.
    let c = claim(h, "batch", 3, TTL).await;
    assert_eq!(kinds(&c), ["a", "b", "c"]);
    complete(h, &[c[0].lease_ref()], true).await;
    h.driver
        .settle_failures(
            Uuid::new_v4(),
            &[fail(&c[1], "boom", Some(Duration::from_secs(3600)))],
        )
        .await
        .unwrap();
    h.driver.cancel(ids[3]).await.unwrap();
    let prune_all = Retention {
        finished: Duration::ZERO,
        dead: Duration::ZERO,
    };
    h.driver.prune(prune_all, 1000).await.unwrap();
    let want = counts(&[
        ("completed", 1),
        ("scheduled", 1),
        ("failed", 1),
        ("running", 1),
        ("cancelled", 1),
    ]);
    assert_eq!(
        h.driver.count_batches("batch", &[7]).await.unwrap().get(&7),
        Some(&want),
        "deleted jobs still count in the state they ended in"
    );
    let members = h.driver.batch_jobs("batch", 7).await.unwrap();
    assert!(
        members.contains(&ids[1]) && members.contains(&ids[2]),
        "the unfinished jobs are the batch's: {members:?}"
    );
    assert!(!members.contains(&ids[4]) && !members.contains(&ids[5]));
    assert!(h.driver.batch_jobs("batch", 9).await.unwrap().is_empty());
    h.driver.close_batches("batch", &[7, 8]).await.unwrap();
}

pub async fn stats_count_jobs_by_state(h: &Harness) {
    h.driver
        .enqueue(&[
            job("stats", "a"),
            job("stats", "b"),
            job("stats", "c").run_at(Utc::now() + chrono::Duration::hours(1)),
        ])
        .await
        .unwrap();
    claim(h, "stats", 1, TTL).await;
    assert_eq!(count(h, "stats", JobState::Available).await, 1);
    assert_eq!(count(h, "stats", JobState::Scheduled).await, 1);
    assert_eq!(count(h, "stats", JobState::Running).await, 1);
    let w = worker(&["stats"]);
    h.driver.register_worker(&w).await.unwrap();
    h.driver.refresh_queue_stats().await.unwrap();
    let s = h.driver.queue_stats(Some("stats"), TTL).await.unwrap();
    assert_eq!(s.len(), 1);
    let s = &s[0];
    assert_eq!(
        (s.available, s.scheduled, s.running, s.dead),
        (1, 1, 1, 0),
        "{s:?}"
    );
    assert_eq!((s.workers, s.worker_concurrency), (1, 4));
    assert!(s.oldest_available_at.is_some());
    h.driver.deregister_worker(w.id).await.unwrap();
    h.driver.refresh_queue_stats().await.unwrap();
    let s = h.driver.queue_stats(Some("stats"), TTL).await.unwrap();
    assert_eq!(s[0].workers, 0, "a deregistered worker is not counted");
}

pub async fn a_bad_job_refuses_the_whole_enqueue(h: &Harness) {
    let err = h
        .driver
        .enqueue(&[job("bad", "good"), job("bad", "bad").max_attempts(0)])
        .await
        .unwrap_err();
    match err {
        QueueError::Invalid { field, .. } => assert_eq!(field, "jobs[1].max_attempts"),
        other => panic!("{other:?}"),
    }
    let left = h.driver.count_by_state("bad").await.unwrap();
    assert!(left.iter().all(|(_, n)| *n == 0), "{left:?}");
}
