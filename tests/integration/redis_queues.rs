//! Queues stored in Redis next to queues stored in Postgres, in one fleet: chosen per queue in
//! the settings (`[queues.<name>] backend = "redis"`), driven through the real API, worker and
//! `ctl` binaries; and the Redis faults a fleet must ride out (a worker killed mid-drain, the
//! server killed and restarted, connections dropped, a payload that does not decode).

use std::{
    collections::HashSet,
    process::Command,
    sync::{Arc, Mutex},
    time::Duration,
};

use cowans_core::{
    JobId, JobState,
    queue::{Driver, NewJob, REDIS_FIRST_ID},
};
use cowans_redis::RedisDriver;
use cowans_testkit::{redis_server::RedisServer, wait_for};
use cowans_tests::{ApiProcess, FAST_ENGINE, WorkerProcess, queue};

use crate::support::events::sse_until;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The settings that put queue `fast` in Redis under `prefix`, as every process reads them.
fn redis_env(url: &str, prefix: &str) -> Vec<(&'static str, String)> {
    vec![
        ("COWANS__REDIS__URL", url.to_owned()),
        ("COWANS__REDIS__PREFIX", prefix.to_owned()),
        ("COWANS__QUEUES__FAST__BACKEND", "redis".to_owned()),
    ]
}

fn env_refs<'a>(extra: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    FAST_ENGINE
        .iter()
        .copied()
        .chain(extra.iter().map(|(k, v)| (*k, v.as_str())))
        .collect()
}

/// A test's fleet: its database, a Redis key prefix of its own on `url`, a driver there, and
/// the settings (`extra`) that put queue `fast` in Redis, as every process reads them.
struct Fleet {
    db: cowans_testkit::TestDb,
    url: String,
    prefix: String,
    driver: RedisDriver,
    extra: Vec<(&'static str, String)>,
}

impl Fleet {
    async fn on(url: String) -> Fleet {
        let prefix = prefix();
        Fleet {
            db: cowans_tests::demo_db().await,
            driver: connect(&url, &prefix).await,
            extra: redis_env(&url, &prefix),
            url,
            prefix,
        }
    }

    /// A worker on `fast` and `slow` and the API, and an admin client of it.
    async fn serving(&self) -> (WorkerProcess, ApiProcess, Client) {
        let env = self.env();
        let worker = WorkerProcess::spawn(&self.db.url(), "fast,slow", 4, &env);
        let api = ApiProcess::spawn(&self.db.url(), &env);
        let c = Client {
            http: reqwest::Client::new(),
            key: crate::support::api::key(&self.db.pool, "admin").await,
            base: api.base.clone(),
        };
        (worker, api, c)
    }

    /// The environment of the fleet's processes (fast engine timings and `extra`).
    fn env(&self) -> Vec<(&str, &str)> {
        env_refs(&self.extra)
    }
}

fn prefix() -> String {
    format!("cowans-it-{}", uuid::Uuid::new_v4().simple())
}

async fn connect(url: &str, prefix: &str) -> RedisDriver {
    RedisDriver::connect(url, prefix).await.unwrap_or_else(|e| {
        panic!("cannot use Redis at {url} ({e}): start it (./ops/dev-services.sh) or set COWANS_TEST_REDIS_URL")
    })
}

/// The job ids of a submit's or a batch's `results`.
fn result_ids(body: &Value) -> Vec<i64> {
    body["results"]
        .as_array()
        .unwrap_or_else(|| panic!("results: {body}"))
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}

async fn state(driver: &RedisDriver, id: JobId) -> Option<JobState> {
    driver.job(id).await.ok().flatten().map(|j| j.state)
}

struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Client {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let text = res.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn job_state(&self, id: i64) -> String {
        let (s, body) = self
            .call(reqwest::Method::GET, &format!("/api/v1/jobs/{id}"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        body["state"].as_str().expect("state").to_owned()
    }

    async fn submit(&self, body: Value) -> i64 {
        let (s, b) = self
            .call(reqwest::Method::POST, "/api/v1/jobs", Some(body))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        b["id"].as_i64().expect("id")
    }

    /// Re-drives `fast`'s dead letters as `body` says, expecting `dead` among them, and waits
    /// until it has run again (and failed again: `errors` failed attempts in its history).
    async fn redrive_and_wait(&self, dead: i64, body: Value, errors: usize) {
        let (s, b) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/queues/fast/dead/redrive",
                Some(body),
            )
            .await;
        assert_eq!(
            (s, b["redriven"].as_u64()),
            (StatusCode::OK, Some(1)),
            "{b}"
        );
        wait_for(
            "the re-driven job ran again",
            Duration::from_secs(30),
            || async {
                let (_, j) = self
                    .call(reqwest::Method::GET, &format!("/api/v1/jobs/{dead}"), None)
                    .await;
                (j["state"] == "dead" && j["errors"].as_array().map(Vec::len) == Some(errors))
                    .then_some(())
            },
        )
        .await;
    }

    /// Batch `id` once it has finished (as `GET /batches/{id}` shows it).
    async fn finished_batch(&self, id: i64) -> Value {
        wait_for(
            &format!("batch {id} finished"),
            Duration::from_secs(60),
            || async {
                let (_, b) = self
                    .call(reqwest::Method::GET, &format!("/api/v1/batches/{id}"), None)
                    .await;
                b["finished_at"].is_string().then_some(b)
            },
        )
        .await
    }

    async fn wait_state(&self, id: i64, want: &str) {
        wait_for(
            &format!("job {id} {want}"),
            Duration::from_secs(30),
            || async { (self.job_state(id).await == want).then_some(()) },
        )
        .await;
    }
}

#[tokio::test]
async fn a_queue_set_to_redis_runs_through_the_api_workers_and_ctl_beside_a_postgres_queue() {
    let f = Fleet::on(cowans_testkit::redis_server::shared_url()).await;
    let (db, driver) = (&f.db, &f.driver);
    let (_worker, _api, c) = f.serving().await;

    // Each queue's jobs land in its backend (the id says which) and run.
    let on_redis = c
        .submit(json!({"queue": "fast", "kind": "demo.sleep", "args": {"ms": 10}}))
        .await;
    let on_pg = c
        .submit(json!({"queue": "slow", "kind": "demo.sleep", "args": {"ms": 10}}))
        .await;
    assert!(on_redis >= REDIS_FIRST_ID, "{on_redis}");
    assert!(on_pg < REDIS_FIRST_ID, "{on_pg}");
    c.wait_state(on_redis, "completed").await;
    c.wait_state(on_pg, "completed").await;
    assert_eq!(
        state(driver, JobId(on_redis)).await,
        Some(JobState::Completed),
        "the job lives in Redis"
    );
    let in_pg: i64 = sqlx::query_scalar("SELECT count(*) FROM cowans_jobs WHERE queue = 'fast'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(in_pg, 0, "nothing of the Redis queue is in Postgres");

    // Bulk submits spanning both backends: every job lands where its queue lives.
    let (s, b) = c
        .call(
            reqwest::Method::POST,
            "/api/v1/jobs/bulk",
            Some(json!([
                {"queue": "fast", "kind": "demo.noop", "args": {}},
                {"queue": "slow", "kind": "demo.noop", "args": {}},
                {"queue": "fast", "kind": "demo.noop", "args": {}},
            ])),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let ids = result_ids(&b);
    assert!(ids[0] >= REDIS_FIRST_ID && ids[1] < REDIS_FIRST_ID && ids[2] >= REDIS_FIRST_ID);
    for id in &ids {
        c.wait_state(*id, "completed").await;
    }

    // Pause holds the Redis queue's jobs; resume lets them run.
    let (s, b) = c
        .call(reqwest::Method::POST, "/api/v1/queues/fast/pause", None)
        .await;
    assert!(s.is_success(), "{s} {b}");
    let held = c
        .submit(json!({"queue": "fast", "kind": "demo.noop", "args": {}}))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await; // five poll intervals
    assert_eq!(c.job_state(held).await, "available");
    let (s, b) = c
        .call(reqwest::Method::POST, "/api/v1/queues/fast/resume", None)
        .await;
    assert!(s.is_success(), "{s} {b}");
    c.wait_state(held, "completed").await;

    // Cancel a job waiting for its time.
    let later = c
        .submit(json!({"queue": "fast", "kind": "demo.noop", "args": {},
            "run_at": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339()}))
        .await;
    assert_eq!(c.job_state(later).await, "scheduled");
    let (s, b) = c
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/jobs/{later}/cancel"),
            None,
        )
        .await;
    assert!(s.is_success(), "{s} {b}");
    assert_eq!(c.job_state(later).await, "cancelled");
    // ... and run it after all: a retried cancelled job runs at once.
    let (s, b) = c
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/jobs/{later}/retry"),
            None,
        )
        .await;
    assert!(s.is_success(), "{s} {b}");
    c.wait_state(later, "completed").await;

    // A dead letter, re-driven by id, runs again from a fresh attempt count (and fails again:
    // its first attempt fails), its error history kept.
    let dead = c
        .submit(
            json!({"queue": "fast", "kind": "demo.fail", "max_attempts": 1,
            "args": {"times": 1}}),
        )
        .await;
    c.wait_state(dead, "dead").await;
    c.redrive_and_wait(dead, json!({"ids": [dead]}), 2).await;
    // Re-drive by filter: every dead letter of the kind.
    c.redrive_and_wait(dead, json!({"all": true, "kind": "demo.fail"}), 3)
        .await;

    // The queue summary counts the Redis queue with the Postgres one.
    let (s, b) = c.call(reqwest::Method::GET, "/api/v1/queues", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let listed = b["queues"]
        .as_array()
        .unwrap_or_else(|| panic!("queues: {b}"));
    let fast = listed
        .iter()
        .find(|q| q["queue"] == "fast")
        .unwrap_or_else(|| panic!("fast is listed: {b}"));
    assert_eq!(fast["counts"]["completed"], 5, "{fast}");
    assert_eq!(
        fast["counts"]["cancelled"].as_i64().unwrap_or(0),
        0,
        "{fast}"
    );
    assert_eq!(fast["counts"]["dead"], 1, "{fast}");
    assert!(listed.iter().any(|q| q["queue"] == "slow"), "{b}");

    // Listings page through the Redis queue like a Postgres one.
    let (s, b) = c
        .call(
            reqwest::Method::GET,
            "/api/v1/jobs?queue=fast&state=completed&limit=3",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let first: Vec<i64> = b["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    assert_eq!(first.len(), 3, "{b}");
    let next = b["next_after"].as_i64().expect("a next page");
    let (_, b) = c
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/jobs?queue=fast&state=completed&after={next}"),
            None,
        )
        .await;
    let rest: Vec<i64> = b["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    let mut all = first.clone();
    all.extend(&rest);
    assert_eq!(all.len(), 5, "{all:?}");
    assert!(all.windows(2).all(|w| w[0] < w[1]), "id order: {all:?}");
    let (s, b) = c
        .call(reqwest::Method::GET, "/api/v1/queues/fast/dead", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(
        b.to_string().contains(&format!("\"id\":{dead}")),
        "the dead letter is listed: {b}"
    );

    // The console's purge confirmation counts them on Redis (of a kind, too).
    let (http, cookie) = crate::support::api::console_session(&c.base, &c.key).await;
    for kind in ["", "demo.fail"] {
        let path = format!("/console/dead/purge?queue=fast&kind={kind}");
        let confirm = crate::support::api::console_page(&http, &c.base, &cookie, &path).await;
        assert!(
            confirm.contains("Delete <strong>1</strong> dead letters"),
            "{confirm}"
        );
    }
    let path = "/console/dead/purge?queue=fast&kind=demo.noop";
    let none = crate::support::api::console_page(&http, &c.base, &cookie, path).await;
    assert!(
        none.contains("Delete <strong>0</strong> dead letters"),
        "{none}"
    );

    // Purge takes exactly the expected dead letters, or none.
    let (s, b) = c
        .call(
            reqwest::Method::POST,
            "/api/v1/queues/fast/dead/purge",
            Some(json!({"expected": 5})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    let (s, b) = c
        .call(
            reqwest::Method::POST,
            "/api/v1/queues/fast/dead/purge",
            Some(json!({"expected": 1})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, _) = c
        .call(reqwest::Method::GET, &format!("/api/v1/jobs/{dead}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Every action is audited, whichever backend it touched.
    let (_, audit) = c
        .call(reqwest::Method::GET, "/api/v1/audit?limit=100", None)
        .await;
    let actions: Vec<(String, String)> = audit["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("audit entries: {audit}"))
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default().to_owned(),
                e["target"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for want in [
        ("job.submit", format!("job:{on_redis}")),
        ("queue.pause", "queue:fast".to_owned()),
        ("job.cancel", format!("job:{later}")),
        ("dead.redrive", "queue:fast".to_owned()),
        ("dead.purge", "queue:fast".to_owned()),
    ] {
        assert!(
            actions
                .iter()
                .any(|(a, t)| (a.as_str(), t) == (want.0, &want.1)),
            "{want:?} audited: {actions:?}"
        );
    }

    // `ctl queues` shows the Redis queue too.
    let mut ctl = Command::new(cowans_tests::worker_binary());
    ctl.args(["ctl", "queues"])
        .env("COWANS__DATABASE__URL", db.url())
        .env("COWANS__LOG__FILTER", "warn")
        .env_remove("DATABASE_URL");
    for (k, v) in &f.extra {
        ctl.env(k, v);
    }
    let out = ctl.output().expect("run ctl queues");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{shown}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(shown.lines().any(|l| l.contains("fast")), "{shown}");
    driver.flush_prefix().await.unwrap();
}

#[tokio::test]
async fn a_batch_across_redis_and_postgres_queues_finishes_once_with_its_callback_and_events() {
    let f = Fleet::on(cowans_testkit::redis_server::shared_url()).await;
    let driver = &f.driver;
    let (_worker, _api, c) = f.serving().await;
    let mut events = c
        .http
        .get(format!("{}/api/v1/events", c.base))
        .bearer_auth(&c.key)
        .send()
        .await
        .unwrap();
    let noop = |q: &str| json!({"queue": q, "kind": "demo.noop", "args": {}});
    let (s, b) = c
        .call(
            reqwest::Method::POST,
            "/api/v1/batches",
            Some(json!({
                "description": "both backends",
                "jobs": [noop("fast"), noop("slow"), noop("fast"), noop("slow"), noop("fast"),
                    {"queue": "fast", "kind": "demo.fail", "max_attempts": 1, "args": {"times": 1}}],
                "callback": {"queue": "fast", "kind": "demo.batch_done", "args": {"tag": "t"}}
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let batch = b["id"].as_i64().unwrap();
    let ids = result_ids(&b);
    assert!(
        ids[0] >= REDIS_FIRST_ID && ids[1] < REDIS_FIRST_ID,
        "{ids:?}"
    );

    // The batch finishes, counted on both backends, and its callback (on Redis) runs once.
    let done = c.finished_batch(batch).await;
    assert_eq!(done["total"], 6, "{done}");
    assert_eq!(done["counts"]["completed"], 5, "{done}");
    assert_eq!(done["counts"]["dead"], 1, "{done}");
    // A Redis callback is stored and recorded right after the batch is marked finished.
    let cb = wait_for(
        "the callback job recorded",
        Duration::from_secs(30),
        || async {
            let (_, b) = c
                .call(
                    reqwest::Method::GET,
                    &format!("/api/v1/batches/{batch}"),
                    None,
                )
                .await;
            b["callback_job_id"].as_i64()
        },
    )
    .await;
    assert!(cb >= REDIS_FIRST_ID, "the callback is on Redis: {cb}");
    c.wait_state(cb, "completed").await;
    let (_, job) = c
        .call(reqwest::Method::GET, &format!("/api/v1/jobs/{cb}"), None)
        .await;
    assert_eq!(job["args"]["batch_id"], batch, "{job}");
    assert_eq!(job["args"]["counts"]["completed"], 5, "{job}");
    assert_eq!(job["args"]["args"]["tag"], "t", "{job}");
    let (_, listed) = c
        .call(
            reqwest::Method::GET,
            "/api/v1/jobs?queue=fast&kind=demo.batch_done",
            None,
        )
        .await;
    assert_eq!(listed["jobs"].as_array().map(Vec::len), Some(1), "{listed}");
    // The live stream told of the Redis job's death and of the batch's end (in either order:
    // the worker announces the one, the leader the other).
    let (mut dead_seen, mut finished_seen) = (false, false);
    let seen = sse_until(&mut events, |(name, e)| {
        dead_seen |= name == "job.dead";
        finished_seen |= name == "batch.finished" && e["batch_id"] == batch;
        dead_seen && finished_seen
    })
    .await;
    let dead = seen
        .iter()
        .find(|(name, _)| name == "job.dead")
        .unwrap_or_else(|| panic!("a job.dead event: {seen:?}"));
    assert_eq!(
        (&dead.1["job_id"], &dead.1["batch_id"], &dead.1["kind"]),
        (&json!(ids[5]), &json!(batch), &json!("demo.fail")),
        "{dead:?}"
    );
    assert_eq!(dead.1["error"], "demo failure on attempt 1", "{dead:?}");
    // Once finished, the batch's keys on Redis are released.
    wait_for(
        "the batch's keys released",
        Duration::from_secs(30),
        || async {
            let counted = driver.count_batches("fast", &[batch]).await.unwrap();
            counted
                .get(&batch)
                .is_none_or(|c| c.is_empty())
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        driver.job(JobId(ids[0])).await.unwrap().unwrap().batch_id,
        Some(batch)
    );

    // Cancelling a batch cancels its jobs on both backends.
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let waiting = |q: &str| json!({"queue": q, "kind": "demo.noop", "args": {}, "run_at": later});
    let (s, b) = c
        .call(
            reqwest::Method::POST,
            "/api/v1/batches",
            Some(json!({"jobs": [waiting("fast"), waiting("slow"), waiting("fast")]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let second = b["id"].as_i64().unwrap();
    let waiting_ids = result_ids(&b);
    let (_, p) = c
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/batches/{second}"),
            None,
        )
        .await;
    assert_eq!(p["counts"]["scheduled"], 3, "counted on both backends: {p}");
    // The console lists a batch's jobs on either backend.
    let (http, cookie) = crate::support::api::console_session(&c.base, &c.key).await;
    let link = |id: i64| format!("href=\"/console/jobs/{id}\"");
    let page = async |path: String| {
        crate::support::api::console_page(&http, &c.base, &cookie, &path).await
    };
    let on_redis = page(format!("/console/jobs?queue=fast&batch={second}")).await;
    assert!(on_redis.contains(&link(waiting_ids[0])) && on_redis.contains(&link(waiting_ids[2])));
    assert!(!on_redis.contains(&link(waiting_ids[1])));
    let everywhere = page(format!("/console/jobs?batch={second}")).await;
    assert!(
        waiting_ids.iter().all(|id| everywhere.contains(&link(*id))),
        "{everywhere}"
    );
    let on_postgres = page(format!("/console/jobs?queue=slow&batch={second}")).await;
    assert!(
        on_postgres.contains(&link(waiting_ids[1])) && !on_postgres.contains(&link(waiting_ids[0]))
    );
    // One job cancelled on its own (announced with its batch), then the rest with the batch.
    let (s, b) = c
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/jobs/{}/cancel", waiting_ids[0]),
            None,
        )
        .await;
    assert!(s.is_success(), "{s} {b}");
    let seen = sse_until(&mut events, |(name, _)| name == "job.cancelled").await;
    let cancelled = &seen.last().unwrap().1;
    assert_eq!(
        (
            &cancelled["job_id"],
            &cancelled["batch_id"],
            &cancelled["was"]
        ),
        (&json!(waiting_ids[0]), &json!(second), &json!("scheduled")),
        "{cancelled}"
    );
    let (s, b) = c
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/batches/{second}/cancel"),
            None,
        )
        .await;
    assert_eq!(
        (s, b["cancelled_jobs"].as_u64()),
        (StatusCode::OK, Some(2)),
        "{b}"
    );
    let seen = sse_until(&mut events, |(name, _)| name == "batch.cancelled").await;
    assert_eq!(seen.last().unwrap().1["cancelled_jobs"], 2, "{seen:?}");
    let (s, _) = c
        .call(reqwest::Method::POST, "/api/v1/queues/fast/pause", None)
        .await;
    assert!(s.is_success());
    let seen = sse_until(&mut events, |(name, _)| name == "queue.paused").await;
    assert_eq!(seen.last().unwrap().1["queue"], "fast", "{seen:?}");
    for id in waiting_ids {
        assert_eq!(c.job_state(id).await, "cancelled", "{id}");
    }
    let done = c.finished_batch(second).await;
    assert_eq!(done["counts"]["cancelled"], 3, "{done}");
    driver.flush_prefix().await.unwrap();
}

/// Jobs of `ms` milliseconds on queue `fast`, enqueued straight through the driver.
async fn fill(driver: &RedisDriver, n: usize, ms: u64) -> Vec<JobId> {
    let jobs: Vec<NewJob> = (0..n)
        .map(|_| NewJob::new(queue("fast"), "demo.sleep", json!({ "ms": ms })))
        .collect();
    driver
        .enqueue(&jobs)
        .await
        .expect("enqueue")
        .into_iter()
        .map(|e| e.id)
        .collect()
}

/// Completed jobs of `fast` (0 while Redis cannot be reached: the tests break connections).
async fn completed(driver: &RedisDriver) -> i64 {
    driver
        .count_by_state("fast")
        .await
        .unwrap_or_default()
        .into_iter()
        .find(|(s, _)| *s == JobState::Completed)
        .map_or(0, |(_, n)| n)
}

#[tokio::test]
async fn a_worker_killed_mid_drain_on_redis_loses_no_job() {
    let f = Fleet::on(cowans_testkit::redis_server::shared_url()).await;
    let (db, driver) = (&f.db, &f.driver);
    let env = f.env();
    // The doomed worker alone first, so it surely holds jobs when it dies.
    let mut doomed = WorkerProcess::spawn(&db.url(), "fast", 8, &env);
    let ids = fill(driver, 300, 50).await;
    wait_for("some drained", Duration::from_secs(60), || async {
        (completed(driver).await >= 40).then_some(())
    })
    .await;
    let _survivor = WorkerProcess::spawn(&db.url(), "fast", 8, &env);
    doomed.kill9();
    // The killed worker's jobs come back when their leases (2 s) expire; every job completes.
    wait_for("every job completed", Duration::from_secs(90), || async {
        (completed(driver).await == 300).then_some(())
    })
    .await;
    let mut rescued = 0;
    for id in ids {
        let job = driver.job(id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Completed, "{id}");
        rescued += job
            .errors
            .iter()
            .filter(|e| e.error == cowans_core::queue::LEASE_EXPIRED)
            .count();
    }
    assert!(rescued > 0, "the killed worker's jobs were rescued");
    driver.flush_prefix().await.unwrap();
}

#[tokio::test]
async fn a_redis_crash_and_restart_loses_no_acknowledged_enqueue_and_workers_reconnect() {
    let server = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let f = Fleet::on(server.url()).await;
    let (db, driver) = (&f.db, &f.driver);
    let env = f.env();
    let mut worker = WorkerProcess::spawn(&db.url(), "fast", 8, &env);
    // A producer enqueues all along; only what the server acknowledged counts.
    let acked: Arc<Mutex<Vec<JobId>>> = Default::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let producer = {
        let (driver, acked, stop) = (driver.clone(), acked.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                let job = NewJob::new(queue("fast"), "demo.sleep", json!({"ms": 5}));
                if let Ok(done) = driver.enqueue(std::slice::from_ref(&job)).await {
                    acked.lock().unwrap().push(done[0].id);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    wait_for("jobs flowing", Duration::from_secs(30), || async {
        (completed(driver).await >= 50).then_some(())
    })
    .await;
    let before = acked.lock().unwrap().len();
    let mut server = server;
    server.kill9();
    // The worker says it is not ready while its Redis is gone, and ready again after.
    let http = reqwest::Client::new();
    let ready = |http: reqwest::Client, ops: String| async move {
        http.get(format!("{ops}/ready"))
            .send()
            .await
            .map(|r| r.status())
            .ok()
    };
    wait_for("the worker not ready", Duration::from_secs(30), || async {
        (ready(http.clone(), worker.ops.clone()).await == Some(StatusCode::SERVICE_UNAVAILABLE))
            .then_some(())
    })
    .await;
    let server = tokio::task::spawn_blocking(move || {
        server.restart();
        server
    })
    .await
    .unwrap();
    wait_for(
        "the worker ready again",
        Duration::from_secs(30),
        || async {
            (ready(http.clone(), worker.ops.clone()).await == Some(StatusCode::OK)).then_some(())
        },
    )
    .await;
    wait_for(
        "enqueues acknowledged again",
        Duration::from_secs(30),
        || async { (acked.lock().unwrap().len() > before + 50).then_some(()) },
    )
    .await;
    stop.cancel();
    producer.await.unwrap();
    let acked: Vec<JobId> = acked.lock().unwrap().clone();
    wait_for(
        "every acknowledged job completed",
        Duration::from_secs(90),
        || async {
            let mut left = 0;
            for id in &acked {
                if state(driver, *id).await != Some(JobState::Completed) {
                    left += 1;
                }
            }
            (left == 0).then_some(())
        },
    )
    .await;
    assert!(
        worker.child.try_wait().unwrap().is_none(),
        "the worker rode out the restart"
    );
    let unique: HashSet<JobId> = acked.iter().copied().collect();
    assert_eq!(unique.len(), acked.len(), "no id given twice");
    worker.kill9();
    drop(server);
}

#[tokio::test]
async fn dropped_connections_and_an_undecodable_payload_do_not_stop_a_redis_worker() {
    // A server of its own: the test drops every client connection of the server it uses.
    let server = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let f = Fleet::on(server.url()).await;
    let (db, driver, prefix, url) = (&f.db, &f.driver, &f.prefix, &f.url);
    let env = f.env();
    // A job whose stored payload is not JSON at all.
    let poison = fill(driver, 1, 1).await[0];
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("HSET")
        .arg(format!("{{{prefix}:q:fast}}:job:{}", poison.0))
        .arg("args")
        .arg("{not json")
        .query_async(&mut raw)
        .await
        .unwrap();
    // Long enough (about 4 s at 8 at once) for many connection drops mid-drain.
    let ids = fill(driver, 300, 100).await;
    let mut worker = WorkerProcess::spawn(&db.url(), "fast", 8, &env);
    // Drop every client connection of the server, again and again, while the worker drains
    // (each time some are in the middle of a script or waiting on its reply).
    let mut kills = 0;
    while completed(driver).await < 300 && kills < 100 {
        let _: Result<i64, _> = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("normal")
            .arg("SKIPME")
            .arg("yes")
            .query_async(&mut raw)
            .await;
        let _: Result<i64, _> = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .query_async(&mut raw)
            .await;
        kills += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        kills >= 5,
        "connections were dropped mid-drain ({kills} times)"
    );
    wait_for("every job completed", Duration::from_secs(90), || async {
        (completed(driver).await == 300).then_some(())
    })
    .await;
    for id in ids {
        assert_eq!(state(driver, id).await, Some(JobState::Completed), "{id}");
    }
    let dead = wait_for(
        "the poison job dead-lettered",
        Duration::from_secs(30),
        || async {
            let h: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
                .arg(format!("{{{prefix}:q:fast}}:job:{}", poison.0))
                .query_async(&mut raw.clone())
                .await
                .unwrap();
            (h.get("state").map(String::as_str) == Some("dead")).then_some(h)
        },
    )
    .await;
    assert!(
        dead.get("errors")
            .is_some_and(|e| e.contains("payload does not decode")),
        "the dead letter says why: {dead:?}"
    );
    assert!(
        worker.child.try_wait().unwrap().is_none(),
        "the worker keeps running"
    );
    worker.kill9();
    driver.flush_prefix().await.unwrap();
}

#[tokio::test]
async fn a_fleet_wide_limit_from_the_settings_holds_a_redis_queue_across_worker_processes() {
    let mut f = Fleet::on(cowans_testkit::redis_server::shared_url()).await;
    f.extra
        .push(("COWANS__WORKER__LIMITS__FAST__CONCURRENCY", "3".to_owned()));
    let (db, driver, prefix, url) = (&f.db, &f.driver, &f.prefix, &f.url);
    let env = f.env();
    // Both processes up before the jobs arrive, so both take part.
    let _a = WorkerProcess::spawn(&db.url(), "fast", 10, &env);
    let _b = WorkerProcess::spawn(&db.url(), "fast", 10, &env);
    let control = driver.queue_control("fast").await.unwrap();
    assert_eq!(
        control.concurrency_limit,
        Some(3),
        "the settings' limit is in Redis"
    );
    fill(driver, 30, 150).await;
    let mut max_running = 0;
    let started = std::time::Instant::now();
    loop {
        let counts = driver.count_by_state("fast").await.unwrap_or_default();
        let n = |s: JobState| counts.iter().find(|(c, _)| *c == s).map_or(0, |(_, n)| *n);
        max_running = max_running.max(n(JobState::Running));
        if n(JobState::Completed) == 30 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "drain took too long"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        max_running <= 3,
        "{max_running} jobs ran at once under a limit of 3"
    );
    assert!(
        max_running >= 2,
        "the limit is used ({max_running} at most seen running)"
    );
    // The permits were Redis', not Postgres'.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let taken: Option<i64> = redis::cmd("GET")
        .arg(format!("{{{prefix}:q:fast}}:permit_seq"))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(
        taken.unwrap_or(0) >= 30,
        "a permit per job, in Redis: {taken:?}"
    );
    let in_pg: i64 = sqlx::query_scalar("SELECT count(*) FROM cowans_permits WHERE scope = 'fast'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(in_pg, 0);
    driver.flush_prefix().await.unwrap();
}

#[tokio::test]
async fn a_periodic_job_on_a_redis_queue_runs_once_per_tick() {
    let f = Fleet::on(cowans_testkit::redis_server::shared_url()).await;
    let (db, driver) = (&f.db, &f.driver);
    let env = f.env();
    let every_second: cowans_queue::CronJob = serde_json::from_value(json!({
        "name": "tick", "schedule": "* * * * * *", "queue": "fast", "kind": "demo.noop",
        "args": {}, "catch_up": 100,
    }))
    .unwrap();
    cowans_queue::register_cron(&db.pool, &every_second)
        .await
        .unwrap();
    // Two workers: whichever leads fires the ticks, never both.
    let _a = WorkerProcess::spawn(&db.url(), "fast", 2, &env);
    let _b = WorkerProcess::spawn(&db.url(), "fast", 2, &env);
    wait_for("three ticks ran", Duration::from_secs(60), || async {
        (completed(driver).await >= 3).then_some(())
    })
    .await;
    let jobs = driver
        .list_jobs("fast", None, None, None, 1000)
        .await
        .unwrap();
    let keys: Vec<String> = jobs.iter().filter_map(|j| j.unique_key.clone()).collect();
    assert_eq!(
        keys.len(),
        jobs.len(),
        "every tick's job carries its tick: {jobs:?}"
    );
    let distinct: HashSet<&String> = keys.iter().collect();
    assert_eq!(distinct.len(), keys.len(), "one job per tick: {keys:?}");
    assert!(keys.iter().all(|k| k.starts_with("cron:tick:")), "{keys:?}");
    // One job for every second from the first tick on (a late pass catches up): no tick
    // missed, none twice.
    let mut ticks: Vec<i64> = keys
        .iter()
        .map(|k| k.trim_start_matches("cron:tick:").parse().unwrap())
        .collect();
    ticks.sort_unstable();
    assert!(
        ticks.windows(2).all(|w| w[1] - w[0] == 1000),
        "one job per second: {ticks:?}"
    );
    let in_pg: i64 = sqlx::query_scalar("SELECT count(*) FROM cowans_jobs")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(in_pg, 0, "the ticks' jobs live in Redis");
    driver.flush_prefix().await.unwrap();
}
