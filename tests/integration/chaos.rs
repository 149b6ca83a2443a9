//! `cowans-bench chaos` as anyone runs it, small: workers SIGKILLed during a drain lose no job
//! and record no effect twice. Only the accounting is asserted (timings are the benchmark's,
//! not a test's). The benchmark makes its own database on the test server and drops it.

use std::{collections::HashMap, process::Command};

use cowans_tests::{FAST_ENGINE, binary};

#[test]
fn workers_killed_during_a_drain_lose_no_job_and_duplicate_no_effect() {
    let logs = std::env::temp_dir().join(format!("cowans-chaos-test-{}", uuid::Uuid::new_v4()));
    // 2,000 jobs of 20 ms on 2 × 8 slots take at least 2.5 s: several kills 500 ms apart.
    let out = Command::new(binary("cowans-bench"))
        .args([
            "chaos",
            "--scenarios",
            "kill",
            "--jobs",
            "2000",
            "--job-ms",
            "20",
            "--processes",
            "2",
            "--concurrency",
            "8",
            "--kill-every-ms",
            "500",
            "--settle-seconds",
            "60",
            "--log-dir",
        ])
        .arg(&logs)
        .env("DATABASE_URL", cowans_testkit::server_url())
        .envs(FAST_ENGINE.iter().copied())
        .output()
        .expect("run cowans-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("RESULT workload=chaos scenario=kill "))
        .unwrap_or_else(|| panic!("no result line in\n{stdout}\n{stderr}"));
    let figures: HashMap<&str, &str> = line
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect();
    let n = |k: &str| -> i64 {
        figures
            .get(k)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no number {k}= in {line}"))
    };
    assert!(n("kills") >= 1, "{line}");
    assert_eq!(n("completed"), 2000, "{line}");
    for zero in [
        "lost",
        "duplicate_effects",
        "stuck",
        "dead",
        "completed_without_effect",
        "worker_exits",
        "unrescued",
    ] {
        assert_eq!(n(zero), 0, "{zero} in {line}");
    }
    // Attempts beyond the first only those the rescuer took back from killed workers.
    assert!(n("extra_attempts") <= n("attempts_lost_at_kills"), "{line}");
    let _ = std::fs::remove_dir_all(&logs);
}
