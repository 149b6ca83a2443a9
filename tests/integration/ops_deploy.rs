//! Deployment artifacts: the Kubernetes manifests (`ops/k8s/`) validate strictly against the
//! Kubernetes and KEDA schemas (and a typo in either is caught), the drain deadline agrees
//! between the engine, the manifests and the systemd units, the autoscalers read series every
//! process exports, and the systemd units (`ops/systemd/`) pass `systemd-analyze verify`
//! without a warning.

use std::{path::Path, process::Command};

use crate::ops_prometheus::{repo_path, unexported};

/// Runs `ops/k8s/validate.sh` on `dir`: (succeeded, everything it printed).
fn validate(dir: &Path) -> (bool, String) {
    let out = Command::new(repo_path("ops/k8s/validate.sh"))
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ops/k8s/validate.sh: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

#[test]
fn the_kubernetes_manifests_pass_the_kubernetes_and_keda_schemas_and_typos_do_not() {
    let (ok, out) = validate(&repo_path("ops/k8s"));
    assert!(ok, "ops/k8s does not validate:\n{out}");
    for kind in [
        "deployment/cowans-api",
        "deployment/cowans-worker",
        "service/cowans-api",
        "poddisruptionbudget/cowans-worker",
        "horizontalpodautoscaler/cowans-worker",
        "job/cowans-migrate",
        "ScaledObject/cowans-worker",
    ] {
        assert!(
            out.contains(&format!("passed for resource {kind}"))
                || out.contains(&format!("passed for {kind}")),
            "{kind} was not checked:\n{out}"
        );
    }

    // The same manifests with a misspelt field in a Deployment and in the ScaledObject.
    let tmp = std::env::temp_dir().join(format!("cowans-k8s-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    copy_dir(&repo_path("ops/k8s"), &tmp);
    for (file, from, to) in [
        (
            "worker.yaml",
            "terminationGracePeriodSeconds:",
            "terminationGracePeriod:",
        ),
        ("keda.yaml", "cooldownPeriod:", "coolDownPeriod:"),
    ] {
        let p = tmp.join(file);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains(from), "{file} has {from}");
        std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
    }
    let (ok, out) = validate(&tmp);
    std::fs::remove_dir_all(&tmp).unwrap();
    assert!(!ok, "misspelt fields passed:\n{out}");
    assert!(out.contains("terminationGracePeriod"), "{out}");
    assert!(out.contains("coolDownPeriod"), "{out}");
}

/// The number after `key` on its line in `text`.
fn number_after(text: &str, key: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(key))
        .unwrap_or_else(|| panic!("no {key} line"));
    line.trim_start()[key.len()..]
        .trim()
        .trim_matches('"')
        .parse()
        .unwrap_or_else(|e| panic!("{line}: {e}"))
}

#[test]
fn the_drain_deadline_is_the_same_in_the_engine_the_manifests_and_the_units() {
    // The engine's default drain (the manifests' ConfigMap sets the same), plus the 5 s it
    // may take to write the acks after it.
    let engine = cowans_queue::EngineConfig::default()
        .shutdown_timeout
        .as_secs();
    let config = std::fs::read_to_string(repo_path("ops/k8s/config.yaml")).unwrap();
    let configured = number_after(&config, "COWANS__ENGINE__SHUTDOWN_TIMEOUT:") / 1000;
    assert_eq!(configured, engine, "the ConfigMap's drain deadline");
    let needed = engine + 5;
    let worker = std::fs::read_to_string(repo_path("ops/k8s/worker.yaml")).unwrap();
    let grace = number_after(&worker, "terminationGracePeriodSeconds:");
    assert!(
        grace > needed,
        "the worker pod is SIGKILLed after {grace} s, a drain takes up to {needed} s"
    );
    for unit in ["cowans-worker.service", "cowans-worker@.service"] {
        let text = std::fs::read_to_string(repo_path(&format!("ops/systemd/{unit}"))).unwrap();
        let stop = number_after(&text, "TimeoutStopSec=");
        assert!(
            stop > needed,
            "{unit}: TimeoutStopSec={stop}, a drain takes up to {needed} s"
        );
        assert!(text.contains("KillSignal=SIGTERM"), "{unit}");
    }
}

#[test]
fn the_autoscalers_read_series_every_process_exports() {
    for file in ["ops/k8s/keda.yaml", "ops/k8s/hpa.yaml"] {
        let text = std::fs::read_to_string(repo_path(file)).unwrap();
        assert!(
            text.contains("cowans_queue_depth"),
            "{file} scales on the queue depth"
        );
        assert_eq!(
            unexported(&text),
            Vec::<String>::new(),
            "{file} reads series nothing exports"
        );
    }
}

#[test]
fn the_systemd_units_verify_without_a_warning() {
    let tmp = std::env::temp_dir().join(format!("cowans-units-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let mut units = Vec::new();
    for unit in [
        "cowans-api.service",
        "cowans-worker.service",
        "cowans-worker@.service",
    ] {
        let text = std::fs::read_to_string(repo_path(&format!("ops/systemd/{unit}"))).unwrap();
        // ExecStart must name an executable that exists: the binaries this test run built.
        let text = text
            .replace(
                "/usr/local/bin/cowans-api",
                &cowans_tests::binary("cowans-api").display().to_string(),
            )
            .replace(
                "/usr/local/bin/cowans-worker",
                &cowans_tests::binary("cowans-worker").display().to_string(),
            );
        let name = unit.replace("@.", "@1.");
        std::fs::write(tmp.join(&name), text).unwrap();
        units.push(tmp.join(name));
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run systemd-analyze ({e}): install Debian's systemd package")
        });
    std::fs::remove_dir_all(&tmp).unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{text}"
    );
    assert_eq!(text.trim(), "", "systemd-analyze verify warned");
}
