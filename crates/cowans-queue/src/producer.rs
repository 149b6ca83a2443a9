//! The producer of one consumed queue: claims jobs when there are free slots and reason to
//! believe work is waiting, decodes them, and hands them to the backend's buffer.
//!
//! It claims when woken by a notification, when a slot frees up while the last claim came back
//! full (a backlog), when its poll timer fires (the fallback for lost notifications), and runs a
//! promotion pass when a scheduled job may have fallen due. It never claims more than
//! `concurrency + ahead - held`, where `ahead` is what its handlers finish in two claim round
//! trips (`prefetch`), so a slow worker never hoards jobs another worker could run.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, atomic::Ordering},
    time::Duration,
};

use apalis_core::task::{Task, builder::TaskBuilder, task_id::TaskId};
use chrono::Utc;
use cowans_core::queue::{ClaimCursor, ClaimedJob, LeaseRef, QueueControl, QueueResult};
use cowans_core::{JobId, JobOutcome};
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{
    JobMeta, QueueConfig,
    completer::Ack,
    engine::EngineInner,
    in_flight::Slots,
    limiter::{LimitError, Permit, Tokens},
    listener::QueueSignal,
    metrics::JobMetrics,
};

/// What the producer and the backend share.
pub(crate) struct Handoff<Args> {
    buffer: Mutex<Buffer<Args>>,
    pub(crate) slots: Arc<Slots>,
    /// Stops this queue's producer: the engine's shutdown, or the apalis worker closing alone.
    pub(crate) stop: CancellationToken,
}

/// Claimed jobs not yet started. Once `closed`, nothing more may be put in: the producer hands
/// such jobs back instead, so no claimed job is left where nobody will run it.
pub(crate) struct Buffer<Args> {
    pub(crate) tasks: VecDeque<Task<Args>>,
    pub(crate) closed: bool,
}

impl<Args> Buffer<Args> {
    /// Appends a claim's jobs (in claim order); see [`push_ranked`].
    pub(crate) fn push(&mut self, jobs: Vec<Task<Args>>) {
        push_ranked(&mut self.tasks, jobs, |t| {
            t.data().get::<JobMeta>().map_or(0, |m| m.priority)
        });
    }
}

/// Appends `new` to `queue`. Jobs claimed ahead may wait in the buffer behind others: if the new
/// ones outrank the last waiting one, the buffer is re-sorted (stable: claim order within a
/// priority), so a higher-priority job still starts first.
fn push_ranked<T>(queue: &mut VecDeque<T>, new: Vec<T>, priority: impl Fn(&T) -> i16) {
    let last = queue.back().map(&priority);
    let top = new.iter().map(&priority).max();
    queue.extend(new);
    if let (Some(last), Some(top)) = (last, top)
        && top > last
    {
        queue
            .make_contiguous()
            .sort_by_key(|t| std::cmp::Reverse(priority(t)));
    }
}

impl<Args> Handoff<Args> {
    pub(crate) fn new(concurrency: usize, engine_stop: &CancellationToken) -> Self {
        Self {
            buffer: Mutex::new(Buffer {
                tasks: VecDeque::new(),
                closed: false,
            }),
            slots: Arc::new(Slots::new(concurrency)),
            stop: engine_stop.child_token(),
        }
    }

    pub(crate) fn buffer(&self) -> std::sync::MutexGuard<'_, Buffer<Args>> {
        self.buffer.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Hands claimed but unstarted jobs back as available, attempt not counted.
pub(crate) async fn hand_back<Args>(engine: &EngineInner, slots: &Slots, tasks: Vec<Task<Args>>) {
    let metas: Vec<JobMeta> = tasks
        .iter()
        .filter_map(|t| t.data().get::<JobMeta>().cloned())
        .collect();
    if metas.is_empty() {
        return;
    }
    let refs: Vec<LeaseRef> = metas.iter().map(JobMeta::lease_ref).collect();
    match engine.driver.release(&refs).await {
        Ok(_) => refs.iter().for_each(|r| engine.in_flight.remove(*r)),
        // Still registered: the engine's shutdown tries again, and the leases expire otherwise.
        Err(e) => tracing::warn!(error = %e, "could not hand back unstarted jobs"),
    }
    let permits: Vec<Permit> = metas.iter().filter_map(|m| m.permit.clone()).collect();
    give_back_permits(engine, &permits).await;
    for m in &metas {
        m.metrics.handed_back();
    }
    slots.release(refs.len());
}

const PROMOTE_BATCH: i64 = 1000;

pub(crate) async fn run<Args>(
    engine: Arc<EngineInner>,
    queue: QueueConfig,
    handoff: Arc<Handoff<Args>>,
    signal: Arc<QueueSignal>,
) where
    Args: DeserializeOwned + Send + 'static,
{
    let poll = engine.config.poll_interval;
    let queues = std::slice::from_ref(&queue.queue);
    let mut more = true; // there may be runnable jobs
    let mut next_poll = Instant::now() + poll;
    let mut next_due: Option<Instant> = Some(Instant::now()); // promote once at start
    let mut error_backoff = Duration::from_millis(100);
    let mut cursor: Option<ClaimCursor> = None;
    let scope: Arc<str> = Arc::from(queue.queue.as_str());
    // Pause and fleet-wide limits, read at start, on every `q:` notification and every poll.
    let mut control: Option<QueueControl> = None;
    let mut reload_control = true;
    // A limit said "not before": no claim until then (unless woken by a change).
    let mut not_before: Option<Instant> = None;
    let mut pace = crate::prefetch::Pace::new(queue.prefetch);
    let mut rewinds = crate::rewind::Rewinds::new(poll, Instant::now());

    loop {
        if handoff.stop.is_cancelled() {
            break;
        }
        if signal.control.swap(false, Ordering::AcqRel) {
            reload_control = true;
            not_before = None;
        }
        if signal.permits_freed.swap(false, Ordering::AcqRel) {
            not_before = None;
        }
        if reload_control {
            match engine.driver.queue_control(queue.queue.as_str()).await {
                Ok(c) => {
                    if control.as_ref().is_some_and(|old| old.paused && !c.paused) {
                        more = true;
                    }
                    if control.as_ref().is_none_or(|old| *old != c) {
                        tracing::info!(queue = %queue.queue, paused = c.paused, limit = ?c.concurrency_limit, rate = ?c.rate, "queue control");
                    }
                    control = Some(c);
                    reload_control = false;
                }
                Err(e) => {
                    tracing::warn!(queue = %queue.queue, error = %e, "cannot read queue control")
                }
            }
        }
        let ctl = control.clone().unwrap_or_default();
        if let Some(hint) = signal.take_due_hint() {
            let at = instant_of(hint);
            next_due = Some(next_due.map_or(at, |d| d.min(at)));
        }
        let new_priority = signal.new_priority.swap(i32::MIN, Ordering::AcqRel);
        if signal.rewind.swap(false, Ordering::AcqRel)
            || cursor
                .as_ref()
                .is_some_and(|c| new_priority > i32::from(c.priority))
        {
            cursor = None;
        }
        let promote_now = signal.promote.swap(false, Ordering::AcqRel)
            || next_due.is_some_and(|d| d <= Instant::now());
        let mut failed = false;
        if promote_now {
            match engine.driver.promote_due(queues, PROMOTE_BATCH).await {
                Ok(p) => {
                    if p.promoted > 0 {
                        more = true;
                        cursor = None;
                    }
                    next_due = if p.promoted as i64 == PROMOTE_BATCH {
                        Some(Instant::now())
                    } else {
                        p.next_due.map(instant_of)
                    };
                }
                Err(e) => {
                    tracing::warn!(queue = %queue.queue, error = %e, "promotion failed");
                    failed = true;
                }
            }
        }

        let limited = ctl.concurrency_limit.is_some() || ctl.rate.is_some();
        let ahead = pace.ahead(handoff.slots.runs(), handoff.slots.concurrency());
        handoff.slots.set_ahead(if limited { 0 } else { ahead });
        let free = handoff.slots.free();
        let gated = ctl.paused || not_before.is_some_and(|t| t > Instant::now());
        if more && free > 0 && !failed && !gated {
            let want = free.min(queue.claim_batch);
            let began = Instant::now();
            let from_head = cursor.is_none();
            let claimed =
                claim_within_limits(&engine, &queue, &scope, &ctl, &signal, want, &mut cursor)
                    .await;
            let took = began.elapsed();
            if from_head {
                rewinds.head_claimed(Instant::now(), took, pace.claim_time());
            }
            pace.claimed(took);
            match claimed {
                Ok(claimed) => {
                    error_backoff = Duration::from_millis(100);
                    more = claimed.full || claimed.limited_until.is_some();
                    not_before = claimed.limited_until;
                    handoff
                        .slots
                        .saw_backlog(claimed.full || claimed.limited_until.is_some());
                    if !claimed.jobs.is_empty() {
                        hand_over(&engine, &queue, &handoff, claimed.jobs).await;
                    }
                    if claimed.full && handoff.slots.free() > 0 {
                        continue;
                    }
                }
                Err(e) => {
                    tracing::warn!(queue = %queue.queue, error = %e, "claim failed");
                    failed = true;
                }
            }
        }

        if failed {
            tokio::select! {
                _ = handoff.stop.cancelled() => break,
                _ = tokio::time::sleep(error_backoff) => {}
            }
            error_backoff = (error_backoff * 2).min(Duration::from_secs(5));
            continue;
        }

        let mut wake_at = next_due.map_or(next_poll, |d| d.min(next_poll));
        if let Some(t) = not_before.filter(|_| more) {
            wake_at = wake_at.min(t);
        }
        tokio::select! {
            _ = handoff.stop.cancelled() => break,
            _ = signal.notify.notified() => more = true,
            _ = handoff.slots.freed.notified(), if more => {}
            _ = tokio::time::sleep_until(wake_at) => {
                if Instant::now() >= next_poll {
                    more = true;
                    if rewinds.due(Instant::now()) {
                        cursor = None;
                    }
                    reload_control = true;
                    next_poll = Instant::now() + poll;
                }
            }
        }
    }
    // Let the backend notice the stop and finish.
    handoff.slots.waker.wake();
}

/// How long a producer blocked by a fleet-wide concurrency limit waits before asking again. A
/// fallback: freed permits are announced (`l:<queue>`), but a notification can be lost.
const LIMIT_RETRY: Duration = Duration::from_millis(50);

struct Claimed {
    jobs: Vec<(ClaimedJob, Option<Permit>)>,
    /// The claim got all it asked for: more may be waiting.
    full: bool,
    /// A fleet-wide limit held the claim back; ask again at this time.
    limited_until: Option<Instant>,
}

/// Claims up to `want` jobs within the queue's fleet-wide limits: takes concurrency permits
/// and queue-wide rate tokens first (and returns what the claim did not use), then applies a
/// per-key rate to what it claimed, putting jobs whose key is out of tokens back until their next
/// token (attempt not counted).
async fn claim_within_limits(
    engine: &EngineInner,
    queue: &QueueConfig,
    scope: &Arc<str>,
    ctl: &QueueControl,
    signal: &QueueSignal,
    want: usize,
    cursor: &mut Option<ClaimCursor>,
) -> Result<Claimed, LimitError> {
    let limiter = &engine.limiter;
    let ttl = engine.config.lease_ttl;
    let mut want = want;
    let mut limited_until: Option<Instant> = None;
    let mut permits = Vec::new();
    if let Some(limit) = ctl.concurrency_limit {
        permits = limiter
            .acquire(scope, limit, want as u32, engine.worker_id, ttl)
            .await?;
        if permits.len() < want {
            limited_until = Some(Instant::now() + LIMIT_RETRY);
        }
        want = permits.len();
    }
    let queue_rate = ctl.rate.filter(|r| !r.by_key);
    let mut tokens = 0;
    if let Some(rate) = queue_rate
        && want > 0
    {
        let granted = limiter
            .take(scope, rate, &[String::new()], &[want as u32])
            .await;
        let granted = match granted {
            Ok(g) => g,
            Err(e) => {
                give_back_permits(engine, &permits).await;
                return Err(e);
            }
        };
        if let Some(t) = granted.first() {
            tokens = t.granted as usize;
            if tokens < want {
                let at = instant_of(t.next_at);
                limited_until = Some(limited_until.map_or(at, |l| l.max(at)));
            }
        }
        want = want.min(tokens);
    }
    let jobs = if want > 0 {
        match claim(engine, queue, want, cursor).await {
            Ok(jobs) => jobs,
            Err(e) => {
                give_back_permits(engine, &permits).await;
                return Err(e.into());
            }
        }
    } else {
        Vec::new()
    };
    let full = want > 0 && jobs.len() == want && limited_until.is_none();
    if permits.len() > jobs.len() {
        give_back_permits(engine, &permits.split_off(jobs.len())).await;
    }
    if let Some(rate) = queue_rate
        && tokens > jobs.len()
        && let Err(e) = limiter
            .refund(scope, rate, "", (tokens - jobs.len()) as u32)
            .await
    {
        tracing::warn!(queue = %queue.queue, error = %e, "could not refund rate tokens");
    }
    let mut permits = permits.into_iter();
    let mut jobs: Vec<(ClaimedJob, Option<Permit>)> =
        jobs.into_iter().map(|j| (j, permits.next())).collect();
    if let Some(rate) = ctl.rate.filter(|r| r.by_key)
        && !jobs.is_empty()
    {
        jobs = admit_by_key(engine, scope, rate, signal, jobs).await?;
    }
    Ok(Claimed {
        jobs,
        full,
        limited_until,
    })
}

/// Per-key rate: one bucket round trip for every key of the claim; jobs beyond their key's
/// tokens wait (scheduled, attempt not counted) until that key's next token.
async fn admit_by_key(
    engine: &EngineInner,
    scope: &str,
    rate: cowans_core::queue::RateLimit,
    signal: &QueueSignal,
    jobs: Vec<(ClaimedJob, Option<Permit>)>,
) -> Result<Vec<(ClaimedJob, Option<Permit>)>, LimitError> {
    let (keys, wants) = wants_by_key(&jobs);
    let granted = engine.limiter.take(scope, rate, &keys, &wants).await?;
    let admission = admit(jobs, &granted);
    if !admission.deferred.is_empty() {
        if let Some(first) = admission.deferred.iter().map(|(_, at)| *at).min() {
            signal.scheduled(Some(first));
        }
        engine.driver.defer(&admission.deferred).await?;
        give_back_permits(engine, &admission.freed).await;
    }
    Ok(admission.admitted)
}

/// The distinct rate keys of a claim (no key = `""`) and how many jobs each has, in first-seen
/// order: one bucket request per key.
fn wants_by_key(jobs: &[(ClaimedJob, Option<Permit>)]) -> (Vec<String>, Vec<u32>) {
    let mut keys: Vec<String> = Vec::new();
    let mut wants: Vec<u32> = Vec::new();
    for (job, _) in jobs {
        let key = job.rate_key.as_deref().unwrap_or("");
        match keys.iter().position(|k| k == key) {
            Some(i) => wants[i] += 1,
            None => {
                keys.push(key.to_owned());
                wants.push(1);
            }
        }
    }
    (keys, wants)
}

/// What a per-key rate lets through.
struct Admission {
    admitted: Vec<(ClaimedJob, Option<Permit>)>,
    /// Jobs to put back until their key's next token.
    deferred: Vec<(LeaseRef, chrono::DateTime<Utc>)>,
    /// The concurrency permits the deferred jobs held.
    freed: Vec<Permit>,
}

/// Admits jobs in claim order while their key has tokens; the rest wait for their key's next
/// token. A key the bucket did not answer for is not limited.
fn admit(jobs: Vec<(ClaimedJob, Option<Permit>)>, granted: &[Tokens]) -> Admission {
    let mut left: HashMap<&str, (u32, chrono::DateTime<Utc>)> = granted
        .iter()
        .map(|t| (t.key.as_str(), (t.granted, t.next_at)))
        .collect();
    let mut out = Admission {
        admitted: Vec::with_capacity(jobs.len()),
        deferred: Vec::new(),
        freed: Vec::new(),
    };
    for (job, permit) in jobs {
        let key = job.rate_key.as_deref().unwrap_or("");
        match left.get_mut(key) {
            Some((n, _)) if *n > 0 => {
                *n -= 1;
                out.admitted.push((job, permit));
            }
            Some((_, at)) => {
                out.deferred.push((job.lease_ref(), *at));
                out.freed.extend(permit);
            }
            None => out.admitted.push((job, permit)),
        }
    }
    out
}

async fn give_back_permits(engine: &EngineInner, permits: &[Permit]) {
    if permits.is_empty() {
        return;
    }
    if let Err(e) = engine.limiter.release(permits).await {
        // They expire with their ttl otherwise.
        tracing::warn!(error = %e, "could not release concurrency permits");
    }
}

/// Claims up to `want` jobs, continuing after `cursor` when there is one and falling back to the
/// head of the queue when the cursor's run comes up short. Leaves the cursor after the last job.
async fn claim(
    engine: &EngineInner,
    queue: &QueueConfig,
    want: usize,
    cursor: &mut Option<ClaimCursor>,
) -> QueueResult<Vec<ClaimedJob>> {
    let claim = |n, after: Option<ClaimCursor>| async move {
        engine
            .driver
            .claim(
                &queue.queue,
                n,
                engine.worker_id,
                engine.config.lease_ttl,
                after.as_ref(),
            )
            .await
    };
    let mut jobs = match cursor.take() {
        Some(c) => claim(want, Some(c)).await?,
        None => Vec::new(),
    };
    if jobs.len() < want {
        jobs.extend(claim(want - jobs.len(), None).await?);
    }
    *cursor = jobs.last().map(ClaimedJob::cursor);
    Ok(jobs)
}

/// Converts a database time into a local deadline (clock skew between hosts only shifts it).
fn instant_of(at: chrono::DateTime<Utc>) -> Instant {
    let delta = at - Utc::now();
    match delta.to_std() {
        Ok(d) => Instant::now() + d,
        Err(_) => Instant::now(),
    }
}

async fn hand_over<Args>(
    engine: &EngineInner,
    queue: &QueueConfig,
    handoff: &Handoff<Args>,
    jobs: Vec<(ClaimedJob, Option<Permit>)>,
) where
    Args: DeserializeOwned + Send + 'static,
{
    handoff.slots.take(jobs.len());
    let jobs: Vec<(ClaimedJob, Option<Permit>, CancellationToken)> = jobs
        .into_iter()
        .map(|(j, p)| (j, p, CancellationToken::new()))
        .collect();
    engine.in_flight.insert_many(
        jobs.iter()
            .map(|(j, _, token)| (j.lease_ref(), token.clone())),
    );
    let queue_name: Arc<str> = Arc::from(queue.queue.as_str());
    let mut ready = Vec::with_capacity(jobs.len());
    let mut poisoned = Vec::new();
    // A claim is mostly one kind: resolve its metric handles once, not per job.
    let mut series: Option<Arc<JobMetrics>> = None;
    for (job, permit, cancel) in jobs {
        let metrics = match &series {
            Some(m) if *m.kind == *job.kind => m.clone(),
            _ => series
                .insert(engine.metrics.get(&queue_name, &job.kind))
                .clone(),
        };
        match serde_json::from_str::<Args>(&job.args) {
            Ok(args) => ready.push(task_of(
                args,
                &job,
                queue_name.clone(),
                metrics,
                cancel,
                permit,
            )),
            Err(e) => poisoned.push((job, e, metrics, permit)),
        }
    }
    handoff.slots.record_waits(ready.iter().filter_map(|t| {
        let m = t.data().get::<JobMeta>()?;
        (m.attempted_at - m.run_at).to_std().ok()
    }));
    if !ready.is_empty() {
        let late = {
            let mut buffer = handoff.buffer();
            if buffer.closed {
                ready
            } else {
                buffer.push(ready);
                Vec::new()
            }
        };
        if late.is_empty() {
            handoff.slots.waker.wake();
        } else {
            hand_back(engine, &handoff.slots, late).await;
        }
    }
    for (job, e, metrics, permit) in poisoned {
        // A payload that cannot be decoded will never succeed: dead-letter it with the reason,
        // and keep the worker going.
        tracing::warn!(job_id = job.id, kind = %job.kind, error = %e, "undecodable payload, dead-lettering");
        engine
            .ack(Ack {
                lease: job.lease_ref(),
                metrics,
                attempt: job.attempt,
                completed_in_tx: false,
                permit,
                outcome: JobOutcome::Dead {
                    error: format!(
                        "payload does not decode into {}: {e}",
                        std::any::type_name::<Args>()
                    ),
                },
            })
            .await;
        handoff.slots.release(1);
    }
}

fn task_of<Args>(
    args: Args,
    job: &ClaimedJob,
    queue: Arc<str>,
    metrics: Arc<JobMetrics>,
    cancel: CancellationToken,
    permit: Option<Permit>,
) -> Task<Args> {
    let wait = (job.attempted_at - job.run_at).to_std().unwrap_or_default();
    metrics.started(wait);
    let meta = JobMeta {
        id: JobId(job.id),
        queue,
        kind: Arc::from(job.kind.as_str()),
        attempt: job.attempt,
        max_attempts: job.max_attempts,
        priority: job.priority,
        lease: job.lease,
        created_at: job.created_at,
        run_at: job.run_at,
        attempted_at: job.attempted_at,
        completed_in_tx: Default::default(),
        metrics,
        cancel,
        permit,
    };
    TaskBuilder::new(args)
        .task_id(TaskId::Int(job.id as u64))
        // apalis counts the attempt again when the task is first polled.
        .attempt(job.attempt.saturating_sub(1) as usize)
        .max_attempts(job.max_attempts as usize)
        .data(meta)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_higher_priority_claim_goes_before_the_buffered_jobs_in_claim_order_within_a_priority() {
        // (priority, claim order)
        let mut q: VecDeque<(i16, u32)> = VecDeque::from(vec![(0, 1), (0, 2), (0, 3)]);
        push_ranked(&mut q, vec![(0, 4), (5, 5), (0, 6), (5, 7)], |t| t.0);
        assert_eq!(
            q.iter().map(|t| t.1).collect::<Vec<_>>(),
            vec![5, 7, 1, 2, 3, 4, 6]
        );
        // Same or lower priority: appended as claimed.
        let mut q: VecDeque<(i16, u32)> = VecDeque::from(vec![(3, 1)]);
        push_ranked(&mut q, vec![(3, 2), (1, 3)], |t| t.0);
        assert_eq!(q.iter().map(|t| t.1).collect::<Vec<_>>(), vec![1, 2, 3]);
    }

    fn job(id: i64, key: Option<&str>) -> (ClaimedJob, Option<Permit>) {
        let now = Utc::now();
        let job = ClaimedJob {
            id,
            queue: "q".into(),
            kind: "k".into(),
            args: "{}".into(),
            priority: 0,
            attempt: 1,
            max_attempts: 3,
            lease: id * 100,
            run_at: now,
            created_at: now,
            attempted_at: now,
            rate_key: key.map(str::to_owned),
        };
        let permit = Permit {
            scope: Arc::from("q"),
            slot: id as i32,
            token: id,
        };
        (job, Some(permit))
    }

    fn tokens(key: &str, granted: u32, next_at: chrono::DateTime<Utc>) -> Tokens {
        Tokens {
            key: key.to_owned(),
            granted,
            next_at,
        }
    }

    #[test]
    fn a_claim_asks_the_bucket_once_per_key_in_first_seen_order() {
        let jobs = vec![
            job(1, Some("shop-a")),
            job(2, None),
            job(3, Some("shop-a")),
            job(4, Some("shop-b")),
            job(5, Some("shop-a")),
        ];
        let (keys, wants) = wants_by_key(&jobs);
        assert_eq!(keys, vec!["shop-a", "", "shop-b"]);
        assert_eq!(wants, vec![3, 1, 1]);
    }

    #[test]
    fn jobs_beyond_their_keys_tokens_wait_for_that_keys_next_token_and_free_their_permit() {
        let later = Utc::now() + chrono::Duration::seconds(2);
        let jobs = vec![
            job(1, Some("a")),
            job(2, Some("b")),
            job(3, Some("a")),
            job(4, Some("unanswered")),
            job(5, Some("a")),
        ];
        let granted = [tokens("a", 1, later), tokens("b", 1, later)];
        let out = admit(jobs, &granted);
        let admitted: Vec<i64> = out.admitted.iter().map(|(j, _)| j.id).collect();
        assert_eq!(
            admitted,
            vec![1, 2, 4],
            "first of a, b, and the key the bucket ignored"
        );
        let deferred: Vec<(i64, i64)> = out
            .deferred
            .iter()
            .map(|(l, at)| (l.id.0, (*at - later).num_milliseconds()))
            .collect();
        assert_eq!(
            deferred,
            vec![(3, 0), (5, 0)],
            "a's later jobs wait for a's next token"
        );
        let freed: Vec<i32> = out.freed.iter().map(|p| p.slot).collect();
        assert_eq!(freed, vec![3, 5]);
    }
}
