//! The web console in a real browser (Debian's Chromium through chromedriver, driven with
//! fantoccini) against a real `cowans-api` and worker: signing in and out, live queue counts,
//! pausing a queue as an operator, a viewer without controls whose forged posts are refused,
//! and a hostile payload that stays text.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::Duration,
};

use cowans_testkit::wait_for;
use cowans_tests::{ApiProcess, FAST_ENGINE, WorkerProcess};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// A headless Chromium session (chromedriver on a free port; both stopped on drop).
struct Browser {
    driver: Child,
    client: Client,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

async fn browser() -> Browser {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start chromedriver ({e}): apt-get install chromium chromium-driver (./ops/test.sh does)"));
    let caps = json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900"]
        }
    });
    let caps = caps.as_object().unwrap().clone();
    let client = wait_for(
        "chromedriver to accept a session",
        Duration::from_secs(60),
        || {
            let caps = caps.clone();
            async move {
                ClientBuilder::native()
                    .capabilities(caps)
                    .connect(&format!("http://127.0.0.1:{port}"))
                    .await
                    .ok()
            }
        },
    )
    .await;
    Browser { driver, client }
}

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

/// Signs in through the form with `credential`.
async fn sign_in(b: &Browser, base: &str, credential: &str) {
    b.client.goto(&format!("{base}/console")).await.unwrap();
    // Not signed in: the console sends the browser to the form.
    let url = b.client.current_url().await.unwrap();
    assert!(url.path().ends_with("/console/login"), "{url}");
    b.client
        .find(Locator::Id("credential"))
        .await
        .unwrap()
        .send_keys(credential)
        .await
        .unwrap();
    b.client
        .find(Locator::Css("form.login button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let url = b.client.current_url().await.unwrap();
    assert_eq!(url.path(), "/console", "signed in, on the overview");
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

    let pause = "tr[data-queue='console-q'] form[action='/console/queues/console-q/pause'] button";
    b.client
        .find(Locator::Css(pause))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
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

    b.client
        .find(Locator::Css("form.signout button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
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

/// The session cookie and the CSRF token of a signed-in browser.
async fn session_of(b: &Browser) -> (String, String) {
    let cookie = b.client.get_named_cookie("cowans_session").await.unwrap();
    assert!(
        cookie.http_only().unwrap_or(false),
        "the session cookie is HttpOnly"
    );
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
    let csrf = b
        .client
        .find(Locator::Css("form.signout input[name='_csrf']"))
        .await
        .unwrap()
        .attr("value")
        .await
        .unwrap()
        .unwrap();
    (cookie.value().to_owned(), csrf)
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
