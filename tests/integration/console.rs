//! The web console in a real browser (Debian's Chromium through chromedriver, driven with
//! fantoccini) against a real `cowans-api` and worker: signing in and out, live queue counts,
//! pausing a queue as an operator, a viewer without controls whose forged posts are refused,
//! a hostile payload that stays text, a dead letter re-driven to completion and a purge after
//! its confirmation, a batch's progress bar moving on the live stream, and what a first load
//! weighs. The staged-change review is in `console_review`.

use std::time::Duration;

use cowans_testkit::wait_for;
use cowans_tests::{ApiProcess, FAST_ENGINE, WorkerProcess};
use fantoccini::Locator;
use serde_json::{Value, json};

use crate::support::browser::{Browser, browser, session_of, sign_in};

/// An API (with the demo kinds) and a worker on another queue (so a leader keeps the queue
/// summary fresh), over a fresh database; keys per role.
struct Fleet {
    db: cowans_testkit::TestDb,
    api: ApiProcess,
    _worker: WorkerProcess,
}

async fn fleet() -> Fleet {
    let db = cowans_tests::demo_db().await;
    let worker = WorkerProcess::spawn(&db.url(), "console-busy", 2, FAST_ENGINE);
    let api = ApiProcess::spawn(&db.url(), FAST_ENGINE);
    Fleet {
        db,
        api,
        _worker: worker,
    }
}

impl Fleet {
    /// `POST path` with `key` and `body`; the answer's JSON (a 2xx is required).
    async fn post(&self, key: &str, path: &str, body: Value) -> Value {
        let res = reqwest::Client::new()
            .post(format!("{}{path}", self.api.base))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{}", res.text().await.unwrap());
        res.json().await.unwrap_or(Value::Null)
    }

    /// Job `id`'s state, as the API tells it.
    async fn state_of(&self, key: &str, id: i64) -> String {
        let res = reqwest::Client::new()
            .get(format!("{}/api/v1/jobs/{id}", self.api.base))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        res.json::<Value>().await.unwrap()["state"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn submit(&self, key: &str, job: Value) -> i64 {
        let res = reqwest::Client::new()
            .post(format!("{}/api/v1/jobs", self.api.base))
            .bearer_auth(key)
            .json(&job)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
        res.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
    }
}

/// Waits until `queue`'s `line` sparkline ("done" or "wait") has at least `n` points (one per
/// refresh of the table).
async fn spark_points(b: &Browser, queue: &str, line: &str, n: u64) {
    let script = format!(
        "const l = document.querySelector(\"tr[data-queue='{queue}'] svg.spark.{line} polyline\"); \
         return l ? l.getAttribute('points').split(' ').length : 0"
    );
    wait_for(
        &format!("{n} points of {queue}'s {line} trend"),
        Duration::from_secs(30),
        || async { (b.js(&script).await.as_u64()? >= n).then_some(()) },
    )
    .await;
}

/// The text of the overview's row for `queue` once it satisfies `ok` (the table refreshes
/// itself every two seconds).
async fn row_text(b: &Browser, queue: &str, ok: impl Fn(&str) -> bool) -> String {
    let css = format!("tr[data-queue='{queue}']");
    wait_for(
        &format!("the row of {queue}"),
        Duration::from_secs(30),
        || async {
            let row = b.client.find(Locator::Css(&css)).await.ok()?;
            let text = row.text().await.ok()?;
            ok(&text).then_some(text)
        },
    )
    .await
}

#[tokio::test]
async fn an_operator_signs_in_watches_a_queue_pauses_it_and_signs_out() {
    let f = fleet().await;
    let operator = crate::support::api::key(&f.db.pool, "operator").await;
    for _ in 0..3 {
        f.submit(
            &operator,
            json!({"queue": "console-q", "kind": "demo.noop"}),
        )
        .await;
    }
    let b = browser().await;
    sign_in(&b, &f.api.base, &operator).await;
    let who = b
        .client
        .find(Locator::Css(".who"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(who, "key:1:operator-key (operator)");
    // The counts arrive live: three waiting, then a fourth submitted while the page is open.
    row_text(&b, "console-q", |t| t.contains("console-q 3 ")).await;
    f.submit(
        &operator,
        json!({"queue": "console-q", "kind": "demo.noop"}),
    )
    .await;
    row_text(&b, "console-q", |t| t.contains("console-q 4 ")).await;
    // The row's trend lines grow with each refresh.
    spark_points(&b, "console-q", "wait", 3).await;

    // Fleet-wide limits, set from the queue's form, shown on its row.
    b.open(&format!("{}/console/queues/console-q/limits", f.api.base))
        .await;
    for (name, value) in [
        ("concurrency_limit", "3"),
        ("rate_jobs", "10"),
        ("rate_period_ms", "1000"),
    ] {
        b.type_into(&format!("input[name='{name}']"), value).await;
    }
    b.navigate_by("form.limits button").await;
    row_text(&b, "console-q", |t| t.contains("≤3 running, 10/1000 ms")).await;
    spark_points(&b, "console-q", "done", 6).await;
    b.screenshot("queues").await;
    let limits = cowans_queue::FrontDoor::builder(f.db.pool.clone())
        .build()
        .limits(&cowans_tests::queue("console-q"))
        .await
        .unwrap();
    assert_eq!(limits.concurrency_limit, Some(3));
    assert_eq!(
        limits.rate.map(|r| (r.jobs, r.period.as_millis())),
        Some((10, 1000))
    );
    // Limits the API would refuse are refused here too, naming the field, and change nothing.
    let (session, csrf) = session_of(&b).await;
    let http = reqwest::Client::new();
    for (fields, named) in [
        (vec![("rate_jobs", "5")], "rate_period_ms"),
        (vec![("concurrency_limit", "0")], "concurrency_limit"),
        (vec![("concurrency_limit", "many")], "concurrency_limit"),
    ] {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("_csrf", &csrf)
            .extend_pairs(fields)
            .finish();
        let res = http
            .post(format!("{}/console/queues/console-q/limits", f.api.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", format!("cowans_session={session}"))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        assert!(status == 422 || status == 400, "{status} {text}");
        assert!(text.contains(named), "{named}: {text}");
    }
    let unchanged = cowans_queue::FrontDoor::builder(f.db.pool.clone())
        .build()
        .limits(&cowans_tests::queue("console-q"))
        .await
        .unwrap();
    assert_eq!(unchanged, limits);

    let pause = "tr[data-queue='console-q'] form[action='/console/queues/console-q/pause'] button";
    b.navigate_by(pause).await;
    row_text(&b, "console-q", |t| {
        t.contains("paused") && t.contains("Resume")
    })
    .await;
    let audit: (String, String) =
        sqlx::query_as("SELECT actor, target FROM cowans_audit WHERE action = 'queue.pause'")
            .fetch_one(&f.db.pool)
            .await
            .unwrap();
    assert_eq!(
        audit,
        (
            "key:1:operator-key".to_owned(),
            "queue:console-q".to_owned()
        )
    );

    b.navigate_by("form.signout button").await;
    assert!(
        b.client
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/console/login")
    );
    b.client
        .goto(&format!("{}/console", f.api.base))
        .await
        .unwrap();
    assert!(
        b.client
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/console/login"),
        "signed out: the console asks again"
    );
}

#[tokio::test]
async fn a_viewer_sees_no_controls_and_forged_posts_are_refused() {
    let f = fleet().await;
    let operator = crate::support::api::key(&f.db.pool, "operator").await;
    let viewer = crate::support::api::key(&f.db.pool, "viewer").await;
    f.submit(
        &operator,
        json!({"queue": "console-q", "kind": "demo.noop"}),
    )
    .await;
    let b = browser().await;
    sign_in(&b, &f.api.base, &viewer).await;
    let row = row_text(&b, "console-q", |t| t.contains("console-q 1 ")).await;
    assert!(!row.contains("Pause"), "{row}");
    assert!(
        b.client
            .find_all(Locator::Css("form[action$='/pause']"))
            .await
            .unwrap()
            .is_empty()
    );

    let (session, csrf) = session_of(&b).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let pause = format!("{}/console/queues/console-q/pause", f.api.base);
    let post = |cookie: Option<String>, form: Vec<(&'static str, String)>| {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        let mut req = http
            .post(&pause)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(c) = cookie {
            req = req.header("cookie", format!("cowans_session={c}"));
        }
        req.send()
    };
    // No session, a session without its token, a wrong token, the viewer's own token: refused.
    for (cookie, form) in [
        (None, vec![("_csrf", csrf.clone())]),
        (Some(session.clone()), vec![]),
        (Some(session.clone()), vec![("_csrf", "forged".to_owned())]),
        (Some(session.clone()), vec![("_csrf", csrf.clone())]),
    ] {
        let res = post(cookie, form).await.unwrap();
        assert!(res.status().is_client_error(), "{}", res.status());
    }
    let paused: bool = sqlx::query_scalar(
        "SELECT coalesce(bool_or(paused), false) FROM cowans_queues WHERE name = 'console-q'",
    )
    .fetch_one(&f.db.pool)
    .await
    .unwrap();
    assert!(!paused, "nothing got through");
    // Every page carries the policy that forbids inline script.
    let res = http
        .get(format!("{}/console/login", f.api.base))
        .send()
        .await
        .unwrap();
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
}

#[tokio::test]
async fn a_hostile_payload_renders_as_text() {
    let f = fleet().await;
    let operator = crate::support::api::key(&f.db.pool, "operator").await;
    let probe = "<img src=x onerror=alert(1)><script>alert(2)</script>";
    let id = f
        .submit(&operator, json!({"queue": "console-q", "kind": "demo.effect", "args": {"key": probe, "sleep_ms": 0}}))
        .await;
    let b = browser().await;
    sign_in(&b, &f.api.base, &operator).await;
    b.client
        .goto(&format!("{}/console/jobs/{id}", f.api.base))
        .await
        .unwrap();
    let payload = b
        .client
        .find(Locator::Css("pre.payload"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        payload.contains(probe),
        "the probe is shown as text: {payload}"
    );
    assert!(
        b.client
            .find_all(Locator::Css("main img, main script"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(b.client.get_alert_text().await.is_err(), "no script ran");
    // The job list shows it too, and its kind filter takes the probe as plain text.
    b.client
        .goto(&format!(
            "{}/console/jobs?queue=console-q&kind=%3Cb%3Ex",
            f.api.base
        ))
        .await
        .unwrap();
    let kind = b
        .client
        .find(Locator::Css("input[name='kind']"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(kind.as_deref(), Some("<b>x"));
    assert!(
        b.client
            .find_all(Locator::Css("main b"))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn an_operator_redrives_a_dead_letter_to_completion_and_purges_after_confirming() {
    let f = fleet().await;
    let operator = crate::support::api::key(&f.db.pool, "operator").await;
    // Dead letters whose cause is "fixed" by the time someone re-drives them.
    let dying = json!({"queue": "console-busy", "kind": "demo.fail", "max_attempts": 1,
                       "args": {"until_redriven": true}});
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(f.submit(&operator, dying.clone()).await);
    }
    for id in &ids {
        wait_for(
            &format!("job {id} to die"),
            Duration::from_secs(60),
            || async { (f.state_of(&operator, *id).await == "dead").then_some(()) },
        )
        .await;
    }
    let b = browser().await;
    sign_in(&b, &f.api.base, &operator).await;
    b.open(&format!("{}/console/dead?queue=console-busy", f.api.base))
        .await;
    assert!(b.text("p.count").await.starts_with("3 dead letters"));
    // By words of the error, in any case; a filter by error leaves only the selection.
    b.open(&format!(
        "{}/console/dead?queue=console-busy&error=UNTIL+RE-DRIVEN",
        f.api.base
    ))
    .await;
    assert_eq!(b.count("tr[data-job]").await, 3);
    assert_eq!(
        b.count("a.button.danger").await,
        0,
        "no purge by queue under an error filter"
    );
    b.open(&format!(
        "{}/console/dead?queue=console-busy&error=timeout",
        f.api.base
    ))
    .await;
    assert_eq!(b.count("tr[data-job]").await, 0);
    b.open(&format!("{}/console/dead?queue=console-busy", f.api.base))
        .await;
    let row = b.text(&format!("tr[data-job='{}']", ids[0])).await;
    assert!(row.contains("demo failure until re-driven"), "{row}");
    b.screenshot("dead-letters").await;

    // Re-drive the first one alone: it runs again and completes.
    b.click(&format!("input[name='id'][value='{}']", ids[0]))
        .await;
    b.navigate_by("form#selection button[type='submit']").await;
    wait_for(
        "the re-driven job to complete",
        Duration::from_secs(60),
        || async { (f.state_of(&operator, ids[0]).await == "completed").then_some(()) },
    )
    .await;
    b.open(&format!("{}/console/jobs/{}", f.api.base, ids[0]))
        .await;
    assert_eq!(b.text("dd span.state").await, "completed");
    let attempts = b.text("ol.attempts").await;
    assert!(
        attempts.contains("demo failure until re-driven"),
        "{attempts}"
    );
    b.screenshot("job").await;

    // Purge the other two, after a confirmation that names the count.
    b.open(&format!("{}/console/dead?queue=console-busy", f.api.base))
        .await;
    assert!(b.text("p.count").await.starts_with("2 dead letters"));
    b.navigate_by("a.button.danger").await;
    let warning = b.text("p.warning").await;
    assert!(
        warning.starts_with("Delete 2 dead letters of queue console-busy"),
        "{warning}"
    );
    // A dead letter arriving meanwhile: the confirmed count is no longer true, nothing goes.
    let late = f.submit(&operator, dying.clone()).await;
    wait_for("the late job to die", Duration::from_secs(60), || async {
        (f.state_of(&operator, late).await == "dead").then_some(())
    })
    .await;
    b.navigate_by("button.danger").await;
    let refusal = b.text("p.error").await;
    assert!(
        refusal.starts_with("3 dead letters match, not 2"),
        "{refusal}"
    );
    b.open(&format!("{}/console/dead?queue=console-busy", f.api.base))
        .await;
    b.navigate_by("a.button.danger").await;
    b.navigate_by("button.danger").await;
    assert!(b.text("p.count").await.starts_with("0 dead letters"));
    for id in &ids[1..] {
        let res = reqwest::Client::new()
            .get(format!("{}/api/v1/jobs/{id}", f.api.base))
            .bearer_auth(&operator)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "job {id} purged");
    }
}

#[tokio::test]
async fn a_batch_progress_bar_moves_on_the_live_stream_while_workers_run_it() {
    let f = fleet().await;
    let operator = crate::support::api::key(&f.db.pool, "operator").await;
    f.post(&operator, "/api/v1/queues/console-busy/pause", json!({}))
        .await;
    let jobs: Vec<Value> = (0..20)
        .map(|_| json!({"queue": "console-busy", "kind": "demo.sleep", "args": {"ms": 50}}))
        .collect();
    let batch = f
        .post(
            &operator,
            "/api/v1/batches",
            json!({"description": "console batch", "jobs": jobs}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let b = browser().await;
    sign_in(&b, &f.api.base, &operator).await;
    b.open(&format!("{}/console/batches", f.api.base)).await;
    let bar = format!("document.querySelector(\"progress[data-batch='{batch}']\")");
    assert_eq!(b.js(&format!("return {bar}.value")).await, json!(0));
    assert_eq!(b.js(&format!("return {bar}.max")).await, json!(20));
    // Marks this page: a reload would lose the mark.
    b.js("window.cowansMark = 1; return null").await;

    f.post(&operator, "/api/v1/queues/console-busy/resume", json!({}))
        .await;
    let seen = std::sync::Mutex::new(vec![0]);
    wait_for(
        "the bar to reach the end",
        Duration::from_secs(90),
        || async {
            let v = b.js(&format!("return {bar}.value")).await.as_f64()? as i64;
            let mut seen = seen.lock().unwrap();
            if seen.last() != Some(&v) {
                seen.push(v);
            }
            (v == 20).then_some(())
        },
    )
    .await;
    let seen = seen.into_inner().unwrap();
    assert_eq!(
        b.js("return window.cowansMark").await,
        json!(1),
        "moved without a reload"
    );
    let done = b.text(&format!("[data-batch-done='{batch}']")).await;
    assert_eq!(done, "20/20");
    wait_for(
        "the batch to show finished",
        Duration::from_secs(60),
        || async {
            (b.text(&format!("[data-batch-status='{batch}']")).await == "finished").then_some(())
        },
    )
    .await;
    assert!(
        b.text(&format!("[data-batch-counts='{batch}']"))
            .await
            .contains("20 completed")
    );
    assert_eq!(
        b.count(&format!("tr[data-batch-row='{batch}'] form")).await,
        0,
        "nothing left to cancel"
    );
    println!("progress values seen: {seen:?}");
    b.screenshot("batches").await;
    // Rendered again by the server: the finished batch with the counts it finished with.
    b.open(&format!("{}/console/batches", f.api.base)).await;
    assert_eq!(
        b.text(&format!("[data-batch-status='{batch}']")).await,
        "finished"
    );
    assert_eq!(
        b.text(&format!("[data-batch-counts='{batch}']")).await,
        "20 completed"
    );
    assert_eq!(
        b.text(&format!("[data-batch-done='{batch}']")).await,
        "20/20"
    );
}

#[tokio::test]
async fn a_first_load_is_small() {
    let f = fleet().await;
    let operator = crate::support::api::key(&f.db.pool, "operator").await;
    let b = browser().await;
    sign_in(&b, &f.api.base, &operator).await;
    // Everything the overview loads (document, stylesheet, script), as the browser measured it.
    let loaded = b
        .js("const nav = performance.getEntriesByType('navigation')[0]; \
             const res = performance.getEntriesByType('resource'); \
             return { bytes: nav.transferSize + res.reduce((n, r) => n + r.transferSize, 0), \
                      decoded: nav.decodedBodySize + res.reduce((n, r) => n + r.decodedBodySize, 0), \
                      resources: res.length, ms: nav.loadEventEnd - nav.startTime };")
        .await;
    println!("first load of /console: {loaded}");
    assert_eq!(
        loaded["resources"],
        json!(2),
        "the stylesheet and the script, nothing else"
    );
    let decoded = loaded["decoded"].as_f64().unwrap();
    assert!(
        decoded > 0.0 && decoded < 100_000.0,
        "under 100 KB even uncompressed: {loaded}"
    );
}
