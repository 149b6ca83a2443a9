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

pub(crate) fn repo_path(rel: &str) -> PathBuf {
    repo().join(rel)
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
            // A name inside a label value (`shop:cowans_…` in a test's label) is not one.
            let in_word =
                start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
            if !recorded && !in_word {
                let name = &line[start..end];
                out.insert(name.strip_suffix("_bucket").unwrap_or(name).to_owned());
            }
            i = end;
        }
    }
    out
}

/// Every series name the API and the workers export (histograms by their base name).
pub(crate) fn exported() -> BTreeSet<&'static str> {
    use cowans_catalog::metrics as c;
    use cowans_queue::metrics as m;
    use cowans_shopify::metrics as s;
    [
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
        m::ACTIONS,
        m::SUBMIT_GROUP_SIZE,
        m::INDEX_BYTES,
        m::INDEX_REBUILDS,
        m::JOB_ERRORS,
        m::ERROR_SAMPLES_DROPPED,
        m::LEADER_PASS,
        s::REQUESTS,
        s::POINTS_USED,
        s::POINTS_AVAILABLE,
        s::POINTS_MAXIMUM,
        s::RESTORE_RATE,
        s::BUDGET_WAIT,
        s::BULK_STARTED,
        s::BULK_FINISHED,
        c::PRODUCTS_PULLED,
        c::VARIANTS_PULLED,
        c::PULLS_RUNNING,
        c::PULLS_FINISHED,
        c::CHANGES_PUSHED,
        cowans_api::REQUESTS_METRIC,
        cowans_api::REQUEST_DURATION_METRIC,
    ]
    .into()
}

/// The raw series `text` (rules, dashboards, manifests) reads that nothing exports.
pub(crate) fn unexported(text: &str) -> Vec<String> {
    let exported = exported();
    series_read(text)
        .into_iter()
        .filter(|name| {
            let base = ["_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            !exported.contains(name.as_str()) && !exported.contains(base)
        })
        .collect()
}

#[test]
fn every_series_the_rules_read_is_exported() {
    let rules = rules();
    assert!(series_read(&rules).len() >= 14, "{:?}", series_read(&rules));
    assert_eq!(
        unexported(&rules),
        Vec::<String>::new(),
        "the rules read series nothing exports"
    );
}

/// The provisioned dashboards: (file name, parsed JSON).
pub(crate) fn dashboards() -> Vec<(String, serde_json::Value)> {
    let dir = repo().join("ops/grafana/dashboards");
    let mut out: Vec<(String, serde_json::Value)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), json)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Every panel query of a dashboard: (panel title, PromQL with Grafana's variables in it).
pub(crate) fn panel_queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().expect("panels") {
        let title = p["title"].as_str().unwrap_or("").to_owned();
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                title.clone(),
                t["expr"].as_str().expect("a PromQL expr").to_owned(),
            ));
        }
    }
    out
}

#[test]
fn the_dashboards_are_provisioned_on_the_fleet_prometheus_and_read_exported_series() {
    let datasource =
        std::fs::read_to_string(repo().join("ops/grafana/provisioning/datasources/cowans.yml"))
            .unwrap();
    assert!(
        datasource.contains("uid: cowans-prometheus"),
        "{datasource}"
    );
    let provider =
        std::fs::read_to_string(repo().join("ops/grafana/provisioning/dashboards/cowans.yml"))
            .unwrap();
    assert!(provider.contains("type: file"), "{provider}");
    let dashboards = dashboards();
    let names: Vec<&str> = dashboards.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "api.json",
            "queues.json",
            "shopify.json",
            "sync.json",
            "workers.json"
        ]
    );
    let mut uids = BTreeSet::new();
    for (name, d) in &dashboards {
        assert!(
            uids.insert(d["uid"].as_str().unwrap().to_owned()),
            "{name}: uid repeats"
        );
        assert!(
            d["title"]
                .as_str()
                .is_some_and(|t| t.starts_with("Cowans / ")),
            "{name}"
        );
        let panels = d["panels"].as_array().unwrap();
        assert!(panels.len() >= 5, "{name}: {} panels", panels.len());
        let mut ids = BTreeSet::new();
        for p in panels {
            let title = p["title"].as_str().unwrap_or("?");
            assert!(
                ids.insert(p["id"].as_i64().unwrap()),
                "{name}: panel id repeats"
            );
            assert_eq!(
                p["datasource"]["uid"], "cowans-prometheus",
                "{name} / {title}"
            );
            let grid = &p["gridPos"];
            assert!(
                grid["x"].as_i64().unwrap() + grid["w"].as_i64().unwrap() <= 24,
                "{name} / {title} is wider than the dashboard"
            );
            assert!(
                !p["targets"].as_array().unwrap().is_empty(),
                "{name} / {title} has no query"
            );
        }
        // Variables used in queries are defined.
        let defined: BTreeSet<String> = d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| format!("${}", v["name"].as_str().unwrap()))
            .collect();
        for (title, q) in panel_queries(d) {
            for var in ["$queue", "$shop", "$route"] {
                assert!(
                    !q.contains(var) || defined.contains(var),
                    "{name} / {title} uses {var}, which the dashboard does not define"
                );
            }
        }
        let text = serde_json::to_string(&d["panels"]).unwrap();
        assert_eq!(
            unexported(&text),
            Vec::<String>::new(),
            "{name} reads series nothing exports"
        );
    }
}
