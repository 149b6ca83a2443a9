//! The producer of one consumed queue: claims jobs when there are free slots and reason to
//! believe work is waiting, decodes them, and hands them to the backend's buffer.
//!
//! It claims when woken by a notification, when a slot frees up while the last claim came back
//! full (a backlog), when its poll timer fires (the fallback for lost notifications), and runs a
//! promotion pass when a scheduled job may have fallen due. It never claims more than
//! `concurrency - held`, so a slow worker never hoards jobs another worker could run.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, atomic::Ordering},
    time::Duration,
};

use apalis_core::task::{Task, builder::TaskBuilder, task_id::TaskId};
use chrono::Utc;
use cowans_core::{JobId, JobOutcome};
use cowans_store::{ClaimCursor, ClaimedJob, LeaseRef};
use futures::task::AtomicWaker;
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{
    JobMeta, QueueConfig, completer::Ack, engine::EngineInner, in_flight::Slots,
    listener::QueueSignal, metrics::JobMetrics,
};

/// What the producer and the backend share.
pub(crate) struct Handoff<Args> {
    buffer: Mutex<Buffer<Args>>,
    pub(crate) waker: AtomicWaker,
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

impl<Args> Handoff<Args> {
    pub(crate) fn new(concurrency: usize, engine_stop: &CancellationToken) -> Self {
        Self {
            buffer: Mutex::new(Buffer {
                tasks: VecDeque::new(),
                closed: false,
            }),
            waker: AtomicWaker::new(),
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
    match cowans_store::release(&engine.pool, &refs).await {
        Ok(_) => refs.iter().for_each(|r| engine.in_flight.remove(*r)),
        // Still registered: the engine's shutdown tries again, and the leases expire otherwise.
        Err(e) => tracing::warn!(error = %e, "could not hand back unstarted jobs"),
    }
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

    loop {
        if handoff.stop.is_cancelled() {
            break;
        }
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
            match cowans_store::promote_due(&engine.pool, queues, PROMOTE_BATCH).await {
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

        let free = handoff.slots.free();
        if more && free > 0 && !failed {
            let want = free.min(queue.claim_batch);
            match claim(&engine, &queue, want, &mut cursor).await {
                Ok(jobs) => {
                    error_backoff = Duration::from_millis(100);
                    more = jobs.len() == want;
                    if !jobs.is_empty() {
                        hand_over(&engine, &queue, &handoff, jobs).await;
                    }
                    if more && handoff.slots.free() > 0 {
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

        let wake_at = next_due.map_or(next_poll, |d| d.min(next_poll));
        tokio::select! {
            _ = handoff.stop.cancelled() => break,
            _ = signal.notify.notified() => more = true,
            _ = handoff.slots.freed.notified(), if more => {}
            _ = tokio::time::sleep_until(wake_at) => {
                if Instant::now() >= next_poll {
                    more = true;
                    cursor = None;
                    next_poll = Instant::now() + poll;
                }
            }
        }
    }
    // Let the backend notice the stop and finish.
    handoff.waker.wake();
}

/// Claims up to `want` jobs, continuing after `cursor` when there is one and falling back to the
/// head of the queue when the cursor's run comes up short. Leaves the cursor after the last job.
async fn claim(
    engine: &EngineInner,
    queue: &QueueConfig,
    want: usize,
    cursor: &mut Option<ClaimCursor>,
) -> cowans_store::Result<Vec<ClaimedJob>> {
    let claim = |n, after: Option<ClaimCursor>| async move {
        cowans_store::claim(
            &engine.pool,
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
    jobs: Vec<ClaimedJob>,
) where
    Args: DeserializeOwned + Send + 'static,
{
    handoff.slots.take(jobs.len());
    engine.in_flight.insert_many(jobs.iter().map(|j| LeaseRef {
        id: j.job_id(),
        lease: j.lease,
    }));
    let queue_name: Arc<str> = Arc::from(queue.queue.as_str());
    let mut ready = Vec::with_capacity(jobs.len());
    let mut poisoned = Vec::new();
    // A claim is mostly one kind: resolve its metric handles once, not per job.
    let mut series: Option<Arc<JobMetrics>> = None;
    for job in jobs {
        let metrics = match &series {
            Some(m) if *m.kind == *job.kind => m.clone(),
            _ => series
                .insert(engine.metrics.get(&queue_name, &job.kind))
                .clone(),
        };
        match serde_json::from_str::<Args>(&job.args) {
            Ok(args) => ready.push(task_of(args, &job, queue_name.clone(), metrics)),
            Err(e) => poisoned.push((job, e, metrics)),
        }
    }
    if !ready.is_empty() {
        let late = {
            let mut buffer = handoff.buffer();
            if buffer.closed {
                ready
            } else {
                buffer.tasks.extend(ready);
                Vec::new()
            }
        };
        if late.is_empty() {
            handoff.waker.wake();
        } else {
            hand_back(engine, &handoff.slots, late).await;
        }
    }
    for (job, e, metrics) in poisoned {
        // A payload that cannot be decoded will never succeed: dead-letter it with the reason,
        // and keep the worker going.
        tracing::warn!(job_id = job.id, kind = %job.kind, error = %e, "undecodable payload, dead-lettering");
        engine
            .ack(Ack {
                lease: LeaseRef {
                    id: JobId(job.id),
                    lease: job.lease,
                },
                metrics,
                attempt: job.attempt,
                completed_in_tx: false,
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
    };
    TaskBuilder::new(args)
        .task_id(TaskId::Int(job.id as u64))
        // apalis counts the attempt again when the task is first polled.
        .attempt(job.attempt.saturating_sub(1) as usize)
        .max_attempts(job.max_attempts as usize)
        .data(meta)
        .build()
}
