//! The engine's Prometheus metrics, named `cowans_<what>_<unit>`, labelled by queue and kind only.

use std::time::Duration;

use metrics::{counter, gauge, histogram};

pub const ENQUEUED: &str = "cowans_jobs_enqueued_total";
pub const COMPLETED: &str = "cowans_jobs_completed_total";
pub const FAILED: &str = "cowans_jobs_failed_total";
pub const RETRIED: &str = "cowans_jobs_retried_total";
pub const DEAD: &str = "cowans_jobs_dead_total";
pub const RESCUED: &str = "cowans_jobs_rescued_total";
pub const RUN_DURATION: &str = "cowans_job_run_duration_seconds";
pub const QUEUE_WAIT: &str = "cowans_job_queue_wait_seconds";
pub const IN_FLIGHT: &str = "cowans_jobs_in_flight";
pub const STALE_ACKS: &str = "cowans_acks_fenced_total";

/// Bucket bounds for both histograms: a millisecond to ten minutes.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0, 600.0,
];

/// Registers descriptions so `/metrics` explains each series.
pub fn describe() {
    metrics::describe_counter!(ENQUEUED, "Jobs inserted by this process");
    metrics::describe_counter!(COMPLETED, "Jobs completed (acks that were accepted)");
    metrics::describe_counter!(
        FAILED,
        "Failed attempts (each retry or dead letter counts once)"
    );
    metrics::describe_counter!(RETRIED, "Failed attempts that were scheduled to run again");
    metrics::describe_counter!(DEAD, "Jobs moved to the dead-letter set");
    metrics::describe_counter!(RESCUED, "Jobs taken back from workers whose lease expired");
    metrics::describe_counter!(
        STALE_ACKS,
        "Acks rejected because the worker no longer held the lease"
    );
    metrics::describe_histogram!(
        RUN_DURATION,
        metrics::Unit::Seconds,
        "Handler run time per attempt"
    );
    metrics::describe_histogram!(
        QUEUE_WAIT,
        metrics::Unit::Seconds,
        "Time from runnable to started"
    );
    metrics::describe_gauge!(IN_FLIGHT, "Jobs running in this process");
}

pub(crate) fn enqueued(queue: &str, kind: &str, n: u64) {
    counter!(ENQUEUED, "queue" => queue.to_owned(), "kind" => kind.to_owned()).increment(n);
}

pub(crate) fn outcome(name: &'static str, queue: &str, kind: &str) {
    counter!(name, "queue" => queue.to_owned(), "kind" => kind.to_owned()).increment(1);
}

pub(crate) fn stale_acks(n: u64) {
    counter!(STALE_ACKS).increment(n);
}

pub(crate) fn started(queue: &str, kind: &str, wait: Duration) {
    histogram!(QUEUE_WAIT, "queue" => queue.to_owned(), "kind" => kind.to_owned())
        .record(wait.as_secs_f64());
    gauge!(IN_FLIGHT, "queue" => queue.to_owned(), "kind" => kind.to_owned()).increment(1.0);
}

pub(crate) fn finished(queue: &str, kind: &str, ran: Duration) {
    histogram!(RUN_DURATION, "queue" => queue.to_owned(), "kind" => kind.to_owned())
        .record(ran.as_secs_f64());
    gauge!(IN_FLIGHT, "queue" => queue.to_owned(), "kind" => kind.to_owned()).decrement(1.0);
}

/// A claimed job handed back before it ran: no longer in flight, and no run time to record.
pub(crate) fn handed_back(queue: &str, kind: &str) {
    gauge!(IN_FLIGHT, "queue" => queue.to_owned(), "kind" => kind.to_owned()).decrement(1.0);
}
