//! The jobs this process holds (claimed and not yet acked), for the heartbeat and for handing
//! jobs back at shutdown; and per-queue slot accounting for the producers.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use cowans_core::JobId;
use cowans_store::LeaseRef;
use tokio::sync::Notify;

/// Every job claimed by this process and not yet acked, buffered or running.
#[derive(Default)]
pub(crate) struct InFlight {
    jobs: Mutex<HashMap<JobId, i64>>,
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, i64>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts and
        // removes), so a poisoned lock is still usable.
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn insert_many(&self, refs: impl IntoIterator<Item = LeaseRef>) {
        let mut jobs = self.lock();
        for r in refs {
            jobs.insert(r.id, r.lease);
        }
    }

    pub(crate) fn remove(&self, r: LeaseRef) {
        let mut jobs = self.lock();
        if jobs.get(&r.id) == Some(&r.lease) {
            jobs.remove(&r.id);
        }
    }

    pub(crate) fn snapshot(&self) -> Vec<LeaseRef> {
        self.lock()
            .iter()
            .map(|(id, lease)| LeaseRef {
                id: *id,
                lease: *lease,
            })
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Slot accounting of one consumed queue: `held` counts jobs claimed and not yet finished
/// (buffered + running), so a producer never claims more than `concurrency - held`.
pub(crate) struct Slots {
    held: AtomicUsize,
    concurrency: AtomicUsize,
    /// Signalled whenever a slot frees up.
    pub(crate) freed: Notify,
}

impl Slots {
    pub(crate) fn new(concurrency: usize) -> Self {
        Self {
            held: AtomicUsize::new(0),
            concurrency: AtomicUsize::new(concurrency),
            freed: Notify::new(),
        }
    }

    pub(crate) fn free(&self) -> usize {
        self.concurrency
            .load(Ordering::Acquire)
            .saturating_sub(self.held.load(Ordering::Acquire))
    }

    pub(crate) fn take(&self, n: usize) {
        self.held.fetch_add(n, Ordering::AcqRel);
    }

    pub(crate) fn release(&self, n: usize) {
        self.held.fetch_sub(n, Ordering::AcqRel);
        self.freed.notify_one();
    }
}
