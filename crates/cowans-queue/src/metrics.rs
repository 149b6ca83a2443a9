//! The engine's Prometheus metrics, named `cowans_<what>_<unit>`, labelled by queue and kind only.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

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
pub const CONCURRENCY_TARGET: &str = "cowans_worker_concurrency_target";
pub const QUEUE_DEPTH: &str = "cowans_queue_depth";
pub const QUEUE_OLDEST_AGE: &str = "cowans_queue_oldest_available_age_seconds";
pub const QUEUE_RUNNING: &str = "cowans_queue_running";
pub const QUEUE_WORKERS: &str = "cowans_queue_workers";
pub const QUEUE_PAUSED: &str = "cowans_queue_paused";
pub const QUEUE_COMPLETED_LAST_MINUTE: &str = "cowans_queue_completed_last_minute";
pub const ACTIONS: &str = "cowans_actions_total";
pub const SUBMIT_GROUP_SIZE: &str = "cowans_api_submit_group_size";
pub const INDEX_BYTES: &str = "cowans_index_bytes";
pub const INDEX_REBUILDS: &str = "cowans_index_rebuilds_total";
pub const JOB_ERRORS: &str = "cowans_job_errors_total";
pub const ERROR_SAMPLES_DROPPED: &str = "cowans_error_samples_dropped_total";
pub const LEADER_PASS: &str = "cowans_leader_last_pass_timestamp_seconds";

/// Bucket bounds for both histograms: a millisecond to ten minutes.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0, 600.0,
];

/// Registers descriptions so `/metrics` explains each series.
pub fn describe() {
    // Counters without labels exist from the start (at 0), so rates and `increase()` see
    // their first event.
    counter!(STALE_ACKS).increment(0);
    counter!(ERROR_SAMPLES_DROPPED).increment(0);
    metrics::describe_counter!(ENQUEUED, "Jobs inserted by this process");
    metrics::describe_counter!(
        ACTIONS,
        "Audited actions through the front door (submits, cancels, pauses, ...) by action"
    );
    metrics::describe_histogram!(
        SUBMIT_GROUP_SIZE,
        "Single submits committed together by one group commit"
    );
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
    metrics::describe_gauge!(
        CONCURRENCY_TARGET,
        "This process's concurrency for the queue (moved by the autoscaler)"
    );
    metrics::describe_gauge!(
        QUEUE_DEPTH,
        "Jobs of the queue by state, fleet-wide (leader's summary; every process exports it, use max by queue)"
    );
    metrics::describe_gauge!(
        QUEUE_OLDEST_AGE,
        metrics::Unit::Seconds,
        "How long the oldest available job of the queue has waited"
    );
    metrics::describe_gauge!(QUEUE_RUNNING, "Jobs of the queue running fleet-wide");
    metrics::describe_gauge!(QUEUE_WORKERS, "Live worker processes consuming the queue");
    metrics::describe_gauge!(QUEUE_PAUSED, "1 if the queue is paused");
    metrics::describe_gauge!(
        QUEUE_COMPLETED_LAST_MINUTE,
        "Jobs of the queue completed in the last minute"
    );
    metrics::describe_gauge!(
        INDEX_BYTES,
        metrics::Unit::Bytes,
        "Size of the job table's hot partial indexes (claim, leases, scheduled), read by the leader"
    );
    metrics::describe_counter!(
        JOB_ERRORS,
        "Failed attempts by kind and error class (a closed set: lease_expired, timeout, panic, payload, throttled, network, database, cancelled, other); the groups are at /api/v1/errors"
    );
    metrics::describe_counter!(
        ERROR_SAMPLES_DROPPED,
        "Failed attempts not recorded for error tracking because its buffer was full (they are still counted in cowans_job_errors_total)"
    );
    metrics::describe_gauge!(
        LEADER_PASS,
        metrics::Unit::Seconds,
        "When this process last ran the fleet's maintenance as its leader (unix time; the fleet's latest pass is the max over processes)"
    );
    metrics::describe_counter!(
        INDEX_REBUILDS,
        "Bloated hot indexes rebuilt (REINDEX CONCURRENTLY) by this process as leader"
    );
}

/// A failed attempt of `kind`, counted by its error's class.
pub(crate) fn job_error(kind: &str, error: &str) {
    let class = cowans_core::error_groups::class(error);
    counter!(JOB_ERRORS, "kind" => kind.to_owned(), "class" => class).increment(1);
}

/// A failed attempt error tracking had no room for.
pub(crate) fn error_sample_dropped() {
    counter!(ERROR_SAMPLES_DROPPED).increment(1);
}

/// This process, as the fleet's leader, ran a maintenance pass now.
pub(crate) fn leader_pass() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    gauge!(LEADER_PASS).set(now.as_secs_f64());
}

pub(crate) fn index_bytes(index: &str, bytes: i64) {
    gauge!(INDEX_BYTES, "index" => index.to_owned()).set(bytes as f64);
}

pub(crate) fn index_rebuilt(index: &str) {
    counter!(INDEX_REBUILDS, "index" => index.to_owned()).increment(1);
}

pub(crate) fn concurrency_target(queue: &str) -> Gauge {
    gauge!(CONCURRENCY_TARGET, "queue" => queue.to_owned())
}

/// Publishes the leader's queue summary as gauges.
pub(crate) fn queue_stats(stats: &[cowans_store::QueueStats]) {
    for s in stats {
        let q = s.queue.clone();
        for (state, n) in [
            ("available", s.available),
            ("scheduled", s.scheduled),
            ("running", s.running),
            ("completed", s.completed),
            ("cancelled", s.cancelled),
            ("dead", s.dead),
        ] {
            gauge!(QUEUE_DEPTH, "queue" => q.clone(), "state" => state).set(n as f64);
        }
        gauge!(QUEUE_OLDEST_AGE, "queue" => q.clone()).set(s.oldest_available_age_secs);
        gauge!(QUEUE_RUNNING, "queue" => q.clone()).set(s.running as f64);
        gauge!(QUEUE_WORKERS, "queue" => q.clone()).set(s.workers as f64);
        gauge!(QUEUE_PAUSED, "queue" => q.clone()).set(if s.paused { 1.0 } else { 0.0 });
        gauge!(QUEUE_COMPLETED_LAST_MINUTE, "queue" => q).set(s.completed_last_minute as f64);
    }
}

pub(crate) fn enqueued(queue: &str, kind: &str, n: u64) {
    counter!(ENQUEUED, "queue" => queue.to_owned(), "kind" => kind.to_owned()).increment(n);
}

pub(crate) fn action(action: &'static str) {
    counter!(ACTIONS, "action" => action).increment(1);
}

pub(crate) fn outcome(name: &'static str, queue: &str, kind: &str) {
    counter!(name, "queue" => queue.to_owned(), "kind" => kind.to_owned()).increment(1);
}

pub(crate) fn stale_acks(n: u64) {
    counter!(STALE_ACKS).increment(n);
}

/// The series of one (queue, kind), resolved once: the hot path (claim, run, ack) then touches
/// handles instead of building label sets and looking them up for every job.
pub(crate) struct JobMetrics {
    pub(crate) queue: Arc<str>,
    pub(crate) kind: Arc<str>,
    wait: Histogram,
    run: Histogram,
    in_flight: Gauge,
    pub(crate) completed: Counter,
    pub(crate) failed: Counter,
    pub(crate) retried: Counter,
    pub(crate) dead: Counter,
}

impl std::fmt::Debug for JobMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobMetrics").finish_non_exhaustive()
    }
}

impl JobMetrics {
    pub(crate) fn new(queue: &str, kind: &str) -> Self {
        let labels = [("queue", queue.to_owned()), ("kind", kind.to_owned())];
        Self {
            queue: Arc::from(queue),
            kind: Arc::from(kind),
            wait: histogram!(QUEUE_WAIT, &labels),
            run: histogram!(RUN_DURATION, &labels),
            in_flight: gauge!(IN_FLIGHT, &labels),
            completed: counter!(COMPLETED, &labels),
            failed: counter!(FAILED, &labels),
            retried: counter!(RETRIED, &labels),
            dead: counter!(DEAD, &labels),
        }
    }

    /// Claimed: counts as in flight from here (buffered or running).
    pub(crate) fn started(&self, wait: Duration) {
        self.wait.record(wait.as_secs_f64());
        self.in_flight.increment(1.0);
    }

    pub(crate) fn finished(&self, ran: Duration) {
        self.run.record(ran.as_secs_f64());
        self.in_flight.decrement(1.0);
    }

    /// Handed back before it ran: no run time to record.
    pub(crate) fn handed_back(&self) {
        self.in_flight.decrement(1.0);
    }
}

type ByKind = HashMap<Arc<str>, Arc<JobMetrics>>;

/// `JobMetrics` by queue and kind, created on first use.
#[derive(Default)]
pub(crate) struct MetricsCache {
    by_queue: Mutex<HashMap<Arc<str>, ByKind>>,
}

impl MetricsCache {
    pub(crate) fn get(&self, queue: &Arc<str>, kind: &str) -> Arc<JobMetrics> {
        let mut map = self.by_queue.lock().unwrap_or_else(|p| p.into_inner());
        let kinds = map.entry(queue.clone()).or_default();
        if let Some(m) = kinds.get(kind) {
            return m.clone();
        }
        let m = Arc::new(JobMetrics::new(queue, kind));
        kinds.insert(m.kind.clone(), m.clone());
        m
    }
}
