//! Wake-ups: the driver's one listening connection per process (Postgres LISTEN, Redis pub/sub)
//! fans wake-ups out to the producers of the named queue. Losing the connection loses
//! wake-ups, so on reconnect every producer is woken; the poll fallback covers anything else.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicI32, Ordering},
    },
};

use chrono::{DateTime, Utc};
use cowans_core::{
    Wakeup,
    queue::{Driver, WakeupSink},
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::in_flight::InFlight;

/// The wake-up channel of one producer. Several notifications before the producer looks
/// coalesce into one claim: that is the per-queue debounce.
pub(crate) struct QueueSignal {
    pub(crate) notify: Notify,
    /// Jobs may have become runnable behind the producer's claim cursor: claim from the head.
    pub(crate) rewind: AtomicBool,
    /// The highest priority among new runnable jobs since the producer last looked.
    pub(crate) new_priority: AtomicI32,
    /// Scheduled jobs may have become due: run a promotion pass.
    pub(crate) promote: AtomicBool,
    /// The earliest known run_at of a scheduled job (from our own retries).
    pub(crate) due_hint: Mutex<Option<DateTime<Utc>>>,
    /// The queue's control row (pause, limits) changed: read it again.
    pub(crate) control: AtomicBool,
    /// This process gave fleet-wide permits of the queue back: a claim held back by the limit
    /// may go ahead now.
    pub(crate) permits_freed: AtomicBool,
}

impl Default for QueueSignal {
    fn default() -> Self {
        Self {
            notify: Notify::new(),
            rewind: AtomicBool::new(false),
            new_priority: AtomicI32::new(i32::MIN),
            promote: AtomicBool::new(false),
            due_hint: Mutex::new(None),
            control: AtomicBool::new(false),
            permits_freed: AtomicBool::new(false),
        }
    }
}

impl QueueSignal {
    /// New jobs were enqueued, the highest at `priority`.
    pub(crate) fn enqueued(&self, priority: i32) {
        self.new_priority.fetch_max(priority, Ordering::AcqRel);
        self.notify.notify_one();
    }

    /// Existing jobs became runnable again; they may sort before the cursor.
    pub(crate) fn runnable(&self) {
        self.rewind.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    pub(crate) fn scheduled(&self, at: Option<DateTime<Utc>>) {
        if let Some(at) = at {
            let mut hint = self.due_hint.lock().unwrap_or_else(|p| p.into_inner());
            *hint = Some(hint.map_or(at, |h| h.min(at)));
        }
        self.promote.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    pub(crate) fn permits_freed(&self) {
        self.permits_freed.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    pub(crate) fn control_changed(&self) {
        self.control.store(true, Ordering::Release);
        self.rewind.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    pub(crate) fn take_due_hint(&self) -> Option<DateTime<Utc>> {
        self.due_hint
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

/// Producers by queue name, and the jobs this process holds (for cancellations).
#[derive(Default)]
pub(crate) struct Signals {
    by_queue: Mutex<HashMap<String, Vec<Arc<QueueSignal>>>>,
    pub(crate) in_flight: Arc<InFlight>,
}

impl Signals {
    pub(crate) fn subscribe(&self, queue: &str) -> Arc<QueueSignal> {
        let signal = Arc::new(QueueSignal::default());
        self.by_queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(queue.to_owned())
            .or_default()
            .push(signal.clone());
        signal
    }

    pub(crate) fn each(&self, queue: &str, f: impl Fn(&QueueSignal)) {
        let map = self.by_queue.lock().unwrap_or_else(|p| p.into_inner());
        for s in map.get(queue).into_iter().flatten() {
            f(s);
        }
    }

    fn all(&self, f: impl Fn(&QueueSignal)) {
        let map = self.by_queue.lock().unwrap_or_else(|p| p.into_inner());
        for s in map.values().flatten() {
            f(s);
        }
    }
}

impl WakeupSink for Signals {
    fn wake(&self, wakeup: Wakeup) {
        match wakeup {
            Wakeup::Enqueued { queue, priority } => {
                self.each(queue.as_str(), |s| s.enqueued(priority))
            }
            Wakeup::Runnable { queue } => self.each(queue.as_str(), QueueSignal::runnable),
            Wakeup::Scheduled { queue } => self.each(queue.as_str(), |s| s.scheduled(None)),
            Wakeup::Control { queue } => self.each(queue.as_str(), QueueSignal::control_changed),
            Wakeup::PermitsFreed { queue } => self.each(queue.as_str(), QueueSignal::permits_freed),
            Wakeup::Cancel { job } => {
                self.in_flight.cancel(job);
            }
        }
    }

    fn missed(&self) {
        self.all(|s| {
            s.runnable();
            s.scheduled(None);
            s.control_changed();
        });
    }
}

/// Delivers the driver's wake-ups to the producers until `stop`.
pub(crate) async fn run(driver: Arc<dyn Driver>, signals: Arc<Signals>, stop: CancellationToken) {
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = driver.listen(signals) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakeups_reach_the_producers_of_their_queue_only() {
        let q = |name: &str| cowans_core::QueueName::new(name).unwrap();
        let send = |signals: &Signals, w: Wakeup| signals.wake(w);
        let signals = Signals::default();
        let a = signals.subscribe("shopify.push");
        let b = signals.subscribe("other");
        send(
            &signals,
            Wakeup::Enqueued {
                queue: q("shopify.push"),
                priority: 5,
            },
        );
        assert_eq!(a.new_priority.load(Ordering::Acquire), 5);
        assert!(
            !a.rewind.load(Ordering::Acquire),
            "new jobs do not rewind the cursor"
        );
        assert_eq!(b.new_priority.load(Ordering::Acquire), i32::MIN);
        send(&signals, Wakeup::Runnable { queue: q("other") });
        assert!(
            b.rewind.load(Ordering::Acquire),
            "re-entries rewind the cursor"
        );
        send(&signals, Wakeup::Scheduled { queue: q("other") });
        assert!(b.promote.load(Ordering::Acquire));
        send(&signals, Wakeup::Control { queue: q("other") });
        assert!(
            b.control.load(Ordering::Acquire),
            "control changes reach the queue"
        );
        send(&signals, Wakeup::PermitsFreed { queue: q("other") });
        assert!(b.permits_freed.load(Ordering::Acquire));
        assert!(!a.permits_freed.load(Ordering::Acquire));
        let token = CancellationToken::new();
        let held = cowans_core::queue::LeaseRef {
            id: cowans_core::JobId(7),
            lease: 1,
        };
        signals.in_flight.insert_many([(held, token.clone())]);
        send(
            &signals,
            Wakeup::Cancel {
                job: cowans_core::JobId(8),
            },
        );
        assert!(!token.is_cancelled());
        send(
            &signals,
            Wakeup::Cancel {
                job: cowans_core::JobId(7),
            },
        );
        assert!(
            token.is_cancelled(),
            "a cancellation reaches the job's handler"
        );
    }

    #[test]
    fn the_due_hint_keeps_the_earliest_time() {
        let s = QueueSignal::default();
        let now = Utc::now();
        s.scheduled(Some(now + chrono::Duration::seconds(5)));
        s.scheduled(Some(now + chrono::Duration::seconds(1)));
        s.scheduled(None);
        assert_eq!(s.take_due_hint(), Some(now + chrono::Duration::seconds(1)));
        assert_eq!(s.take_due_hint(), None);
    }
}
