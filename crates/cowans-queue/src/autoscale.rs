//! In-process autoscaling: a queue's concurrency in this process moves between `min` and `max`
//! with its backlog and the wait of the jobs it starts.
//!
//! The rule ([`decide`]), applied every `interval`:
//! - **up** by a quarter (at least 1) when jobs are left waiting (the last claim came back full,
//!   or a fleet-wide limit held it back — then more local slots would not help, see below), every
//!   slot is busy, and the jobs started in the interval waited longer than `target_wait` on
//!   average (or none could start at all);
//! - **down** by an eighth (at least 1) when nothing is left waiting and fewer than half of the
//!   slots are busy;
//! - otherwise unchanged. Growing fast and shrinking slowly keeps a burst from oscillating.

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::{Autoscale, in_flight::Slots, metrics};

/// What the autoscaler saw over one interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    pub concurrency: usize,
    /// Jobs held (buffered or running) now.
    pub busy: usize,
    /// The last claim left runnable jobs behind.
    pub backlog: bool,
    /// Mean queue wait of the jobs started in the interval; `None` if none started.
    pub mean_wait: Option<Duration>,
}

/// The next concurrency for `o` within `a`'s bounds.
pub fn decide(a: &Autoscale, o: &Observation) -> usize {
    let c = o.concurrency.clamp(a.min, a.max);
    let saturated = o.busy >= c;
    let slow = o.mean_wait.is_none_or(|w| w > a.target_wait);
    if o.backlog && saturated && slow {
        return (c + c.div_ceil(4).max(1)).min(a.max);
    }
    if !o.backlog && o.busy * 2 < c {
        return c.saturating_sub((c / 8).max(1)).max(a.min);
    }
    c
}

pub(crate) async fn run(
    queue: Arc<str>,
    autoscale: Autoscale,
    slots: Arc<Slots>,
    stop: CancellationToken,
) {
    let gauge = metrics::concurrency_target(&queue);
    gauge.set(slots.concurrency() as f64);
    let mut tick = tokio::time::interval(autoscale.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (backlog, mean_wait) = slots.take_load();
        let o = Observation {
            concurrency: slots.concurrency(),
            busy: slots.held(),
            backlog,
            mean_wait,
        };
        let next = decide(&autoscale, &o);
        if next != o.concurrency {
            tracing::info!(queue = %queue, from = o.concurrency, to = next, backlog, mean_wait = ?mean_wait, busy = o.busy, "autoscaled");
            slots.set_concurrency(next);
            gauge.set(next as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Autoscale = Autoscale {
        min: 2,
        max: 20,
        target_wait: Duration::from_millis(500),
        interval: Duration::from_secs(1),
    };

    fn obs(c: usize, busy: usize, backlog: bool, wait_ms: Option<u64>) -> Observation {
        Observation {
            concurrency: c,
            busy,
            backlog,
            mean_wait: wait_ms.map(Duration::from_millis),
        }
    }

    #[test]
    fn grows_by_a_quarter_while_a_saturated_queue_keeps_jobs_waiting() {
        assert_eq!(decide(&A, &obs(8, 8, true, Some(900))), 10);
        assert_eq!(decide(&A, &obs(2, 2, true, None)), 3, "at least one");
        assert_eq!(
            decide(&A, &obs(19, 19, true, Some(900))),
            20,
            "capped at max"
        );
        assert_eq!(decide(&A, &obs(20, 20, true, Some(900))), 20);
    }

    #[test]
    fn holds_when_jobs_start_fast_enough_or_slots_are_free() {
        assert_eq!(
            decide(&A, &obs(8, 8, true, Some(100))),
            8,
            "waits under target"
        );
        assert_eq!(
            decide(&A, &obs(8, 5, true, Some(900))),
            8,
            "not every slot busy"
        );
        assert_eq!(
            decide(&A, &obs(8, 4, false, None)),
            8,
            "half busy, no backlog"
        );
    }

    #[test]
    fn shrinks_slowly_when_idle_and_never_below_min() {
        assert_eq!(decide(&A, &obs(16, 3, false, Some(1))), 14);
        assert_eq!(decide(&A, &obs(8, 0, false, None)), 7, "at least one");
        assert_eq!(decide(&A, &obs(2, 0, false, None)), 2, "floored at min");
        assert_eq!(
            decide(&A, &obs(50, 0, false, None)),
            18,
            "clamped to max, then shrunk"
        );
    }
}
