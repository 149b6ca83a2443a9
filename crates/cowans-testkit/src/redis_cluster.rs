//! A throw-away Redis Cluster of three primaries (no replicas), real `redis-server` processes on
//! free ports with their files in a temporary directory; both are gone when it is dropped.
//!
//! Needs `redis-server` and `redis-cli` on the `PATH`; a missing one fails the test with a
//! message saying so (a test that needs a missing tool must fail, never skip).

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

/// A running 3-primary cluster. `nodes` are `redis://127.0.0.1:<port>` URLs, one per primary.
pub struct RedisCluster {
    pub nodes: Vec<String>,
    pub ports: Vec<u16>,
    servers: Vec<Child>,
    dir: PathBuf,
}

/// A port free now whose cluster bus port (port + 10000) is free too.
fn free_ports(n: usize) -> Vec<u16> {
    let mut held = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..200 {
        if ports.len() == n {
            break;
        }
        let Ok(l) = TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(port) = l.local_addr().map(|a| a.port()) else {
            continue;
        };
        let Some(bus) = port.checked_add(10000) else {
            continue;
        };
        let Ok(b) = TcpListener::bind(("127.0.0.1", bus)) else {
            continue;
        };
        ports.push(port);
        held.push((l, b));
    }
    assert_eq!(
        ports.len(),
        n,
        "cannot find {n} free ports with free bus ports"
    );
    ports
}

fn run(cmd: &mut Command, what: &str) -> Output {
    match cmd.output() {
        Ok(o) => o,
        Err(e) => panic!(
            "cannot run {what} ({e}): install Redis (redis-server and redis-cli) to run the cluster tests"
        ),
    }
}

fn cli(port: u16, args: &[&str]) -> Output {
    run(
        Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .stdin(Stdio::null()),
        "redis-cli",
    )
}

impl RedisCluster {
    /// Starts three cluster-enabled servers, joins them with `redis-cli --cluster create` and
    /// waits until every node reports `cluster_state:ok`. Panics (with the servers' trouble) if
    /// that takes more than 30 s.
    pub fn start() -> RedisCluster {
        let dir =
            std::env::temp_dir().join(format!("cowans-redis-cluster-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create the cluster's temporary directory");
        let ports = free_ports(3);
        let mut cluster = RedisCluster {
            nodes: ports
                .iter()
                .map(|p| format!("redis://127.0.0.1:{p}"))
                .collect(),
            ports: ports.clone(),
            servers: Vec::new(),
            dir,
        };
        for port in &ports {
            let p = port.to_string();
            let child = Command::new("redis-server")
                .args(["--port", &p, "--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", &format!("nodes-{p}.conf")])
                .arg("--dir")
                .arg(&cluster.dir)
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            match child {
                Ok(c) => cluster.servers.push(c),
                Err(e) => panic!(
                    "cannot start redis-server ({e}): install Redis (redis-server and redis-cli) to run the cluster tests"
                ),
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for port in &ports {
            while !cli(*port, &["PING"]).stdout.starts_with(b"PONG") {
                assert!(
                    Instant::now() < deadline,
                    "redis-server on port {port} did not answer"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for port in &ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null());
        let out = run(&mut create, "redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for port in &ports {
            loop {
                let info = cli(*port, &["CLUSTER", "INFO"]);
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the cluster node on port {port} is not ok: {}",
                    String::from_utf8_lossy(&info.stdout)
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        cluster
    }

    /// The node URLs as `&str`s (what `RedisDriver::connect_cluster` takes).
    pub fn node_refs(&self) -> Vec<&str> {
        self.nodes.iter().map(String::as_str).collect()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
