//! Live events: what happened to jobs, batches and queues, as one serde-tagged type. Every
//! publisher sends an [`Event`] (serialised here, by serde, and nowhere else) on the
//! `cowans_events` NOTIFY channel; every API instance relays what arrives to its SSE and
//! WebSocket clients. The JSON Schema of the type is published beside the OpenAPI document.
//!
//! Completions are not announced one by one (a NOTIFY per job at tens of thousands a second);
//! batch progress and the queue gauges carry that.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{JobId, JobState};

/// The NOTIFY channel of events (JSON payloads).
pub const EVENTS_CHANNEL: &str = "cowans_events";

/// Longest error text an event carries (a NOTIFY payload is at most 8,000 bytes); the job's
/// own history keeps the whole text.
pub const EVENT_ERROR_CHARS: usize = 1000;

/// Jobs of a batch by state, plus `failed`: jobs waiting for a retry after a failed attempt
/// (also counted under their state).
pub type BatchCounts = BTreeMap<String, i64>;

/// One event. The JSON form is an object whose `type` names the variant (`"job.dead"`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum Event {
    /// A job moved to the dead-letter set (attempts exhausted, permanent failure, undecodable
    /// payload, or its last attempt's worker died).
    #[serde(rename = "job.dead")]
    JobDead {
        job_id: JobId,
        queue: String,
        kind: String,
        batch_id: Option<i64>,
        attempt: i32,
        /// The last attempt's error, cut to 1,000 characters.
        error: String,
    },
    /// An operator cancelled a job (not announced per job when a whole batch is cancelled).
    #[serde(rename = "job.cancelled")]
    JobCancelled {
        job_id: JobId,
        queue: String,
        kind: String,
        batch_id: Option<i64>,
        /// The state it was cancelled in; `running` means its handler was told to stop.
        was: JobState,
    },
    /// An operator made a dead or cancelled job run again.
    #[serde(rename = "job.retried")]
    JobRetried {
        job_id: JobId,
        queue: String,
        kind: String,
        batch_id: Option<i64>,
    },
    /// Dead letters of a queue were re-driven.
    #[serde(rename = "dead.redriven")]
    DeadRedriven { queue: String, count: u64 },
    /// Dead letters of a queue were deleted.
    #[serde(rename = "dead.purged")]
    DeadPurged { queue: String, count: u64 },
    /// A batch's counts changed (published by the leader, at most once a maintenance pass).
    #[serde(rename = "batch.progress")]
    BatchProgress {
        batch_id: i64,
        total: i64,
        counts: BatchCounts,
    },
    /// Every job of a batch is final; its callback job, if any, was enqueued (on a Redis
    /// queue: right after).
    #[serde(rename = "batch.finished")]
    BatchFinished {
        batch_id: i64,
        total: i64,
        counts: BatchCounts,
    },
    /// An operator cancelled a batch's unfinished jobs.
    #[serde(rename = "batch.cancelled")]
    BatchCancelled { batch_id: i64, cancelled_jobs: u64 },
    #[serde(rename = "queue.paused")]
    QueuePaused { queue: String },
    #[serde(rename = "queue.resumed")]
    QueueResumed { queue: String },
    /// A queue's fleet-wide limits were set or removed.
    #[serde(rename = "queue.limits")]
    QueueLimits {
        queue: String,
        concurrency_limit: Option<u32>,
        /// At most `rate_jobs` per `rate_period_ms` (per job key when `rate_by_key`).
        rate_jobs: Option<u32>,
        rate_period_ms: Option<u64>,
        rate_by_key: bool,
    },
    /// A running pull of a shop's catalog moved on (at most about once a second).
    #[serde(rename = "sync.progress")]
    SyncProgress {
        shop_id: i64,
        pull_id: i64,
        /// `full` or `incremental`.
        kind: String,
        /// Where it is: `exporting` (Shopify prepares the bulk export), `writing`, `done`.
        stage: String,
        /// Lines of the export read, products and variants written so far.
        lines: i64,
        products: i64,
        variants: i64,
    },
    /// A pull ended.
    #[serde(rename = "sync.finished")]
    SyncFinished {
        shop_id: i64,
        pull_id: i64,
        kind: String,
        /// `completed` or `failed`.
        state: String,
        products: i64,
        variants: i64,
        /// Products marked deleted because Shopify no longer has them.
        deleted: i64,
        error: Option<String>,
    },
    /// A push of a shop's approved changes took a batch of them: how it left them (`pushed`:
    /// Shopify has the proposed values; `conflict`: back to review; `failed`: Shopify refused).
    #[serde(rename = "push.progress")]
    PushProgress {
        shop_id: i64,
        job_id: i64,
        pushed: i64,
        conflicts: i64,
        failed: i64,
    },
    /// Not an event of the system: this subscriber fell behind and `missed` events were dropped
    /// for it (only ever sent to that subscriber).
    #[serde(rename = "lagged")]
    Lagged { missed: u64 },
}

impl Event {
    /// Every event type, as the `type` field names it.
    pub const NAMES: [&'static str; 15] = [
        "job.dead",
        "job.cancelled",
        "job.retried",
        "dead.redriven",
        "dead.purged",
        "batch.progress",
        "batch.finished",
        "batch.cancelled",
        "queue.paused",
        "queue.resumed",
        "queue.limits",
        "sync.progress",
        "sync.finished",
        "push.progress",
        "lagged",
    ];

    /// The `type` field.
    pub fn name(&self) -> &'static str {
        match self {
            Event::JobDead { .. } => "job.dead",
            Event::JobCancelled { .. } => "job.cancelled",
            Event::JobRetried { .. } => "job.retried",
            Event::DeadRedriven { .. } => "dead.redriven",
            Event::DeadPurged { .. } => "dead.purged",
            Event::BatchProgress { .. } => "batch.progress",
            Event::BatchFinished { .. } => "batch.finished",
            Event::BatchCancelled { .. } => "batch.cancelled",
            Event::QueuePaused { .. } => "queue.paused",
            Event::QueueResumed { .. } => "queue.resumed",
            Event::QueueLimits { .. } => "queue.limits",
            Event::SyncProgress { .. } => "sync.progress",
            Event::SyncFinished { .. } => "sync.finished",
            Event::PushProgress { .. } => "push.progress",
            Event::Lagged { .. } => "lagged",
        }
    }

    /// The queue the event is about, if it is about one.
    pub fn queue(&self) -> Option<&str> {
        match self {
            Event::JobDead { queue, .. }
            | Event::JobCancelled { queue, .. }
            | Event::JobRetried { queue, .. }
            | Event::DeadRedriven { queue, .. }
            | Event::DeadPurged { queue, .. }
            | Event::QueuePaused { queue }
            | Event::QueueResumed { queue }
            | Event::QueueLimits { queue, .. } => Some(queue),
            Event::BatchProgress { .. }
            | Event::BatchFinished { .. }
            | Event::BatchCancelled { .. }
            | Event::SyncProgress { .. }
            | Event::SyncFinished { .. }
            | Event::PushProgress { .. }
            | Event::Lagged { .. } => None,
        }
    }

    /// The batch the event is about, if any.
    pub fn batch_id(&self) -> Option<i64> {
        match self {
            Event::JobDead { batch_id, .. }
            | Event::JobCancelled { batch_id, .. }
            | Event::JobRetried { batch_id, .. } => *batch_id,
            Event::BatchProgress { batch_id, .. }
            | Event::BatchFinished { batch_id, .. }
            | Event::BatchCancelled { batch_id, .. } => Some(*batch_id),
            _ => None,
        }
    }

    /// The shop the event is about, if any.
    pub fn shop_id(&self) -> Option<i64> {
        match self {
            Event::SyncProgress { shop_id, .. }
            | Event::SyncFinished { shop_id, .. }
            | Event::PushProgress { shop_id, .. } => Some(*shop_id),
            _ => None,
        }
    }

    /// The JSON text published on the channel.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{\"type\":\"invalid\"}"))
    }

    /// `queue.limits`: the queue's fleet-wide limits as just set (`None`: removed).
    pub fn queue_limits(
        queue: &str,
        concurrency: Option<u32>,
        rate: Option<crate::queue::RateLimit>,
    ) -> Event {
        Event::QueueLimits {
            queue: queue.to_owned(),
            concurrency_limit: concurrency,
            rate_jobs: rate.map(|r| r.jobs),
            rate_period_ms: rate.map(|r| r.period.as_millis() as u64),
            rate_by_key: rate.is_some_and(|r| r.by_key),
        }
    }

    /// `error` cut to [`EVENT_ERROR_CHARS`] characters, for events that carry one.
    pub fn short_error(error: &str) -> String {
        match error.char_indices().nth(EVENT_ERROR_CHARS) {
            Some((at, _)) => error[..at].to_owned(),
            None => error.to_owned(),
        }
    }

    /// The JSON Schema (draft 2020-12) of every event.
    pub fn schema() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(Event)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn events_serialise_with_their_type_and_fields() {
        let e = Event::JobDead {
            job_id: JobId(7),
            queue: "q".into(),
            kind: "k".into(),
            batch_id: None,
            attempt: 3,
            error: "boom".into(),
        };
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(
            v,
            json!({"type": "job.dead", "job_id": 7, "queue": "q", "kind": "k", "batch_id": null, "attempt": 3, "error": "boom"})
        );
        assert_eq!(v["type"], e.name());
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
        let c = Event::JobCancelled {
            job_id: JobId(1),
            queue: "q".into(),
            kind: "k".into(),
            batch_id: Some(4),
            was: JobState::Running,
        };
        assert_eq!(serde_json::to_value(&c).unwrap()["was"], "running");
        assert_eq!(c.batch_id(), Some(4));
        assert_eq!(c.queue(), Some("q"));
    }

    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        let long = "é".repeat(EVENT_ERROR_CHARS + 5);
        assert_eq!(Event::short_error(&long).chars().count(), EVENT_ERROR_CHARS);
        assert_eq!(Event::short_error("short"), "short");
    }

    #[test]
    fn the_schema_names_every_type() {
        let schema = Event::schema();
        let names: Vec<&str> = schema["oneOf"]
            .as_array()
            .expect("one schema per variant")
            .iter()
            .filter_map(|v| v["properties"]["type"]["const"].as_str())
            .collect();
        assert_eq!(names, Event::NAMES);
        assert_eq!(Event::Lagged { missed: 1 }.name(), "lagged");
    }
}
