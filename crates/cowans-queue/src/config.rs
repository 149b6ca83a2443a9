//! Runtime settings of the engine and of each consumed queue.

use std::{collections::HashMap, sync::Arc, time::Duration};

use cowans_core::{QueueName, RetryPolicy};
use serde::{Deserialize, Serialize};

/// Process-wide engine settings. Defaults suit production; tests shorten the timings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// How long a claim stays valid without a heartbeat.
    #[serde(with = "humantime_ms")]
    pub lease_ttl: Duration,
    /// How often the process extends the leases of its running jobs (well under `lease_ttl`).
    #[serde(with = "humantime_ms")]
    pub heartbeat_interval: Duration,
    /// Poll fallback: a producer claims at least this often even without a notification.
    #[serde(with = "humantime_ms")]
    pub poll_interval: Duration,
    /// Use LISTEN/NOTIFY for wake-ups (turn off behind poolers that do not support LISTEN).
    pub listen: bool,
    /// Leader lease for the maintenance services.
    #[serde(with = "humantime_ms")]
    pub leader_ttl: Duration,
    /// How often each process looks for expired leases (every process does: a killed leader
    /// must not hold rescues back until its term expires).
    #[serde(with = "humantime_ms")]
    pub rescue_interval: Duration,
    /// Graceful shutdown: how long in-flight jobs may run on before they are handed back.
    #[serde(with = "humantime_ms")]
    pub shutdown_timeout: Duration,
    /// Most acks written by one completer statement.
    pub ack_batch: usize,
    /// Commit claims, acks, heartbeats and maintenance without waiting for the WAL flush.
    ///
    /// Safe for at-least-once: if the Postgres server itself crashes, the last few hundred
    /// milliseconds of these commits may be lost, which only means a job runs again (a lost claim
    /// makes it available, a lost ack leaves it running until the rescuer retries it; a lost
    /// claim's fencing token is never handed out again, see `cowans_fence()`). Enqueues
    /// and handlers' own transactions use the caller's pool and stay fully durable: nothing
    /// accepted is ever lost.
    pub async_commit: bool,
    /// Connections of the engine's own pool (claims, acks, heartbeat, maintenance, LISTEN).
    pub engine_connections: u32,
    /// How long a cancelled (or timed-out) handler may run on after being told to stop before
    /// it is dropped.
    #[serde(with = "humantime_ms")]
    pub cancel_grace: Duration,
    /// Completed and cancelled jobs are deleted this long after they finished (0 = at the next
    /// prune pass).
    #[serde(with = "humantime_ms")]
    pub retain_finished: Duration,
    /// Dead letters (and finished batches) are deleted this long after they died.
    #[serde(with = "humantime_ms")]
    pub retain_dead: Duration,
    /// How often the leader prunes, refreshes batch progress and fires due cron ticks.
    #[serde(with = "humantime_ms")]
    pub maintenance_interval: Duration,
    /// How often the leader refreshes the queue summary, and every process its queue gauges.
    #[serde(with = "humantime_ms")]
    pub stats_interval: Duration,
    /// The leader rebuilds a hot index of the job table (claim, leases, scheduled) with
    /// `REINDEX CONCURRENTLY` once it is at least this large and eight times what its entries
    /// need, while no transaction holds an old snapshot (0 = never, the default: a busy queue's
    /// index regrows to its churn between vacuums within seconds, and a rebuild reads the whole
    /// table; worth it to return the space a one-off backlog or a long-held snapshot left).
    pub index_rebuild_min_bytes: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            lease_ttl: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(5),
            poll_interval: Duration::from_secs(1),
            listen: true,
            leader_ttl: Duration::from_secs(15),
            rescue_interval: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(30),
            ack_batch: 2000,
            async_commit: true,
            engine_connections: 8,
            cancel_grace: Duration::from_secs(10),
            retain_finished: Duration::from_secs(3600),
            retain_dead: Duration::from_secs(7 * 24 * 3600),
            maintenance_interval: Duration::from_secs(1),
            stats_interval: Duration::from_secs(5),
            index_rebuild_min_bytes: 0,
        }
    }
}

impl EngineConfig {
    /// Checks the settings; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.heartbeat_interval.is_zero() || self.heartbeat_interval * 2 > self.lease_ttl {
            return Err(format!(
                "heartbeat_interval ({:?}) must be non-zero and at most half of lease_ttl ({:?})",
                self.heartbeat_interval, self.lease_ttl
            ));
        }
        if self.poll_interval.is_zero() {
            return Err("poll_interval must be non-zero".to_owned());
        }
        if self.rescue_interval.is_zero() || self.leader_ttl.is_zero() {
            return Err("rescue_interval and leader_ttl must be non-zero".to_owned());
        }
        if self.engine_connections < 4 {
            return Err("engine_connections must be at least 4".to_owned());
        }
        if self.maintenance_interval.is_zero() || self.stats_interval.is_zero() {
            return Err("maintenance_interval and stats_interval must be non-zero".to_owned());
        }
        if self.ack_batch == 0 {
            return Err("ack_batch must be at least 1".to_owned());
        }
        Ok(())
    }
}

/// One consumed queue.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub queue: QueueName,
    /// Most jobs of this queue running at once in this process.
    pub concurrency: usize,
    /// Most jobs one claim statement takes (the claim never exceeds free slots either).
    pub claim_batch: usize,
    /// Most jobs claimed ahead of free slots, buffered until a slot frees up. The producer
    /// claims ahead only what its handlers finish in two claim round trips (so slow jobs are
    /// never hoarded), and nothing under a fleet-wide limit; 0 turns it off.
    pub prefetch: usize,
    /// The queue's retry policy...
    pub retry: RetryPolicy,
    /// ...unless the job's kind has its own.
    pub retry_by_kind: Arc<HashMap<String, RetryPolicy>>,
    /// An attempt running longer than this fails (and is retried per its policy); `None` = no
    /// limit...
    pub timeout: Option<Duration>,
    /// ...unless the job's kind has its own.
    pub timeout_by_kind: Arc<HashMap<String, Duration>>,
    /// Move this process's concurrency for the queue with its backlog and wait time.
    pub autoscale: Option<Autoscale>,
}

/// In-process autoscaling bounds: concurrency stays within `min..=max`; see
/// [`crate::autoscale::decide`] for the rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Autoscale {
    pub min: usize,
    pub max: usize,
    /// Queue wait above which the queue is under-served (scale up while jobs wait).
    #[serde(with = "humantime_ms", default = "default_target_wait")]
    pub target_wait: Duration,
    /// How often the decision is taken.
    #[serde(with = "humantime_ms", default = "default_scale_interval")]
    pub interval: Duration,
}

fn default_target_wait() -> Duration {
    Duration::from_millis(500)
}

fn default_scale_interval() -> Duration {
    Duration::from_secs(1)
}

impl Autoscale {
    pub fn validate(&self) -> Result<(), String> {
        if self.min == 0 || self.min > self.max {
            return Err(format!(
                "autoscale.min ({}) must be at least 1 and at most autoscale.max ({})",
                self.min, self.max
            ));
        }
        if self.interval.is_zero() {
            return Err("autoscale.interval must be non-zero".to_owned());
        }
        Ok(())
    }
}

impl QueueConfig {
    pub fn new(queue: QueueName) -> Self {
        Self {
            queue,
            concurrency: 10,
            claim_batch: 500,
            prefetch: 400,
            retry: RetryPolicy::default(),
            retry_by_kind: Arc::default(),
            timeout: Some(Duration::from_secs(15 * 60)),
            timeout_by_kind: Arc::default(),
            autoscale: None,
        }
    }

    /// `None`: no timeout.
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn timeout_for(mut self, kind: &str, timeout: Duration) -> Self {
        Arc::make_mut(&mut self.timeout_by_kind).insert(kind.to_owned(), timeout);
        self
    }

    pub fn autoscale(mut self, autoscale: Autoscale) -> Self {
        self.concurrency = autoscale.min;
        self.autoscale = Some(autoscale);
        self
    }

    pub(crate) fn timeout_of(&self, kind: &str) -> Option<Duration> {
        self.timeout_by_kind
            .get(kind)
            .copied()
            .or(self.timeout)
            .filter(|d| !d.is_zero())
    }

    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// See [`QueueConfig::prefetch`].
    pub fn prefetch(mut self, prefetch: usize) -> Self {
        self.prefetch = prefetch;
        self
    }

    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// A retry policy for one kind of job on this queue.
    pub fn retry_for(mut self, kind: &str, retry: RetryPolicy) -> Self {
        Arc::make_mut(&mut self.retry_by_kind).insert(kind.to_owned(), retry);
        self
    }

    pub(crate) fn policy_for(&self, kind: &str) -> &RetryPolicy {
        self.retry_by_kind.get(kind).unwrap_or(&self.retry)
    }
}

pub(crate) mod humantime_ms {
    //! Durations as whole milliseconds in settings files and env (`COWANS__ENGINE__LEASE_TTL=30000`).
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}
