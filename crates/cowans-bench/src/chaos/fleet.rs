//! `cowans-worker run` processes supervised as a deployment would: a process that exits is
//! started again. Exits the scenario did not cause (a SIGKILL or SIGTERM it sent) are counted
//! as unexpected, with their status and the end of their log. Each slot's stderr goes to its
//! own log file (appended across restarts) in the scenario's log directory.

use std::{
    fs::OpenOptions,
    io::Write,
    path::PathBuf,
    process::Stdio,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::Context;
use nix::{sys::signal, unistd::Pid};

use crate::procs::Proc;

/// The `application_name` of every worker connection (`PGAPPNAME`), which storms aim at.
pub const APP_NAME: &str = "cowans-chaos-worker";

pub struct FleetConfig {
    pub url: String,
    pub queue: String,
    pub concurrency: usize,
    /// Extra `COWANS__…` settings for every worker.
    pub env: Vec<(&'static str, String)>,
    pub log_dir: PathBuf,
}

struct Slot {
    proc: Option<Proc>,
    log: PathBuf,
    /// When a start failed (the server was down): retried a second later.
    failed_at: Option<Instant>,
}

pub struct Fleet {
    cfg: FleetConfig,
    slots: Vec<Slot>,
    /// Unexpected exits, one line each.
    pub exits: Vec<String>,
    pub starts: usize,
    pub failed_starts: usize,
    /// Processes still running `within` after the final SIGTERM (then SIGKILLed).
    pub stop_overruns: usize,
}

/// How a process ended after SIGTERM.
pub struct Stopped {
    pub after: Option<Duration>,
    pub status: String,
    pub last_line: String,
}

impl Fleet {
    pub fn start(cfg: FleetConfig, n: usize) -> anyhow::Result<Fleet> {
        std::fs::create_dir_all(&cfg.log_dir)
            .with_context(|| format!("creating {}", cfg.log_dir.display()))?;
        let slots = (0..n)
            .map(|i| Slot {
                proc: None,
                log: cfg.log_dir.join(format!("worker-{i}.log")),
                failed_at: None,
            })
            .collect();
        let mut fleet = Fleet {
            cfg,
            slots,
            exits: Vec::new(),
            starts: 0,
            failed_starts: 0,
            stop_overruns: 0,
        };
        for i in 0..n {
            fleet.spawn(i)?;
        }
        Ok(fleet)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn pid(&self, i: usize) -> Option<u32> {
        self.slots[i].proc.as_ref().map(|p| p.child.id())
    }

    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let slot = &mut self.slots[i];
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&slot.log)?;
        writeln!(log, "=== chaos: starting worker {i} ===")?;
        let concurrency = self.cfg.concurrency.to_string();
        let mut env: Vec<(&str, String)> = vec![
            ("COWANS__DATABASE__URL", self.cfg.url.clone()),
            ("COWANS__APPS", "demo".to_owned()),
            (
                "COWANS__LOG__FILTER",
                "info,sqlx::postgres::notice=warn".to_owned(),
            ),
            ("PGAPPNAME", APP_NAME.to_owned()),
            // Plain log lines (no colour codes), so they can be counted and read.
            ("NO_COLOR", "1".to_owned()),
        ];
        env.extend(self.cfg.env.iter().map(|(k, v)| (*k, v.clone())));
        let started = Proc::spawn_to(
            "cowans-worker",
            &[
                "run",
                "--queues",
                &self.cfg.queue,
                "--concurrency",
                &concurrency,
                "--ops-listen",
                "127.0.0.1:0",
            ],
            &env,
            Duration::from_secs(60),
            Stdio::from(log),
        );
        match started {
            Ok(p) => {
                slot.proc = Some(p);
                slot.failed_at = None;
                self.starts += 1;
                Ok(())
            }
            Err(e) => {
                slot.failed_at = Some(Instant::now());
                self.failed_starts += 1;
                Err(e)
            }
        }
    }

    /// Reaps processes that exited on their own (counted, then started again) and retries
    /// failed starts.
    pub fn check(&mut self) {
        for i in 0..self.slots.len() {
            let slot = &mut self.slots[i];
            if let Some(p) = &mut slot.proc
                && let Ok(Some(status)) = p.child.try_wait()
            {
                let line = format!(
                    "worker {i} (pid {}) exited on its own: {status}; log {} ends: {}",
                    p.child.id(),
                    slot.log.display(),
                    tail(&slot.log, 3)
                );
                eprintln!("chaos: {line}");
                self.exits.push(line);
                slot.proc = None;
            }
            let retry = slot
                .failed_at
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
            if self.slots[i].proc.is_none() && retry {
                let _ = self.spawn(i);
            }
        }
    }

    /// Takes slot `i`'s process out of supervision (for the caller to kill or stop); the
    /// supervisor starts a new one in its place, as a deployment would.
    pub fn take(&mut self, i: usize) -> Option<Proc> {
        self.slots[i].proc.take()
    }

    /// SIGTERM to every process, then waits for them (the end of a scenario).
    pub fn stop_all(&mut self, within: Duration) {
        for slot in &mut self.slots {
            if let Some(p) = &slot.proc {
                let _ = signal::kill(Pid::from_raw(p.child.id() as i32), signal::Signal::SIGTERM);
            }
        }
        let end = Instant::now() + within;
        for slot in &mut self.slots {
            if let Some(mut p) = slot.proc.take() {
                while Instant::now() < end && matches!(p.child.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                if matches!(p.child.try_wait(), Ok(None)) {
                    self.stop_overruns += 1;
                }
            }
        }
    }

    /// Counts of WARN and ERROR lines in the workers' logs.
    pub fn log_levels(&self) -> (usize, usize) {
        let mut counts = (0, 0);
        for slot in &self.slots {
            let text = std::fs::read_to_string(&slot.log).unwrap_or_default();
            counts.0 += text.lines().filter(|l| l.contains(" WARN ")).count();
            counts.1 += text.lines().filter(|l| l.contains(" ERROR ")).count();
        }
        counts
    }
}

/// SIGKILL: the process dies with its jobs in hand.
pub fn kill9(mut p: Proc) {
    let _ = p.child.kill();
    let _ = p.child.wait();
}

/// SIGTERM; waits up to `within` for the exit (SIGKILL after that).
pub fn terminate(mut p: Proc, within: Duration) -> Stopped {
    let sent = Instant::now();
    let _ = signal::kill(Pid::from_raw(p.child.id() as i32), signal::Signal::SIGTERM);
    let mut stopped = Stopped {
        after: None,
        status: "still running (SIGKILLed)".to_owned(),
        last_line: String::new(),
    };
    while sent.elapsed() < within {
        if let Ok(Some(status)) = p.child.try_wait() {
            stopped.after = Some(sent.elapsed());
            stopped.status = status.to_string();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if stopped.after.is_none() {
        let _ = p.child.kill();
        let _ = p.child.wait();
    }
    // The reader thread may still be passing on the last lines: read until the pipe ends.
    while let Ok(line) = p.lines.recv_timeout(Duration::from_secs(10)) {
        stopped.last_line = line;
    }
    stopped
}

fn tail(path: &PathBuf, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// A fleet shared with its supervisor thread, which calls [`Fleet::check`] every 100 ms.
pub struct Supervised {
    fleet: Arc<Mutex<Fleet>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Supervised {
    pub fn new(fleet: Fleet) -> Supervised {
        let fleet = Arc::new(Mutex::new(fleet));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (fleet, stop) = (fleet.clone(), stop.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    lock(&fleet).check();
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        });
        Supervised {
            fleet,
            stop,
            thread: Some(thread),
        }
    }

    /// Runs `f` on the fleet (blocking calls allowed: it leaves the async runtime's thread).
    pub fn with<R>(&self, f: impl FnOnce(&mut Fleet) -> R) -> R {
        tokio::task::block_in_place(|| f(&mut lock(&self.fleet)))
    }

    /// Stops supervising, stops the workers (SIGTERM, at most `within`), and hands back the
    /// fleet's record.
    pub fn finish(self, within: Duration) -> Fleet {
        let fleet = self.fleet.clone();
        drop(self);
        let mut fleet = match Arc::try_unwrap(fleet) {
            Ok(m) => m.into_inner().unwrap_or_else(|p| p.into_inner()),
            Err(_) => unreachable!("the supervisor thread has been joined"),
        };
        tokio::task::block_in_place(|| fleet.stop_all(within));
        fleet
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
