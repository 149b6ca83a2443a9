//! A throw-away single Redis server, a real `redis-server` process on a free port with its files
//! in a temporary directory, that a test can kill (`SIGKILL`) and start again on the same port
//! and files: what a crash and restart of the queue's server looks like to its clients.
//!
//! It runs with `appendonly yes` and `appendfsync always`, the setting under which an
//! acknowledged write survives a crash. Needs `redis-server` on the `PATH` (a missing one fails
//! the test with a message saying so).

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub struct RedisServer {
    pub port: u16,
    server: Option<Child>,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts the server and waits until it answers.
    pub fn start() -> RedisServer {
        let dir = std::env::temp_dir().join(format!("cowans-redis-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create the server's temporary directory");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut s = RedisServer {
            port,
            server: None,
            dir,
        };
        s.restart();
        s
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: the server dies without a chance to flush anything more.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server (again) on the same port and files, and waits until it has loaded
    /// them and answers.
    pub fn restart(&mut self) {
        self.kill9();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .args(["--maxmemory-policy", "noeviction", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): install Redis to run the Redis fault tests"
                )
            });
        self.server = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ping = Command::new("redis-cli")
                .args(["-p", &self.port.to_string(), "PING"])
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("cannot run redis-cli ({e}): install Redis"));
            // A server still loading its AOF answers LOADING, not PONG.
            if ping.stdout.starts_with(b"PONG") {
                return;
            }
            if let Some(status) = self
                .server
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "redis-server on port {} exited ({status}) instead of starting",
                    self.port
                );
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer within 30 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The shared Redis the tests use (`COWANS_TEST_REDIS_URL`, default the local one); each test
/// works under a key prefix of its own.
pub fn shared_url() -> String {
    std::env::var("COWANS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}
