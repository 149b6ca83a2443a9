//! The jobs this process holds (claimed and not yet acked), for the heartbeat and for handing
//! jobs back at shutdown; and per-queue slot accounting for the producers.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
};

use cowans_core::JobId;
use cowans_store::LeaseRef;
use futures::task::AtomicWaker;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Every job claimed by this process and not yet acked, buffered or running, with the token
/// that tells its handler to stop (cancelled by an operator, or its lease lost).
#[derive(Default)]
pub(crate) struct InFlight {
    jobs: Mutex<HashMap<JobId, (i64, CancellationToken)>>,
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, (i64, CancellationToken)>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts and
        // removes), so a poisoned lock is still usable.
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn insert_many(
        &self,
        held: impl IntoIterator<Item = (LeaseRef, CancellationToken)>,
    ) {
        let mut jobs = self.lock();
        for (r, token) in held {
            jobs.insert(r.id, (r.lease, token));
        }
    }

    pub(crate) fn remove(&self, r: LeaseRef) {
        let mut jobs = self.lock();
        if jobs.get(&r.id).is_some_and(|(lease, _)| *lease == r.lease) {
            jobs.remove(&r.id);
        }
    }

    pub(crate) fn snapshot(&self) -> Vec<LeaseRef> {
        self.lock()
            .iter()
            .map(|(id, (lease, _))| LeaseRef {
                id: *id,
                lease: *lease,
            })
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Tells the handler of `id` to stop (an operator cancelled the job). False if not held here.
    pub(crate) fn cancel(&self, id: JobId) -> bool {
        match self.lock().get(&id) {
            Some((_, token)) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// After a heartbeat: jobs of `asked` that are still held with the same lease but whose lease
    /// the database no longer confirms (`kept`) were cancelled or rescued; stop their handlers.
    pub(crate) fn cancel_lost(&self, asked: &[LeaseRef], kept: &HashSet<JobId>) -> usize {
        let jobs = self.lock();
        let mut n = 0;
        for r in asked.iter().filter(|r| !kept.contains(&r.id)) {
            if let Some((lease, token)) = jobs.get(&r.id)
                && *lease == r.lease
                && !token.is_cancelled()
            {
                token.cancel();
                n += 1;
            }
        }
        n
    }
}

/// Slot accounting of one consumed queue: `held` counts jobs claimed and not yet finished
/// (buffered + running). At most `concurrency` of them run; the producer may claim up to
/// `ahead` more than that (a prefetch it sizes from how fast the handlers finish), so it never
/// holds more than `concurrency + ahead`.
pub(crate) struct Slots {
    held: AtomicUsize,
    concurrency: AtomicUsize,
    ahead: AtomicUsize,
    /// Attempts settled since start and their summed run time, µs (for the producer's estimate
    /// of the handlers' pace).
    ran: AtomicU64,
    ran_us: AtomicU64,
    /// Signalled whenever a slot frees up.
    pub(crate) freed: Notify,
    /// The backend's task: woken when jobs were buffered or a running slot freed up.
    pub(crate) waker: AtomicWaker,
    /// What the autoscaler looks at: did the last claim leave jobs behind, and the queue wait
    /// of the jobs started since it last looked.
    backlog: AtomicBool,
    waited_us: AtomicU64,
    started: AtomicU64,
}

impl Slots {
    pub(crate) fn new(concurrency: usize) -> Self {
        Self {
            held: AtomicUsize::new(0),
            concurrency: AtomicUsize::new(concurrency),
            ahead: AtomicUsize::new(0),
            ran: AtomicU64::new(0),
            ran_us: AtomicU64::new(0),
            freed: Notify::new(),
            waker: AtomicWaker::new(),
            backlog: AtomicBool::new(false),
            waited_us: AtomicU64::new(0),
            started: AtomicU64::new(0),
        }
    }

    /// The current target (moved by the autoscaler).
    pub(crate) fn concurrency(&self) -> usize {
        self.concurrency.load(Ordering::Acquire)
    }

    pub(crate) fn set_concurrency(&self, n: usize) {
        self.concurrency.store(n.max(1), Ordering::Release);
        self.freed.notify_one();
    }

    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }

    /// How many more jobs the producer may claim.
    pub(crate) fn free(&self) -> usize {
        (self.concurrency.load(Ordering::Acquire) + self.ahead.load(Ordering::Acquire))
            .saturating_sub(self.held.load(Ordering::Acquire))
    }

    /// Whether one more of the `buffered` jobs may start now.
    pub(crate) fn may_start(&self, buffered: usize) -> bool {
        self.held.load(Ordering::Acquire).saturating_sub(buffered)
            < self.concurrency.load(Ordering::Acquire)
    }

    pub(crate) fn set_ahead(&self, n: usize) {
        self.ahead.store(n, Ordering::Release);
    }

    /// One attempt ran for `took`.
    pub(crate) fn ran(&self, took: std::time::Duration) {
        self.ran_us
            .fetch_add(took.as_micros() as u64, Ordering::AcqRel);
        self.ran.fetch_add(1, Ordering::AcqRel);
    }

    /// Attempts settled since start and their summed run time in µs.
    pub(crate) fn runs(&self) -> (u64, u64) {
        (
            self.ran.load(Ordering::Acquire),
            self.ran_us.load(Ordering::Acquire),
        )
    }

    pub(crate) fn saw_backlog(&self, backlog: bool) {
        self.backlog.store(backlog, Ordering::Release);
    }

    pub(crate) fn record_waits(&self, waits: impl Iterator<Item = std::time::Duration>) {
        let (mut n, mut us) = (0u64, 0u64);
        for w in waits {
            n += 1;
            us = us.saturating_add(w.as_micros() as u64);
        }
        self.started.fetch_add(n, Ordering::AcqRel);
        self.waited_us.fetch_add(us, Ordering::AcqRel);
    }

    /// Backlog flag, and mean wait of the jobs started since the last call (`None`: none).
    pub(crate) fn take_load(&self) -> (bool, Option<std::time::Duration>) {
        let n = self.started.swap(0, Ordering::AcqRel);
        let us = self.waited_us.swap(0, Ordering::AcqRel);
        let mean = (n > 0).then(|| std::time::Duration::from_micros(us / n));
        (self.backlog.load(Ordering::Acquire), mean)
    }

    pub(crate) fn take(&self, n: usize) {
        self.held.fetch_add(n, Ordering::AcqRel);
    }

    pub(crate) fn release(&self, n: usize) {
        self.held.fetch_sub(n, Ordering::AcqRel);
        self.freed.notify_one();
        self.waker.wake();
    }
}
