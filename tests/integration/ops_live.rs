//! Operations proven against a real Prometheus (Debian's `prometheus`, installed by
//! `./ops/prometheus/install.sh`): it scrapes, with the shipped scrape config and rules, a real
//! API and two real workers running demo jobs and the catalog against a simulated shop (a full
//! pull, a staged change approved and pushed). Every recording rule and every Grafana panel's
//! query must then return series, both process kinds must export the scaler's metric, and the
//! key alerts must fire in their scenarios: a worker SIGKILLed with jobs queued for it (its jobs
//! are rescued; no live worker, a growing backlog, a target down) and a kind that always fails
//! (dead letters). The rules' `for:` durations are set to 0 for the run (their expressions are
//! the shipped ones; `promtool test rules` covers the durations).
//!
//! With `COWANS_SCREENSHOT` set to a PNG path, headless Chromium also captures the queues
//! console (`ops/prometheus/consoles/cowans-queues.html`) there, as the README shows.

use std::{
    collections::BTreeSet,
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use cowans_catalog::{Edit, PullKind, Source};
use cowans_tests::{ApiProcess, FAST_ENGINE, WorkerProcess};
use serde_json::{Value, json};

use crate::ops_prometheus::{dashboards, panel_queries, repo_path};
use crate::support::catalog::{actor, fixture, settings_env};

/// A Prometheus server on a free port over a temporary directory (killed and removed on drop).
struct Prometheus {
    child: Child,
    dir: PathBuf,
    base: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `host:port` of an `http://host:port` base.
fn target(base: &str) -> String {
    base.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

impl Prometheus {
    /// Starts Prometheus with the shipped scrape config (its targets replaced by `api` and
    /// `workers`, scraping and evaluating every second) and the shipped rules (`for: 0s`).
    fn start(api: &str, workers: &[String]) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("cowans-prom-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("rules")).unwrap();
        let rules = std::fs::read_to_string(repo_path("ops/prometheus/rules/cowans.rules.yml"))
            .unwrap()
            .lines()
            .map(|l| match l.find("for: ") {
                Some(i) if l[..i].trim().is_empty() => format!("{}for: 0s", &l[..i]),
                _ => l.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(dir.join("rules/cowans.rules.yml"), rules).unwrap();
        let shipped = std::fs::read_to_string(repo_path("ops/prometheus/prometheus.yml")).unwrap();
        let workers: Vec<String> = workers
            .iter()
            .map(|w| format!("\"{}\"", target(w)))
            .collect();
        let config = shipped
            .replace("scrape_interval: 15s", "scrape_interval: 1s")
            .replace("evaluation_interval: 15s", "evaluation_interval: 1s")
            .replace("[\"127.0.0.1:8080\"]", &format!("[\"{}\"]", target(api)))
            .replace("[\"127.0.0.1:9464\"]", &format!("[{}]", workers.join(", ")));
        assert!(config.contains("scrape_interval: 1s"), "{config}");
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!(
                "--web.console.templates={}",
                repo_path("ops/prometheus/consoles").display()
            ))
            .arg("--web.console.libraries=/usr/share/doc/prometheus/examples/console_libraries")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start prometheus ({e}): install Debian's prometheus package (./ops/prometheus/install.sh, which ./ops/test.sh runs)")
            });
        Prometheus {
            child,
            dir,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn get(&self, http: &reqwest::Client, path: &str, query: &[(&str, &str)]) -> Value {
        let url = url::Url::parse_with_params(&format!("{}{path}", self.base), query).unwrap();
        let res = http
            .get(url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("prometheus {path}: {e}"));
        res.json()
            .await
            .unwrap_or_else(|e| panic!("prometheus {path}: {e}"))
    }

    /// The series an instant query returns (panics on a query Prometheus refuses).
    async fn query(&self, http: &reqwest::Client, promql: &str) -> Vec<Value> {
        let v = self.get(http, "/api/v1/query", &[("query", promql)]).await;
        assert_eq!(v["status"], "success", "{promql}: {v}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Alerts firing: (name, queue label).
    async fn firing(&self, http: &reqwest::Client) -> BTreeSet<(String, String)> {
        let v = self.get(http, "/api/v1/alerts", &[]).await;
        v["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["state"] == "firing")
            .map(|a| {
                (
                    a["labels"]["alertname"].as_str().unwrap_or("").to_owned(),
                    a["labels"]["queue"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }
}

/// A panel's query as Grafana would send it with every variable at "All".
fn as_sent(q: &str) -> String {
    q.replace("$__rate_interval", "30s")
        .replace("$queue", ".*")
        .replace("$shop", ".*")
        .replace("$route", ".*")
}

/// The recorded series' names of the shipped rules.
fn recording_rules() -> Vec<String> {
    std::fs::read_to_string(repo_path("ops/prometheus/rules/cowans.rules.yml"))
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- record: ").map(str::to_owned))
        .collect()
}

/// Submits `jobs` through the API (one bulk call).
async fn submit(http: &reqwest::Client, api: &str, key: &str, jobs: Vec<Value>) {
    let res = http
        .post(format!("{api}/api/v1/jobs/bulk"))
        .bearer_auth(key)
        .json(&jobs)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
}

#[tokio::test]
async fn a_real_prometheus_sees_every_panel_and_rule_and_the_key_alerts_fire() {
    let f = fixture(40, 2).await;
    let mut env = settings_env();
    env.extend_from_slice(FAST_ENGINE);
    env.push(("COWANS__APPS", "demo,catalog"));
    let worker = WorkerProcess::spawn(
        &f.db.url(),
        "catalog,catalog.webhooks,ops-fast,ops-fail",
        4,
        &env,
    );
    let mut held = WorkerProcess::spawn(&f.db.url(), "ops-held", 2, FAST_ENGINE);
    let api = ApiProcess::spawn(&f.db.url(), FAST_ENGINE);
    let key = crate::support::api::key(&f.db.pool, "operator").await;
    let viewer = crate::support::api::key(&f.db.pool, "viewer").await;
    let prom = Prometheus::start(&api.base, &[worker.ops.clone(), held.ops.clone()]);
    let http = reqwest::Client::new();
    cowans_testkit::wait_for(
        "prometheus to be ready",
        Duration::from_secs(60),
        || async {
            let ok = http.get(format!("{}/-/ready", prom.base)).send().await;
            ok.is_ok_and(|r| r.status().is_success()).then_some(())
        },
    )
    .await;

    // Work: fast jobs and a first wave of jobs that always fail, through the API; slow jobs
    // the `ops-held` worker takes; a full pull of the shop, a change staged, approved and
    // pushed.
    let noop = |q: &str| json!({"queue": q, "kind": "demo.noop"});
    submit(
        &http,
        &api.base,
        &key,
        (0..300).map(|_| noop("ops-fast")).collect(),
    )
    .await;
    let fail =
        json!({"queue": "ops-fail", "kind": "demo.fail", "max_attempts": 1, "args": {"times": 9}});
    submit(&http, &api.base, &key, vec![fail.clone(); 3]).await;
    let sleep = json!({"queue": "ops-held", "kind": "demo.sleep", "args": {"ms": 600000}});
    submit(&http, &api.base, &key, vec![sleep.clone(); 4]).await;
    // Reads, a refused submit (422) and a request without a key (401).
    for (path, key) in [("/api/v1/queues", Some(&viewer)), ("/api/v1/queues", None)] {
        let req = http.get(format!("{}{path}", api.base));
        let req = match key {
            Some(k) => req.bearer_auth(k),
            None => req,
        };
        req.send().await.unwrap();
    }
    let refused = http
        .post(format!("{}/api/v1/jobs", api.base))
        .bearer_auth(&key)
        .json(&json!({"queue": "ops-fast", "kind": "demo.sleep", "args": {"ms": "soon"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    f.pull(PullKind::Full).await;
    let product = f
        .catalog
        .products(f.shop.id, &Default::default(), None, 1)
        .await
        .unwrap()[0]
        .0
        .id;
    let edit = Edit {
        product_id: product,
        variant_id: None,
        fields: json!({"title": "Seen by Prometheus"})
            .as_object()
            .unwrap()
            .clone(),
    };
    f.catalog
        .stage(&actor(), f.shop.id, &[edit], Source::Edit, |i| {
            format!("edits[{i}]")
        })
        .await
        .unwrap();
    f.approve_all(1).await;
    f.pushed().await;

    // The ops-held worker dies holding its two slow jobs: they are rescued, and with nobody
    // consuming the queue its backlog grows while jobs keep arriving.
    cowans_testkit::wait_for(
        "the held worker to run its jobs",
        Duration::from_secs(60),
        || async {
            let running = prom
                .query(
                    &http,
                    "max(cowans_queue_depth{queue='ops-held', state='running'})",
                )
                .await;
            running
                .first()
                .and_then(|r| r["value"][1].as_str())
                .filter(|v| *v == "2")
                .map(|_| ())
        },
    )
    .await;
    held.kill9();
    // A second wave of failures once Prometheus has seen the dead-letter counter, so its
    // increase is visible (a counter's first sample is its baseline).
    cowans_testkit::wait_for(
        "the dead-letter counter scraped",
        Duration::from_secs(60),
        || async {
            (!prom
                .query(&http, "cowans_jobs_dead_total{queue='ops-fail'}")
                .await
                .is_empty())
            .then_some(())
        },
    )
    .await;
    submit(&http, &api.base, &key, vec![fail.clone(); 30]).await;

    let expected: BTreeSet<(String, String)> = [
        ("CowansNoWorkers", "ops-held"),
        ("CowansBacklogGrowing", "ops-held"),
        ("CowansDeadLettersRising", "ops-fail"),
        ("CowansProcessDown", ""),
    ]
    .into_iter()
    .map(|(a, q)| (a.to_owned(), q.to_owned()))
    .collect();
    let mut firing;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    loop {
        // Jobs keep arriving for the queue nobody consumes.
        submit(&http, &api.base, &key, vec![noop("ops-held"); 25]).await;
        firing = prom.firing(&http).await;
        let mut missing_series = Vec::new();
        for rule in recording_rules() {
            if prom.query(&http, &rule).await.is_empty() {
                missing_series.push(format!("recording rule {rule}"));
            }
        }
        for (name, d) in dashboards() {
            for (title, q) in panel_queries(&d) {
                if prom.query(&http, &as_sent(&q)).await.is_empty() {
                    missing_series.push(format!("{name} / {title}: {q}"));
                }
            }
        }
        if missing_series.is_empty() && expected.is_subset(&firing) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "after 4 minutes: queries without series: {missing_series:#?}\nalerts firing: {firing:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let queries: usize = dashboards()
        .iter()
        .map(|(_, d)| panel_queries(d).len())
        .sum();
    assert!(
        queries >= 40 && recording_rules().len() >= 20,
        "{queries} panel queries"
    );
    eprintln!(
        "{queries} panel queries and {} recording rules returned series; firing: {firing:?}",
        recording_rules().len()
    );
    // Quiet where nothing is wrong: the consumed queues raise no no-worker alert.
    for q in ["ops-fast", "catalog"] {
        assert!(
            !firing.contains(&("CowansNoWorkers".to_owned(), q.to_owned())),
            "{firing:?}"
        );
    }
    // The scaler's metric comes from both kinds of process.
    let jobs: BTreeSet<String> = prom
        .query(
            &http,
            "count by (job) (cowans_queue_depth{state='available'})",
        )
        .await
        .iter()
        .map(|r| r["metric"]["job"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        jobs,
        ["cowans-api".to_owned(), "cowans-worker".to_owned()].into()
    );
    // The rescued jobs were counted, and the Shopify series name the shop by its domain.
    assert!(
        !prom
            .query(&http, "cowans_jobs_rescued_total{queue='ops-held'} > 0")
            .await
            .is_empty()
    );
    let shops = prom
        .query(&http, "sum by (shop) (cowans_shopify_points_used_total)")
        .await;
    assert_eq!(shops.len(), 1, "{shops:?}");
    assert_eq!(shops[0]["metric"]["shop"], f.shop.domain.as_str());

    // The queues console renders from the same data.
    let page = http
        .get(format!("{}/consoles/cowans-queues.html", prom.base))
        .send()
        .await
        .unwrap();
    assert!(page.status().is_success());
    let page = page.text().await.unwrap();
    assert!(
        page.contains("ops-held") && page.contains("CowansNoWorkers"),
        "{page}"
    );
    if let Ok(png) = std::env::var("COWANS_SCREENSHOT") {
        // A minute more of work, so the graphs have a shape.
        for _ in 0..30 {
            let fast = (0..200).map(|_| noop("ops-fast")).collect();
            submit(&http, &api.base, &key, fast).await;
            submit(&http, &api.base, &key, vec![noop("ops-held"); 10]).await;
            submit(&http, &api.base, &key, vec![fail.clone(); 2]).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        // The last two minutes (the console's time control keeps its range in the fragment).
        let console = format!(
            "{}/consoles/cowans-queues.html#pctc%7B%22duration%22%3A120%2C%22endTime%22%3A0%7D",
            prom.base
        );
        screenshot(&console, &png);
    }
    drop(worker);
    drop(api);
}

/// Captures `url` with headless Chromium into `png`.
fn screenshot(url: &str, png: &str) {
    let status = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1400,1900",
            "--virtual-time-budget=5000",
            &format!("--screenshot={png}"),
            url,
        ])
        .status()
        .expect("chromium (apt-get install chromium)");
    assert!(status.success(), "chromium failed");
}
