//! Processes a workload starts (the simulator, workers): the binaries built next to this one,
//! their ready line, their resident memory.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use anyhow::{Context, bail};

/// A running process, killed on drop.
pub struct Proc {
    pub child: Child,
    /// Its first line on stdout (its ready line).
    pub ready: String,
    /// Its later stdout lines (read on, so a last line printed at exit cannot meet a closed pipe).
    pub lines: mpsc::Receiver<String>,
}

impl Proc {
    /// The `http://…` address its ready line announces (a `cowans-api`'s).
    pub fn base_url(&self) -> anyhow::Result<String> {
        self.ready
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("no address in {:?}", self.ready))
    }

    /// Starts `name` (built next to this benchmark) with `args` and `env` and waits up to
    /// `within` for its first line.
    pub fn spawn(
        name: &str,
        args: &[&str],
        env: &[(&str, String)],
        within: Duration,
    ) -> anyhow::Result<Proc> {
        Self::spawn_to(name, args, env, within, Stdio::inherit())
    }

    /// [`Proc::spawn`] with its stderr sent to `stderr` (e.g. a log file).
    pub fn spawn_to(
        name: &str,
        args: &[&str],
        env: &[(&str, String)],
        within: Duration,
        stderr: Stdio,
    ) -> anyhow::Result<Proc> {
        let bin = binary(name)?;
        let mut cmd = Command::new(&bin);
        cmd.args(args)
            .env_remove("DATABASE_URL")
            .env("COWANS__LOG__FILTER", "warn")
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("piped stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let ready = match rx.recv_timeout(within) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{name} printed no ready line within {within:?}");
            }
        };
        Ok(Proc {
            child,
            ready,
            lines: rx,
        })
    }

    /// Its resident memory now, in MiB.
    pub fn rss_mib(&self) -> f64 {
        rss_kib(self.child.id()) as f64 / 1024.0
    }

    /// The value after `key=` in its ready line (`graphql=…`, `ops=…`).
    pub fn ready_field(&self, key: &str) -> anyhow::Result<String> {
        self.ready
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{key}=")))
            .map(str::to_owned)
            .with_context(|| format!("no {key}= in {:?}", self.ready))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A workspace binary next to this one (build it with `cargo build --release -p …`).
fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .context("the benchmark's directory")?
        .join(name);
    if !bin.exists() {
        bail!(
            "{} is missing: build it first (cargo build --release -p cowans-worker -p cowans-shopsim -p cowans-api)",
            bin.display()
        );
    }
    Ok(bin)
}

/// Resident memory of process `pid` in KiB (0 if it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
