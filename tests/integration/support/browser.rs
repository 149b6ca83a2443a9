//! A headless Chromium driven through chromedriver (fantoccini) for the console's browser
//! tests: starting it, signing in, reading the session, running a script, taking screenshots
//! for the README (`COWANS_SCREENSHOTS=<dir>`).

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::Duration,
};

use cowans_testkit::wait_for;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// A headless Chromium session (chromedriver on a free port); on drop, chromedriver and every
/// process under it are killed — Chromium puts itself in a process group of its own, so
/// killing chromedriver (or its group) alone would leave the browser running.
pub(crate) struct Browser {
    driver: Child,
    pub(crate) client: Client,
}

/// Every process descending from `root` (from `/proc`), deepest last.
fn descendants(root: i32) -> Vec<i32> {
    let mut children: std::collections::HashMap<i32, Vec<i32>> = Default::default();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": the command may hold spaces, so read after the ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        if let Some(ppid) = ppid {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut found = Vec::new();
    let mut next = vec![root];
    while let Some(p) = next.pop() {
        for c in children.get(&p).into_iter().flatten() {
            found.push(*c);
            next.push(*c);
        }
    }
    found
}

impl Drop for Browser {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        if let Ok(pid) = i32::try_from(self.driver.id()) {
            for p in descendants(pid) {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

pub(crate) async fn browser() -> Browser {
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

impl Browser {
    /// Runs `script` in the page; what it returns.
    pub(crate) async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Opens `url`.
    pub(crate) async fn open(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// `act` on the first element matching `css`, looked up again if the page's script replaced
    /// it in between (a live table does every two seconds); `what` names the act in a failure.
    async fn on_element<T, F, Fut>(&self, css: &str, what: &str, act: F) -> T
    where
        F: Fn(fantoccini::elements::Element) -> Fut,
        Fut: std::future::Future<Output = Result<T, fantoccini::error::CmdError>>,
    {
        let mut stale = 0;
        loop {
            let found = self
                .client
                .find(Locator::Css(css))
                .await
                .unwrap_or_else(|e| panic!("no {css}: {e}"));
            match act(found).await {
                Ok(v) => return v,
                Err(e) if stale < 10 && e.to_string().contains("stale element") => stale += 1,
                Err(e) => panic!("{what} {css}: {e}"),
            }
        }
    }

    /// The visible text of the first element matching `css`.
    pub(crate) async fn text(&self, css: &str) -> String {
        self.on_element(css, "reading", |e| async move { e.text().await })
            .await
    }

    /// How many elements match `css`.
    pub(crate) async fn count(&self, css: &str) -> usize {
        self.client.find_all(Locator::Css(css)).await.unwrap().len()
    }

    /// Types `text` into the first field matching `css`.
    pub(crate) async fn type_into(&self, css: &str, text: &str) {
        self.on_element(
            css,
            "typing into",
            |e| async move { e.send_keys(text).await },
        )
        .await
    }

    /// Clicks the first element matching `css`.
    pub(crate) async fn click(&self, css: &str) {
        self.on_element(
            css,
            "clicking",
            |e| async move { e.click().await.map(|_| ()) },
        )
        .await
    }

    /// Clicks the first element matching `css` and waits for the page it leads to (a form's
    /// answer, a link's target) to have loaded: WebDriver's click may return before that.
    pub(crate) async fn navigate_by(&self, css: &str) {
        self.js("window.cowansOldPage = true; return null").await;
        self.click(css).await;
        wait_for(
            &format!("the page {css} leads to"),
            Duration::from_secs(60),
            || async {
                let v = self
                    .client
                    .execute(
                        "return window.cowansOldPage === undefined && document.readyState === 'complete'",
                        vec![],
                    )
                    .await
                    .ok()?;
                (v == json!(true)).then_some(())
            },
        )
        .await;
    }

    /// With `COWANS_SCREENSHOTS=<dir>`, saves the page as `<dir>/<name>.png` (the README's
    /// pictures come from here); otherwise nothing.
    pub(crate) async fn screenshot(&self, name: &str) {
        let Ok(dir) = std::env::var("COWANS_SCREENSHOTS") else {
            return;
        };
        let png = self.client.screenshot().await.unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

/// Signs in through the form with `credential`.
pub(crate) async fn sign_in(b: &Browser, base: &str, credential: &str) {
    b.client.goto(&format!("{base}/console")).await.unwrap();
    // Not signed in: the console sends the browser to the form.
    let url = b.client.current_url().await.unwrap();
    assert!(url.path().ends_with("/console/login"), "{url}");
    b.type_into("#credential", credential).await;
    b.navigate_by("form.login button").await;
    let url = b.client.current_url().await.unwrap();
    if url.path() != "/console" {
        let page = b.client.source().await.unwrap_or_default();
        panic!("not signed in: at {url}, {page}");
    }
}

/// The session cookie and the CSRF token of a signed-in browser.
pub(crate) async fn session_of(b: &Browser) -> (String, String) {
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
