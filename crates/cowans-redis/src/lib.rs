//! The Redis backend of the Cowans job queue: [`RedisDriver`] implements
//! [`cowans_core::queue::Driver`] with one Lua script per state transition, so every transition
//! of a queue's jobs is atomic on the server, fenced by the claim's lease like the Postgres
//! driver's statements.
//!
//! # Key layout
//!
//! Every key of one queue shares the hash tag `{<prefix>:q:<queue>}` (written `Q` below), so
//! each per-queue script touches one cluster slot:
//!
//! | key | type | what |
//! | --- | --- | --- |
//! | `Q:job:<id>` | hash | the job: queue, kind, args (JSON text), state, priority, attempt, max_attempts, run_at, created_at, attempted_at, finalized_at (ms since the epoch), lease, lease_expires_at, worker, unique_key, unique_mask, rate_key, errors (JSON array of `{attempt, at (ms), worker, error}`) |
//! | `Q:prios` | zset | the priorities that have available jobs (score = priority) |
//! | `Q:ready:<priority>` | zset | available jobs of one priority, score = run_at ms, member = the id zero-padded to 20 digits (equal run_at: lower id first) |
//! | `Q:sched` | zset | scheduled jobs by run_at ms |
//! | `Q:running` | zset | running jobs by lease expiry ms |
//! | `Q:done:completed`, `Q:done:cancelled`, `Q:done:dead` | zset | finished jobs by finalized time ms (retention, counts) |
//! | `Q:unique` | hash | unique key → the job id holding it (it holds while the job's state is in its stored mask) |
//! | `Q:control` | hash | `paused` (`1`/`0`) |
//! | `Q:lease` | string | the queue's lease counter (fencing tokens) |
//!
//! Global keys share the tag `{<prefix>}`: `{<prefix>}:ids` (the job id counter),
//! `{<prefix>}:jobq` (hash id → queue), `{<prefix>}:queues` (set of known queues),
//! `{<prefix>}:workers` (hash id → worker info JSON), `{<prefix>}:workers:seen` (zset of last
//! heartbeat ms), `{<prefix>}:leader:<role>` (the holder, `SET NX PX`) and
//! `{<prefix>}:leader:<role>:term` (hash: term, last holder). Wake-ups are published on the
//! channel `<prefix>:wakeup`.
//!
//! All times (run_at, lease expiry, finalized, worker last seen) come from the server's clock
//! (`TIME` inside the scripts), never the client's.
//!
//! # Durability
//!
//! The driver refuses, at [`RedisDriver::connect`], a server whose `maxmemory-policy` may evict
//! keys (anything but `noeviction`): an evicted job would be lost silently. What survives a crash
//! depends on the server's persistence, which the driver cannot fix:
//!
//! - `appendonly yes` with `appendfsync always`: an acknowledged enqueue (or ack) survives a
//!   crash of the server or of its machine;
//! - `appendfsync everysec` (Redis' default): up to about one second of acknowledged writes can
//!   be lost when the server or machine crashes;
//! - `appendfsync no`: up to the operating system's flush interval (typically 30 s on Linux) can
//!   be lost;
//! - without AOF (RDB snapshots only) a restart loses everything written since the last
//!   snapshot.
//!
//! Replication is asynchronous: a failover to a replica can lose the writes it had not received.
//!
//! # Differences from the Postgres driver
//!
//! - Enqueue is atomic per queue: a call with jobs of several queues runs one script per queue
//!   (all or none within each), so a failure between two of them leaves the earlier queues'
//!   jobs stored.
//! - Batches (`NewJob::batch_id`) are not stored; enqueue-in-transaction does not exist.
//! - [`Driver::queue_control`] reports `paused` only; concurrency and rate limits are `None`.
//! - Stats are computed live, so [`Driver::refresh_queue_stats`] does nothing.
//! - The claim cursor (`after`) is ignored.

mod scripts;
mod value;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cowans_core::{
    AttemptError, JobId, JobState, QueueName, Wakeup,
    queue::{
        ClaimCursor, ClaimedJob, Driver, Enqueued, Failed, JobView, LEASE_EXPIRED, LeaderTerm,
        LeaseRef, NewJob, Promotion, Pruned, QueueControl, QueueError, QueueResult, QueueStats,
        Rescued, Retention, Settled, WakeupSink, WorkerInfo,
    },
};
use futures::StreamExt;
use redis::{
    Script, Value,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use value::{at, bad, int, items, map_err, narrow, opt_int, opt_text, text, time};

/// Ids whose queue is remembered from claims at most; past it the cache starts over.
const CACHE_LIMIT: usize = 100_000;

/// The Redis queue backend. Cheap to clone (a connection manager and a shared cache).
#[derive(Clone)]
pub struct RedisDriver {
    conn: ConnectionManager,
    client: redis::Client,
    prefix: String,
    /// The queue of each job this process claimed, so acks need no lookup.
    queues: Arc<Mutex<HashMap<i64, String>>>,
}

impl std::fmt::Debug for RedisDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisDriver")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// A worker's registration as stored.
#[derive(Serialize, Deserialize)]
struct WorkerRecord {
    id: Uuid,
    hostname: String,
    pid: u32,
    queues: Vec<String>,
    concurrency: u32,
}

/// One entry of a job's error history as the scripts write it.
#[derive(Deserialize)]
struct StoredError {
    attempt: i32,
    at: i64,
    #[serde(default)]
    worker: Option<String>,
    error: String,
}

/// One queue's live summary, as the stats script returns it.
struct Summary {
    now: DateTime<Utc>,
    counts: [i64; 6],
    oldest_available: Option<DateTime<Utc>>,
    completed_last_minute: i64,
    paused: bool,
}

fn queue_name(name: &str) -> QueueResult<QueueName> {
    QueueName::new(name).map_err(|e| bad(format!("stored queue name {name:?}: {e}")))
}

fn millis(d: Duration) -> String {
    // Capped at ten years, like the Postgres driver's delays.
    d.as_millis().min(315_360_000_000).to_string()
}

fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl RedisDriver {
    /// Connects to `url` (`redis://host:port/db`); `prefix` namespaces every key and the wake-up
    /// channel. Refuses a server whose `maxmemory-policy` evicts keys; a server where `CONFIG`
    /// is disabled is accepted with a warning.
    pub async fn connect(url: &str, prefix: &str) -> QueueResult<RedisDriver> {
        if prefix.is_empty() || prefix.contains(['{', '}']) {
            return Err(QueueError::invalid(
                "redis.prefix",
                "must be non-empty and contain no braces (they delimit cluster hash tags)",
            ));
        }
        let client = redis::Client::open(url)
            .map_err(|e| QueueError::invalid("redis.url", e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(30)))
            .set_number_of_retries(2);
        let mut conn = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(map_err)?;
        check_eviction(&mut conn).await?;
        Ok(RedisDriver {
            conn,
            client,
            prefix: prefix.to_owned(),
            queues: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Deletes every key of this prefix (for tests); returns how many.
    pub async fn flush_prefix(&self) -> QueueResult<u64> {
        let p = glob_escape(&self.prefix);
        let mut conn = self.conn.clone();
        let mut deleted = 0u64;
        for pattern in [format!("{{{p}}}:*"), format!("{{{p}:q:*")] {
            let mut cursor = 0u64;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn)
                    .await
                    .map_err(map_err)?;
                if !keys.is_empty() {
                    let n: u64 = redis::cmd("DEL")
                        .arg(&keys)
                        .query_async(&mut conn)
                        .await
                        .map_err(map_err)?;
                    deleted += n;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        if let Ok(mut cache) = self.queues.lock() {
            cache.clear();
        }
        Ok(deleted)
    }

    /// The wake-up channel.
    pub fn channel(&self) -> String {
        format!("{}:wakeup", self.prefix)
    }

    fn global(&self) -> String {
        format!("{{{}}}", self.prefix)
    }

    fn qkey(&self, queue: &str) -> String {
        format!("{{{}:q:{queue}}}", self.prefix)
    }

    async fn run(&self, script: &Script, base: &str, args: &[String]) -> QueueResult<Value> {
        let mut inv = script.prepare_invoke();
        inv.key(base);
        for a in args {
            inv.arg(a);
        }
        let mut conn = self.conn.clone();
        inv.invoke_async(&mut conn).await.map_err(map_err)
    }

    async fn known_queues(&self) -> QueueResult<Vec<String>> {
        let mut conn = self.conn.clone();
        let mut queues: Vec<String> = redis::cmd("SMEMBERS")
            .arg(format!("{}:queues", self.global()))
            .query_async(&mut conn)
            .await
            .map_err(map_err)?;
        queues.sort();
        Ok(queues)
    }

    fn remember(&self, queue: &str, ids: impl Iterator<Item = i64>) {
        if let Ok(mut cache) = self.queues.lock() {
            if cache.len() > CACHE_LIMIT {
                cache.clear();
            }
            for id in ids {
                cache.insert(id, queue.to_owned());
            }
        }
    }

    fn forget(&self, ids: impl Iterator<Item = i64>) {
        if let Ok(mut cache) = self.queues.lock() {
            for id in ids {
                cache.remove(&id);
            }
        }
    }

    /// The queue of each id: from the claim cache, else the global id → queue hash. Ids of no
    /// known job are left out.
    async fn locate(&self, ids: &[i64]) -> QueueResult<HashMap<i64, String>> {
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        if let Ok(cache) = self.queues.lock() {
            for id in ids {
                match cache.get(id) {
                    Some(q) => {
                        found.insert(*id, q.clone());
                    }
                    None => missing.push(*id),
                }
            }
        } else {
            missing.extend_from_slice(ids);
        }
        if !missing.is_empty() {
            let mut conn = self.conn.clone();
            let queues: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(format!("{}:jobq", self.global()))
                .arg(&missing)
                .query_async(&mut conn)
                .await
                .map_err(map_err)?;
            for (id, q) in missing.into_iter().zip(queues) {
                if let Some(q) = q {
                    found.insert(id, q);
                }
            }
        }
        Ok(found)
    }

    /// `items` grouped by their job's queue (jobs of no known queue dropped).
    async fn by_queue<T>(
        &self,
        items: impl IntoIterator<Item = (i64, T)>,
    ) -> QueueResult<BTreeMap<String, Vec<T>>> {
        let items: Vec<(i64, T)> = items.into_iter().collect();
        let ids: Vec<i64> = items.iter().map(|(id, _)| *id).collect();
        let located = self.locate(&ids).await?;
        let mut groups: BTreeMap<String, Vec<T>> = BTreeMap::new();
        for (id, item) in items {
            if let Some(q) = located.get(&id) {
                groups.entry(q.clone()).or_default().push(item);
            }
        }
        Ok(groups)
    }

    async fn summary(&self, queue: &str) -> QueueResult<Summary> {
        let reply = self.run(&scripts::STATS, &self.qkey(queue), &[]).await?;
        let a = items(&reply)?;
        let mut counts = [0i64; 6];
        for (i, c) in counts.iter_mut().enumerate() {
            *c = int(at(a, i + 1, "count")?, "count")?;
        }
        Ok(Summary {
            now: time(int(at(a, 0, "now")?, "now")?, "now")?,
            counts,
            oldest_available: opt_int(at(a, 7, "oldest")?, "oldest")?
                .map(|ms| time(ms, "oldest available"))
                .transpose()?,
            completed_last_minute: int(at(a, 8, "completed")?, "completed last minute")?,
            paused: int(at(a, 9, "paused")?, "paused")? == 1,
        })
    }

    async fn upsert_worker(&self, info: &WorkerInfo) -> QueueResult<()> {
        let record = WorkerRecord {
            id: info.id,
            hostname: info.hostname.clone(),
            pid: info.pid,
            queues: info.queues.clone(),
            concurrency: info.concurrency,
        };
        let json = serde_json::to_string(&record).map_err(|e| bad(e.to_string()))?;
        self.run(
            &scripts::WORKER_SEEN,
            &self.global(),
            &[info.id.to_string(), json],
        )
        .await?;
        Ok(())
    }

    /// Runs an ack script (`args` first, then the per-job fields) once per queue; returns the
    /// ids it reported.
    async fn ack_ids(
        &self,
        script: &Script,
        fields: Vec<(i64, Vec<String>)>,
        head: impl Fn(&QueueName) -> Vec<String>,
    ) -> QueueResult<Vec<JobId>> {
        let groups = self.by_queue(fields).await?;
        let mut done = Vec::new();
        for (queue, rows) in groups {
            let mut args = head(&queue_name(&queue)?);
            args.extend(rows.into_iter().flatten());
            let reply = self.run(script, &self.qkey(&queue), &args).await?;
            for v in items(&reply)? {
                done.push(JobId(int(v, "job id")?));
            }
        }
        Ok(done)
    }
}

async fn check_eviction(conn: &mut ConnectionManager) -> QueueResult<()> {
    let reply: Result<Value, redis::RedisError> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .query_async(conn)
        .await;
    let reply = match reply {
        Ok(v) => v,
        Err(e) => {
            let err = map_err(e);
            if matches!(err, QueueError::Unavailable { .. }) {
                return Err(err);
            }
            tracing::warn!(error = %err, "cannot read maxmemory-policy (CONFIG disabled?): make sure it is noeviction, or jobs may be evicted");
            return Ok(());
        }
    };
    let policy = match &reply {
        Value::Map(pairs) => pairs.first().map(|(_, v)| text(v, "policy")).transpose()?,
        other => items(other)?
            .get(1)
            .map(|v| text(v, "policy"))
            .transpose()?,
    };
    match policy.as_deref() {
        Some("noeviction") => Ok(()),
        Some(p) => Err(QueueError::invalid(
            "redis.maxmemory-policy",
            format!(
                "is {p}; it must be noeviction, or the server may evict jobs when memory runs short"
            ),
        )),
        None => {
            tracing::warn!(
                "the server did not report maxmemory-policy: make sure it is noeviction"
            );
            Ok(())
        }
    }
}

fn claimed(queue: &str, row: &Value) -> QueueResult<ClaimedJob> {
    let f = items(row)?;
    let id = int(at(f, 0, "id")?, "id")?;
    Ok(ClaimedJob {
        id,
        queue: queue.to_owned(),
        kind: text(at(f, 1, "kind")?, "kind")?,
        args: text(at(f, 2, "args")?, "args")?,
        priority: narrow(int(at(f, 3, "priority")?, "priority")?, "priority")?,
        attempt: narrow(int(at(f, 4, "attempt")?, "attempt")?, "attempt")?,
        max_attempts: narrow(
            int(at(f, 5, "max_attempts")?, "max_attempts")?,
            "max_attempts",
        )?,
        lease: int(at(f, 6, "lease")?, "lease")?,
        run_at: time(int(at(f, 7, "run_at")?, "run_at")?, "run_at")?,
        created_at: time(int(at(f, 8, "created_at")?, "created_at")?, "created_at")?,
        attempted_at: time(
            int(at(f, 9, "attempted_at")?, "attempted_at")?,
            "attempted_at",
        )?,
        rate_key: match f.get(10) {
            Some(v) => opt_text(v)?,
            None => None,
        },
    })
}

fn job_view(id: JobId, h: &HashMap<String, String>) -> QueueResult<JobView> {
    let field = |name: &str| {
        h.get(name)
            .ok_or_else(|| bad(format!("job {id} has no {name}")))
    };
    let num = |name: &str| -> QueueResult<i64> {
        let t = field(name)?;
        t.parse::<i64>()
            .map_err(|_| bad(format!("job {id}: {name} is not a number: {t:?}")))
    };
    let state = field("state")?;
    let errors: Vec<StoredError> = match h.get("errors") {
        Some(t) if !t.is_empty() => serde_json::from_str(t)
            .map_err(|e| bad(format!("job {id}: unreadable error history: {e}")))?,
        _ => Vec::new(),
    };
    Ok(JobView {
        id,
        queue: field("queue")?.clone(),
        kind: field("kind")?.clone(),
        args: serde_json::from_str(field("args")?)
            .map_err(|e| bad(format!("job {id}: unreadable args: {e}")))?,
        state: JobState::parse(state)
            .ok_or_else(|| bad(format!("job {id}: unknown state {state:?}")))?,
        priority: narrow(num("priority")?, "priority")?,
        attempt: narrow(num("attempt")?, "attempt")?,
        max_attempts: narrow(num("max_attempts")?, "max_attempts")?,
        run_at: time(num("run_at")?, "run_at")?,
        errors: errors
            .into_iter()
            .map(|e| {
                Ok(AttemptError {
                    attempt: e.attempt,
                    at: time(e.at, "error time")?,
                    worker: e.worker,
                    error: e.error,
                })
            })
            .collect::<QueueResult<_>>()?,
    })
}

#[async_trait]
impl Driver for RedisDriver {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn enqueue(&self, jobs: &[NewJob]) -> QueueResult<Vec<Enqueued>> {
        for (i, job) in jobs.iter().enumerate() {
            job.validate(Some(i))?;
        }
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut payloads = Vec::with_capacity(jobs.len());
        for (i, job) in jobs.iter().enumerate() {
            payloads.push(
                serde_json::to_string(&job.args)
                    .map_err(|e| QueueError::invalid(format!("jobs[{i}].args"), e.to_string()))?,
            );
        }
        let names: Vec<String> = jobs.iter().map(|j| j.queue.to_string()).collect();
        let first = int(
            &self.run(&scripts::IDS, &self.global(), &names).await?,
            "first id",
        )?;
        let mut groups: BTreeMap<&QueueName, Vec<usize>> = BTreeMap::new();
        for (i, job) in jobs.iter().enumerate() {
            groups.entry(&job.queue).or_default().push(i);
        }
        let channel = self.channel();
        let mut out: Vec<Option<Enqueued>> = vec![None; jobs.len()];
        for (queue, idx) in groups {
            let top = idx.iter().map(|&i| jobs[i].priority).max().unwrap_or(0);
            let mut args = vec![
                channel.clone(),
                Wakeup::Enqueued {
                    queue: queue.clone(),
                    priority: i32::from(top),
                }
                .encode(),
                Wakeup::Scheduled {
                    queue: queue.clone(),
                }
                .encode(),
                queue.to_string(),
                idx.len().to_string(),
            ];
            for &i in &idx {
                let job = &jobs[i];
                args.extend([
                    (first + i as i64).to_string(),
                    job.kind.clone(),
                    payloads[i].clone(),
                    job.priority.to_string(),
                    job.run_at
                        .map(|t| t.timestamp_millis().to_string())
                        .unwrap_or_default(),
                    job.max_attempts.to_string(),
                    job.unique
                        .as_ref()
                        .map(|u| u.key.clone())
                        .unwrap_or_default(),
                    job.unique
                        .as_ref()
                        .map(|u| u.mask().to_string())
                        .unwrap_or_default(),
                    job.rate_key.clone().unwrap_or_default(),
                ]);
            }
            let reply = self
                .run(&scripts::ENQUEUE, &self.qkey(queue.as_str()), &args)
                .await?;
            let a = items(&reply)?;
            if a.len() != idx.len() * 2 {
                return Err(bad(format!(
                    "enqueue answered {} values for {} jobs",
                    a.len(),
                    idx.len()
                )));
            }
            for (k, &i) in idx.iter().enumerate() {
                out[i] = Some(Enqueued {
                    id: JobId(int(&a[2 * k], "job id")?),
                    duplicate: int(&a[2 * k + 1], "duplicate")? == 1,
                });
            }
        }
        out.into_iter()
            .map(|e| e.ok_or_else(|| bad("a job got no enqueue result")))
            .collect()
    }

    async fn claim(
        &self,
        queue: &QueueName,
        limit: usize,
        worker: Uuid,
        lease_ttl: Duration,
        _after: Option<&ClaimCursor>,
    ) -> QueueResult<Vec<ClaimedJob>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let reply = self
            .run(
                &scripts::CLAIM,
                &self.qkey(queue.as_str()),
                &[limit.to_string(), millis(lease_ttl), worker.to_string()],
            )
            .await?;
        let jobs = items(&reply)?
            .iter()
            .map(|row| claimed(queue.as_str(), row))
            .collect::<QueueResult<Vec<_>>>()?;
        self.remember(queue.as_str(), jobs.iter().map(|j| j.id));
        Ok(jobs)
    }

    async fn complete(&self, refs: &[LeaseRef], delete: bool) -> QueueResult<Vec<JobId>> {
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        let fields = refs
            .iter()
            .map(|r| (r.id.0, vec![r.id.0.to_string(), r.lease.to_string()]))
            .collect::<Vec<_>>();
        let flag = if delete { "1" } else { "0" };
        let mut done = Vec::new();
        let mut dropped = Vec::new();
        for (queue, rows) in self.by_queue(fields).await? {
            let mut args = vec![flag.to_owned()];
            args.extend(rows.into_iter().flatten());
            let reply = self
                .run(&scripts::COMPLETE, &self.qkey(&queue), &args)
                .await?;
            for row in items(&reply)? {
                let f = items(row)?;
                let id = int(at(f, 0, "id")?, "id")?;
                if int(at(f, 1, "dropped")?, "dropped")? == 1 {
                    dropped.push(id);
                }
                done.push(JobId(id));
            }
        }
        if !dropped.is_empty() {
            // The job is gone: its id -> queue entry goes too (best effort; a stale entry only
            // costs a lookup that finds nothing).
            let mut conn = self.conn.clone();
            let cleaned: Result<i64, _> = redis::cmd("HDEL")
                .arg(format!("{}:jobq", self.global()))
                .arg(&dropped)
                .query_async(&mut conn)
                .await;
            if let Err(e) = cleaned {
                tracing::debug!(error = %e, "cannot forget the queue of deleted jobs");
            }
        }
        self.forget(done.iter().map(|id| id.0));
        Ok(done)
    }

    async fn settle_failures(&self, worker: Uuid, failed: &[Failed]) -> QueueResult<Vec<Settled>> {
        if failed.is_empty() {
            return Ok(Vec::new());
        }
        let fields: Vec<(i64, Vec<String>)> = failed
            .iter()
            .map(|f| {
                let state = f.next_state();
                let delay = match (state, f.retry_in) {
                    (JobState::Dead, _) | (_, None) => String::new(),
                    (_, Some(d)) => millis(d),
                };
                (
                    f.lease.id.0,
                    vec![
                        f.lease.id.0.to_string(),
                        f.lease.lease.to_string(),
                        state.as_str().to_owned(),
                        delay,
                        f.attempt.to_string(),
                        f.error.clone(),
                    ],
                )
            })
            .collect();
        let groups = self.by_queue(fields).await?;
        let mut out = Vec::new();
        for (queue, rows) in groups {
            let name = queue_name(&queue)?;
            let mut args = vec![
                worker.to_string(),
                self.channel(),
                Wakeup::Runnable {
                    queue: name.clone(),
                }
                .encode(),
                Wakeup::Scheduled { queue: name }.encode(),
            ];
            args.extend(rows.into_iter().flatten());
            let reply = self
                .run(&scripts::SETTLE, &self.qkey(&queue), &args)
                .await?;
            for row in items(&reply)? {
                let f = items(row)?;
                let state = text(at(f, 1, "state")?, "state")?;
                out.push(Settled {
                    id: JobId(int(at(f, 0, "id")?, "id")?),
                    queue: queue.clone(),
                    state: JobState::parse(&state)
                        .ok_or_else(|| bad(format!("unknown state {state:?}")))?,
                    run_at: time(int(at(f, 2, "run_at")?, "run_at")?, "run_at")?,
                });
            }
        }
        self.forget(out.iter().map(|s| s.id.0));
        Ok(out)
    }

    async fn release(&self, refs: &[LeaseRef]) -> QueueResult<Vec<JobId>> {
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        let fields = refs
            .iter()
            .map(|r| (r.id.0, vec![r.id.0.to_string(), r.lease.to_string()]))
            .collect();
        let channel = self.channel();
        self.ack_ids(&scripts::RELEASE, fields, |q| {
            vec![
                channel.clone(),
                Wakeup::Runnable { queue: q.clone() }.encode(),
            ]
        })
        .await
    }

    async fn defer(&self, jobs: &[(LeaseRef, DateTime<Utc>)]) -> QueueResult<Vec<i64>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let fields = jobs
            .iter()
            .map(|(r, at)| {
                (
                    r.id.0,
                    vec![
                        r.id.0.to_string(),
                        r.lease.to_string(),
                        at.timestamp_millis().to_string(),
                    ],
                )
            })
            .collect();
        let done = self
            .ack_ids(&scripts::DEFER, fields, |_| Vec::new())
            .await?;
        Ok(done.into_iter().map(|id| id.0).collect())
    }

    async fn promote_due(&self, queues: &[QueueName], limit: i64) -> QueueResult<Promotion> {
        let mut left = limit.max(0);
        let mut promoted = 0u64;
        let mut next_due: Option<DateTime<Utc>> = None;
        for queue in queues {
            let reply = self
                .run(
                    &scripts::PROMOTE,
                    &self.qkey(queue.as_str()),
                    &[
                        left.to_string(),
                        self.channel(),
                        Wakeup::Runnable {
                            queue: queue.clone(),
                        }
                        .encode(),
                    ],
                )
                .await?;
            let a = items(&reply)?;
            let n = int(at(a, 0, "promoted")?, "promoted")?;
            left = (left - n).max(0);
            promoted += n.max(0) as u64;
            if let Some(ms) = match a.get(1) {
                Some(v) => opt_int(v, "next due")?,
                None => None,
            } {
                let t = time(ms, "next due")?;
                next_due = Some(next_due.map_or(t, |d| d.min(t)));
            }
        }
        Ok(Promotion { promoted, next_due })
    }

    async fn queue_control(&self, queue: &str) -> QueueResult<QueueControl> {
        let mut conn = self.conn.clone();
        let paused: Option<String> = redis::cmd("HGET")
            .arg(format!("{}:control", self.qkey(queue)))
            .arg("paused")
            .query_async(&mut conn)
            .await
            .map_err(map_err)?;
        Ok(QueueControl {
            paused: paused.as_deref() == Some("1"),
            concurrency_limit: None,
            rate: None,
        })
    }

    async fn set_paused(&self, queue: &QueueName, paused: bool) -> QueueResult<()> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("SADD")
            .arg(format!("{}:queues", self.global()))
            .arg(queue.as_str())
            .query_async(&mut conn)
            .await
            .map_err(map_err)?;
        self.run(
            &scripts::SET_PAUSED,
            &self.qkey(queue.as_str()),
            &[
                if paused { "1" } else { "0" }.to_owned(),
                self.channel(),
                Wakeup::Control {
                    queue: queue.clone(),
                }
                .encode(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn heartbeat(
        &self,
        worker: &WorkerInfo,
        running: &[LeaseRef],
        lease_ttl: Duration,
    ) -> QueueResult<Vec<JobId>> {
        self.upsert_worker(worker).await?;
        if running.is_empty() {
            return Ok(Vec::new());
        }
        let fields = running
            .iter()
            .map(|r| (r.id.0, vec![r.id.0.to_string(), r.lease.to_string()]))
            .collect();
        let ttl = millis(lease_ttl);
        self.ack_ids(&scripts::EXTEND, fields, |_| vec![ttl.clone()])
            .await
    }

    async fn rescue_expired(&self, limit: i64) -> QueueResult<Rescued> {
        let mut out = Rescued::default();
        let mut left = limit.max(0);
        for queue in self.known_queues().await? {
            if left == 0 {
                break;
            }
            let name = queue_name(&queue)?;
            let reply = self
                .run(
                    &scripts::RESCUE,
                    &self.qkey(&queue),
                    &[
                        left.to_string(),
                        LEASE_EXPIRED.to_owned(),
                        self.channel(),
                        Wakeup::Runnable { queue: name }.encode(),
                    ],
                )
                .await?;
            for row in items(&reply)? {
                let f = items(row)?;
                let kind = text(at(f, 0, "kind")?, "kind")?;
                if int(at(f, 1, "dead")?, "dead")? == 1 {
                    out.dead.push((queue.clone(), kind));
                } else {
                    out.retried.push((queue.clone(), kind));
                }
                left -= 1;
            }
        }
        Ok(out)
    }

    async fn register_worker(&self, info: &WorkerInfo) -> QueueResult<()> {
        self.upsert_worker(info).await
    }

    async fn deregister_worker(&self, id: Uuid) -> QueueResult<()> {
        let mut conn = self.conn.clone();
        let g = self.global();
        redis::pipe()
            .atomic()
            .cmd("HDEL")
            .arg(format!("{g}:workers"))
            .arg(id.to_string())
            .ignore()
            .cmd("ZREM")
            .arg(format!("{g}:workers:seen"))
            .arg(id.to_string())
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(map_err)
    }

    async fn forget_stale_workers(&self, older_than: Duration) -> QueueResult<u64> {
        let reply = self
            .run(
                &scripts::WORKERS_FORGET,
                &self.global(),
                &[millis(older_than)],
            )
            .await?;
        Ok(int(&reply, "forgotten")?.max(0) as u64)
    }

    async fn try_lead(
        &self,
        role: &str,
        holder: Uuid,
        ttl: Duration,
    ) -> QueueResult<Option<LeaderTerm>> {
        let reply = self
            .run(
                &scripts::LEAD,
                &self.global(),
                &[
                    role.to_owned(),
                    holder.to_string(),
                    millis(ttl.max(Duration::from_millis(1))),
                ],
            )
            .await?;
        Ok(opt_int(&reply, "term")?.map(LeaderTerm))
    }

    async fn resign_leader(&self, role: &str, holder: Uuid) -> QueueResult<()> {
        self.run(
            &scripts::RESIGN,
            &self.global(),
            &[role.to_owned(), holder.to_string()],
        )
        .await?;
        Ok(())
    }

    async fn prune(&self, retention: Retention, limit: i64) -> QueueResult<Pruned> {
        let mut left_finished = limit.max(0);
        let mut left_dead = limit.max(0);
        let mut pruned = Pruned::default();
        let mut gone: Vec<String> = Vec::new();
        for queue in self.known_queues().await? {
            if left_finished == 0 && left_dead == 0 {
                break;
            }
            let reply = self
                .run(
                    &scripts::PRUNE,
                    &self.qkey(&queue),
                    &[
                        millis(retention.finished),
                        millis(retention.dead),
                        left_finished.to_string(),
                        left_dead.to_string(),
                    ],
                )
                .await?;
            let a = items(&reply)?;
            let finished = int(at(a, 0, "finished")?, "finished")?.max(0);
            let dead = int(at(a, 1, "dead")?, "dead")?.max(0);
            left_finished = (left_finished - finished).max(0);
            left_dead = (left_dead - dead).max(0);
            pruned.finished += finished as u64;
            pruned.dead += dead as u64;
            for v in a.iter().skip(2) {
                gone.push(text(v, "pruned id")?);
            }
        }
        if !gone.is_empty() {
            let mut conn = self.conn.clone();
            let _: i64 = redis::cmd("HDEL")
                .arg(format!("{}:jobq", self.global()))
                .arg(&gone)
                .query_async(&mut conn)
                .await
                .map_err(map_err)?;
        }
        Ok(pruned)
    }

    async fn refresh_queue_stats(&self) -> QueueResult<()> {
        // Stats are computed live from the state indexes: nothing to refresh.
        Ok(())
    }

    async fn queue_stats(
        &self,
        queue: Option<&str>,
        live_within: Duration,
    ) -> QueueResult<Vec<QueueStats>> {
        let known = self.known_queues().await?;
        let queues: Vec<String> = match queue {
            Some(q) => known.into_iter().filter(|k| k == q).collect(),
            None => known,
        };
        if queues.is_empty() {
            return Ok(Vec::new());
        }
        let reply = self
            .run(
                &scripts::WORKERS_LIVE,
                &self.global(),
                &[millis(live_within)],
            )
            .await?;
        let mut workers = Vec::new();
        for v in items(&reply)? {
            let json = text(v, "worker")?;
            match serde_json::from_str::<WorkerRecord>(&json) {
                Ok(w) => workers.push(w),
                Err(e) => tracing::warn!(error = %e, "ignoring an unreadable worker registration"),
            }
        }
        let mut out = Vec::with_capacity(queues.len());
        for queue in queues {
            let s = self.summary(&queue).await?;
            let serving: Vec<&WorkerRecord> = workers
                .iter()
                .filter(|w| w.queues.contains(&queue))
                .collect();
            let [available, scheduled, running, completed, cancelled, dead] = s.counts;
            out.push(QueueStats {
                available,
                scheduled,
                running,
                completed,
                cancelled,
                dead,
                oldest_available_at: s.oldest_available,
                oldest_available_age_secs: s.oldest_available.map_or(0.0, |t| {
                    ((s.now - t).num_milliseconds() as f64 / 1000.0).max(0.0)
                }),
                completed_last_minute: s.completed_last_minute,
                paused: s.paused,
                workers: serving.len() as i64,
                worker_concurrency: serving.iter().map(|w| i64::from(w.concurrency)).sum(),
                refreshed_at: s.now,
                queue,
            });
        }
        Ok(out)
    }

    async fn count_by_state(&self, queue: &str) -> QueueResult<Vec<(JobState, i64)>> {
        let s = self.summary(queue).await?;
        Ok(JobState::ALL
            .into_iter()
            .zip(s.counts)
            .filter(|(_, n)| *n > 0)
            .collect())
    }

    async fn job(&self, id: JobId) -> QueueResult<Option<JobView>> {
        let located = self.locate(&[id.0]).await?;
        let Some(queue) = located.get(&id.0) else {
            return Ok(None);
        };
        let mut conn = self.conn.clone();
        let h: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(format!("{}:job:{}", self.qkey(queue), id.0))
            .query_async(&mut conn)
            .await
            .map_err(map_err)?;
        if h.is_empty() {
            return Ok(None);
        }
        job_view(id, &h).map(Some)
    }

    async fn cancel(&self, id: JobId) -> QueueResult<JobState> {
        let located = self.locate(&[id.0]).await?;
        let Some(queue) = located.get(&id.0) else {
            return Err(QueueError::not_found(format!("job {id}")));
        };
        let reply = self
            .run(
                &scripts::CANCEL,
                &self.qkey(queue),
                &[
                    id.0.to_string(),
                    self.channel(),
                    Wakeup::Cancel { job: id }.encode(),
                ],
            )
            .await?;
        let a = items(&reply)?;
        let outcome = text(at(a, 0, "outcome")?, "outcome")?;
        let state = |i: usize| -> QueueResult<JobState> {
            let s = text(at(a, i, "state")?, "state")?;
            JobState::parse(&s).ok_or_else(|| bad(format!("unknown state {s:?}")))
        };
        match outcome.as_str() {
            "missing" => Err(QueueError::not_found(format!("job {id}"))),
            "final" => Err(QueueError::conflict(format!(
                "job {id} is {} and cannot be cancelled",
                state(1)?
            ))),
            "ok" => {
                self.forget(std::iter::once(id.0));
                state(1)
            }
            other => Err(bad(format!("cancel answered {other:?}"))),
        }
    }

    async fn redrive(&self, ids: &[JobId]) -> QueueResult<Vec<JobId>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let fields = ids
            .iter()
            .map(|id| (id.0, vec![id.0.to_string()]))
            .collect();
        let channel = self.channel();
        let mut moved = self
            .ack_ids(&scripts::REDRIVE, fields, |q| {
                vec![
                    channel.clone(),
                    Wakeup::Runnable { queue: q.clone() }.encode(),
                ]
            })
            .await?;
        moved.sort();
        Ok(moved)
    }

    async fn listen(&self, sink: Arc<dyn WakeupSink>) {
        let channel = self.channel();
        loop {
            let mut pubsub = match self.client.get_async_pubsub().await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot subscribe to wake-ups, retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Err(e) = pubsub.subscribe(&channel).await {
                tracing::warn!(error = %e, "cannot subscribe to wake-ups, retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            // Anything published while we were not subscribed is lost: look now.
            sink.missed();
            let mut messages = pubsub.on_message();
            while let Some(msg) = messages.next().await {
                match msg.get_payload::<String>() {
                    Ok(payload) => match Wakeup::parse(&payload) {
                        Some(w) => sink.wake(w),
                        None => tracing::debug!(payload, "ignoring unknown wake-up"),
                    },
                    Err(e) => tracing::debug!(error = %e, "ignoring unreadable wake-up"),
                }
            }
            tracing::warn!("wake-up subscription lost, reconnecting");
        }
    }
}
