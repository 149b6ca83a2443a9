//! The Prometheus side of operations (`ops/prometheus/`): the scrape config is valid, the alert
//! and recording rules pass their unit tests (`promtool test rules`: each alert fires in its
//! scenario and stays quiet outside it), every alert names a runbook that exists, and every
//! series the rules read is one the API or the workers export.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository")
        .to_path_buf()
}

/// Runs `promtool` with `args` in the repository; its output when it succeeds.
fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run promtool ({e}): install Debian's prometheus package (./ops/prometheus/install.sh, which ./ops/test.sh runs)")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

fn rules() -> String {
    std::fs::read_to_string(repo().join("ops/prometheus/rules/cowans.rules.yml")).unwrap()
}

#[test]
fn the_scrape_config_and_the_rules_are_valid_and_pass_their_unit_tests() {
    let checked = promtool(&["check", "config", "ops/prometheus/prometheus.yml"]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = promtool(&["test", "rules", "ops/prometheus/tests/cowans.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[test]
fn every_alert_names_a_runbook_that_exists() {
    let rules = rules();
    let alerts = rules.matches("- alert: ").count();
    let runbooks: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("runbook: "))
        .collect();
    assert!(alerts >= 9, "{alerts} alerts");
    assert_eq!(
        runbooks.len(),
        alerts,
        "one runbook per alert: {runbooks:?}"
    );
    for r in runbooks {
        let page = repo().join(r);
        let text = std::fs::read_to_string(&page)
            .unwrap_or_else(|e| panic!("runbook {r} ({}): {e}", page.display()));
        assert!(text.starts_with("# "), "{r} has a title");
    }
}

/// The raw series a rule expression reads: `cowans_…` names that are not part of a recorded
/// series' name (`level:metric:operation`), without histogram suffixes.
fn series_read(rules: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in rules.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let bytes = line.as_bytes();
        let mut i = 0;
        while let Some(at) = line[i..].find("cowans_") {
            let start = i + at;
            let end = start
                + line[start..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(line.len() - start);
            let recorded = (start > 0 && bytes[start - 1] == b':') || bytes.get(end) == Some(&b':');
            if !recorded {
                let name = &line[start..end];
                out.insert(name.strip_suffix("_bucket").unwrap_or(name).to_owned());
            }
            i = end;
        }
    }
    out
}

#[test]
fn every_series_the_rules_read_is_exported() {
    use cowans_queue::metrics as m;
    let exported: BTreeSet<&str> = [
        m::ENQUEUED,
        m::COMPLETED,
        m::FAILED,
        m::RETRIED,
        m::DEAD,
        m::RESCUED,
        m::RUN_DURATION,
        m::QUEUE_WAIT,
        m::IN_FLIGHT,
        m::STALE_ACKS,
        m::CONCURRENCY_TARGET,
        m::QUEUE_DEPTH,
        m::QUEUE_OLDEST_AGE,
        m::QUEUE_RUNNING,
        m::QUEUE_WORKERS,
        m::QUEUE_PAUSED,
        m::QUEUE_COMPLETED_LAST_MINUTE,
        m::LEADER_PASS,
        cowans_api::REQUESTS_METRIC,
        cowans_api::REQUEST_DURATION_METRIC,
    ]
    .into();
    let read = series_read(&rules());
    assert!(read.len() >= 10, "{read:?}");
    for name in &read {
        assert!(
            exported.contains(name.as_str()),
            "the rules read {name}, which nothing exports"
        );
    }
}
