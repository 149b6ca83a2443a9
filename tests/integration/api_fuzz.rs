//! The OpenAPI contract, checked the way an outside tester would: schemathesis (from PyPI;
//! `./ops/test.sh` installs it under `target/tools/`) generates requests from the served document
//! in all its phases, 100 examples per operation, against the real `cowans-api` binary with the
//! catalog and demo applications, once with an admin and once with an operator key. It must find
//! no server error and no mismatch: every answer documented with its schema, every schema-valid
//! request accepted (except where `ops/schemathesis/schemathesis.toml` names a rule a schema cannot
//! state), every schema-invalid one refused, missing or wrong credentials answered 401.
//! The live event routes (an endless SSE stream, a WebSocket) are left to `api_events`.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use cowans_testkit::TestDb;
use cowans_tests::ApiProcess;

use crate::support::api::key;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_owned()
}

/// schemathesis' `st`: `COWANS_SCHEMATHESIS`, or where `./ops/test.sh` installs it.
fn schemathesis() -> PathBuf {
    let st = std::env::var_os("COWANS_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/tools/schemathesis/bin/st"));
    assert!(
        st.exists(),
        "schemathesis is not installed at {}: run ./ops/test.sh (it installs it from PyPI), or set COWANS_SCHEMATHESIS",
        st.display()
    );
    st
}

/// Runs schemathesis with `key` against `base`; its output when it finds anything.
fn fuzz(st: &PathBuf, base: &str, key: &str) -> std::process::Child {
    Command::new(st)
        .arg("--config-file")
        .arg(workspace().join("ops/schemathesis/schemathesis.toml"))
        .args(["run", &format!("{base}/api/v1/openapi.json")])
        .args(["--header", &format!("Authorization: Bearer {key}")])
        .args(["--checks", "all", "--max-examples", "100", "--workers", "1"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--exclude-path", "/api/v1/events"])
        .args(["--exclude-path", "/api/v1/events/ws"])
        .args(["--seed", "20261130", "--no-color"])
        // Its cache of found failures goes under target/, not into the source tree.
        .current_dir(workspace().join("target"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start schemathesis")
}

#[test]
fn a_schema_fuzzer_finds_no_server_error_and_no_mismatch_with_the_document() {
    let st = schemathesis();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDb::new());
    let apps = [("COWANS__APPS", "catalog,demo")];
    let migrate = Command::new(cowans_tests::binary("cowans-worker"))
        .arg("migrate")
        .env("COWANS__DATABASE__URL", db.url())
        .envs(apps)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run cowans-worker migrate");
    assert!(migrate.status.success(), "{migrate:?}");
    let (admin, operator) = rt.block_on(async {
        (
            key(&db.pool, "admin").await,
            key(&db.pool, "operator").await,
        )
    });
    // The fuzzer sends thousands of requests with bad credentials from one address: the
    // failed-authentication limit (tested in api_auth) would answer them 429, not 401.
    let api = ApiProcess::spawn(
        &db.url(),
        &[
            ("COWANS__APPS", "catalog,demo"),
            (
                "COWANS__CATALOG__SECRET_KEYS__TEST",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            ),
            ("COWANS__API__AUTH_FAILURE_BURST", "1000000"),
            ("COWANS__API__AUTH_FAILURES_PER_SECOND", "1000000"),
            ("COWANS__API__RATE_PER_SECOND", "1000000"),
            ("COWANS__API__RATE_BURST", "1000000"),
        ],
    );
    let runs = [("admin", admin), ("operator", operator)]
        .map(|(role, key)| (role, fuzz(&st, &api.base, &key)));
    let deadline = Instant::now() + Duration::from_secs(20 * 60);
    let mut failures = Vec::new();
    for (role, child) in runs {
        let out = child.wait_with_output().expect("schemathesis ran");
        assert!(
            Instant::now() < deadline,
            "schemathesis took over 20 minutes"
        );
        if !out.status.success() {
            failures.push(format!(
                "--- schemathesis with the {role} key ({}):\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
