//! Helpers for the integration tests: spawning real `cowans-worker` processes against a test
//! database, and small builders.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use cowans_core::QueueName;

pub fn queue(name: &str) -> QueueName {
    QueueName::new(name).expect("test queue names are valid")
}

/// The `cowans-worker` binary built next to this test executable.
pub fn worker_binary() -> PathBuf {
    binary("cowans-worker")
}

/// A workspace binary built next to this test executable.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("test executable lives in target/<profile>/deps");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build --workspace --bins, or run ./ops/test.sh)",
        bin.display()
    );
    bin
}

/// A running `cowans-worker run` process.
pub struct WorkerProcess {
    pub child: Child,
    /// `http://127.0.0.1:<port>` of its ops endpoints.
    pub ops: String,
    lines: mpsc::Receiver<String>,
}

impl WorkerProcess {
    /// Starts `cowans-worker run` on `db_url` with extra `COWANS__...` env settings and waits
    /// until it says it is ready.
    pub fn spawn(db_url: &str, queues: &str, concurrency: usize, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(worker_binary());
        cmd.args([
            "run",
            "--queues",
            queues,
            "--concurrency",
            &concurrency.to_string(),
            "--ops-listen",
            "127.0.0.1:0",
        ])
        .env("COWANS__DATABASE__URL", db_url)
        .env("COWANS__APPS", "demo")
        .env("COWANS__LOG__FILTER", "warn")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn cowans-worker");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let ready = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("cowans-worker printed its ready line within 30 s");
        let ops = ready
            .split("ops=")
            .nth(1)
            .unwrap_or_else(|| panic!("unexpected first line: {ready}"))
            .trim()
            .to_owned();
        WorkerProcess {
            child,
            ops,
            lines: rx,
        }
    }

    /// SIGKILL: the process dies with its jobs in hand.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL the worker");
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for the exit; returns its exit code and last stdout line.
    pub fn terminate(mut self, within: Duration) -> (Option<i32>, String) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // The reader thread may not have forwarded the last lines yet: read until it
                // reaches the end of the pipe (its sender is dropped then).
                let mut last = String::new();
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(10)) {
                    last = line;
                }
                return (status.code(), last);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "worker did not exit within {within:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `cowans-api serve` process (killed on drop).
pub struct ApiProcess {
    pub child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

impl ApiProcess {
    /// Starts `cowans-api serve` on port 0 over `db_url` with the demo application and extra
    /// `COWANS__...` settings, and waits until it says it is ready.
    pub fn spawn(db_url: &str, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(binary("cowans-api"));
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .env("COWANS__DATABASE__URL", db_url)
            .env("COWANS__APPS", "demo")
            .env("COWANS__LOG__FILTER", "warn")
            .env_remove("DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn cowans-api");
        let mut ready = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut ready)
            .expect("read cowans-api's ready line");
        let base = ready
            .trim()
            .strip_prefix("cowans-api ready: ")
            .unwrap_or_else(|| panic!("unexpected first line {ready:?}"))
            .to_owned();
        ApiProcess { child, base }
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of `GET url` (e.g. a process's `/metrics`).
pub async fn get_text(http: &reqwest::Client, url: &str) -> String {
    http.get(url)
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("a text body")
}

/// Engine timings short enough for in-process tests (the in-process twin of [`FAST_ENGINE`]).
pub fn fast_engine() -> cowans_queue::EngineConfig {
    cowans_queue::EngineConfig {
        lease_ttl: Duration::from_secs(2),
        heartbeat_interval: Duration::from_millis(500),
        poll_interval: Duration::from_millis(200),
        leader_ttl: Duration::from_secs(1),
        rescue_interval: Duration::from_millis(200),
        shutdown_timeout: Duration::from_secs(5),
        ..cowans_queue::EngineConfig::default()
    }
}

/// Retries quick enough for tests: 5 attempts, 100 ms doubling, no jitter.
pub fn quick_retries() -> cowans_core::RetryPolicy {
    cowans_core::RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(5),
        jitter: 0.0,
    }
}

/// Runs the demo kinds on `q` in this process, `concurrency` at a time, with [`quick_retries`].
pub fn run_demo(engine: &cowans_queue::Engine, q: &str, concurrency: usize) {
    let backend = engine.backend::<serde_json::Value>(
        cowans_queue::QueueConfig::new(queue(q))
            .concurrency(concurrency)
            .retry(quick_retries()),
    );
    let worker = apalis_core::worker::builder::WorkerBuilder::new(q)
        .backend(backend)
        .build(demo_jobs(engine.pool()).router());
    tokio::spawn(worker.run());
}

/// Engine timings short enough for black-box tests (lease, heartbeat, leader, rescue, poll,
/// maintenance and stats cadence), as `COWANS__ENGINE__*` variables for `WorkerProcess::spawn`.
pub const FAST_ENGINE: &[(&str, &str)] = &[
    ("COWANS__ENGINE__LEASE_TTL", "2000"),
    ("COWANS__ENGINE__HEARTBEAT_INTERVAL", "500"),
    ("COWANS__ENGINE__LEADER_TTL", "1000"),
    ("COWANS__ENGINE__RESCUE_INTERVAL", "300"),
    ("COWANS__ENGINE__POLL_INTERVAL", "200"),
    ("COWANS__ENGINE__MAINTENANCE_INTERVAL", "200"),
    ("COWANS__ENGINE__STATS_INTERVAL", "200"),
];

/// Enqueues `jobs` in one statement (`enqueue_many`); their ids in input order.
pub async fn enqueue_ids(
    pool: &sqlx::PgPool,
    jobs: &[cowans_store::NewJob],
) -> Vec<cowans_core::JobId> {
    cowans_store::enqueue_many(pool, jobs)
        .await
        .expect("enqueue")
        .into_iter()
        .map(|e| e.id)
        .collect()
}

/// The demo application's job set (the kinds the worker binary runs in these tests).
pub fn demo_jobs(pool: &sqlx::PgPool) -> cowans_queue::JobSet {
    cowans_queue::JobSet::of(
        &[cowans_demo::APP],
        &cowans_queue::AppContext::new(pool.clone()),
    )
    .expect("the demo application assembles")
}

/// A fresh database with the engine's and the demo application's tables.
pub async fn demo_db() -> cowans_testkit::TestDb {
    cowans_testkit::TestDb::with_apps(&[&cowans_store::demo::MIGRATOR]).await
}

/// Jobs of `queue` in `state`.
pub async fn count(pool: &sqlx::PgPool, queue: &str, state: cowans_core::JobState) -> i64 {
    cowans_store::count_by_state(pool, queue)
        .await
        .expect("count jobs")
        .into_iter()
        .find(|(s, _)| *s == state)
        .map_or(0, |(_, n)| n)
}

/// Resident memory of this test process now, in KiB (nextest runs each test in its own process).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
