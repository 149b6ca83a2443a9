//! The HTTP API on a real server (port 0) over real Postgres, with a key per role.

use cowans_testkit::TestDb;
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub(crate) struct Api {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    pub(crate) db: TestDb,
    pub(crate) pool: cowans_store::PgPool,
    pub(crate) viewer: String,
    pub(crate) operator: String,
    pub(crate) admin: String,
}

/// A new API key named `<role>-key` (created through the front door, as the CLI does).
pub(crate) async fn key(pool: &cowans_store::PgPool, role: &str) -> String {
    let role = cowans_core::Role::parse(role).unwrap();
    let (key, _) = cowans_queue::FrontDoor::builder(pool.clone())
        .build()
        .create_api_key(
            &cowans_core::Actor::system("test"),
            &format!("{role}-key"),
            role,
        )
        .await
        .unwrap();
    key
}

pub(crate) async fn api() -> Api {
    api_with(cowans_api::ApiOptions::default()).await
}

/// A real API server on port 0 with `options`, over a fresh database, with a key per role; no
/// kinds registered (any kind accepted unchecked).
pub(crate) async fn api_with(options: cowans_api::ApiOptions) -> Api {
    serve_api(
        TestDb::new().await,
        options,
        cowans_core::KindRegistry::new(),
    )
    .await
}

/// The API as the binary runs it with the demo application enabled: its kinds registered,
/// unknown kinds refused.
pub(crate) async fn api_with_kinds() -> Api {
    let db = cowans_tests::demo_db().await;
    let kinds = cowans_tests::demo_jobs(&db.pool)
        .registry()
        .reject_unknown(true);
    serve_api(db, cowans_api::ApiOptions::default(), kinds).await
}

/// A test recorder's handle, for the `/metrics` of an API served here.
pub(crate) fn metrics_handle() -> metrics_exporter_prometheus::PrometheusHandle {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .build_recorder()
        .handle()
}

/// Serves the API as the binary does (group commit of 500, the event relay listening before
/// the first request), with these kinds.
pub(crate) async fn serve_api(
    db: TestDb,
    options: cowans_api::ApiOptions,
    kinds: cowans_core::KindRegistry,
) -> Api {
    let base = serve(&db, options, kinds, metrics_handle()).await;
    let pool = db.pool.clone();
    Api {
        viewer: key(&pool, "viewer").await,
        operator: key(&pool, "operator").await,
        admin: key(&pool, "admin").await,
        base,
        http: reqwest::Client::new(),
        pool,
        db,
    }
}

/// Serves the API on port 0 over `db`; its base URL.
pub(crate) async fn serve(
    db: &TestDb,
    options: cowans_api::ApiOptions,
    kinds: cowans_core::KindRegistry,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
) -> String {
    let front = cowans_queue::FrontDoor::builder(db.pool.clone())
        .kinds(kinds)
        .group_commit(500)
        .build();
    let ops = cowans_service::ops::router(db.pool.clone(), metrics, &[], None);
    let server = cowans_api::ApiServer::new(front, ops, options);
    server.ready().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(server.serve(listener, std::future::pending()));
    base
}

impl Api {
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        request(
            &self.http,
            method,
            &format!("{}{path}", self.base),
            key,
            body,
        )
        .await
    }
}

/// One HTTP request: its status and body (JSON when it parses, else the text as a string).
pub(crate) async fn request(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let (status, text) = request_text(http, method, url, key, body).await;
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// [`request`] with the body as text (CSV, JSON Lines).
pub(crate) async fn request_text(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, String) {
    let mut req = http.request(method, url);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

pub(crate) fn assert_error_shape(v: &Value, code: &str) {
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    assert!(v["error"].get("details").is_some(), "{v}");
}

/// Signs in to the console at `base` with `credential` through its form, as a browser would
/// (the form's token and the cookie that echoes it); the sign-in's answer.
pub(crate) async fn console_sign_in(
    http: &reqwest::Client,
    base: &str,
    credential: &str,
) -> reqwest::Response {
    let form = http
        .get(format!("{base}/console/login"))
        .send()
        .await
        .unwrap();
    let login_cookie = form.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = form.text().await.unwrap();
    let csrf = page
        .split("name=\"_csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("credential", credential)
        .append_pair("_csrf", &csrf)
        .finish();
    http.post(format!("{base}/console/login"))
        .header("cookie", login_cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// A client that does not follow redirects, signed in to the console at `base` with
/// `credential`, and its session cookie.
pub(crate) async fn console_session(base: &str, credential: &str) -> (reqwest::Client, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed_in = console_sign_in(&http, base, credential).await;
    let cookie = session_cookie(&signed_in);
    (http, cookie)
}

/// A console page fetched with the session `cookie` (`cowans_session=…`): its HTML.
pub(crate) async fn console_page(
    http: &reqwest::Client,
    base: &str,
    cookie: &str,
    path: &str,
) -> String {
    let res = http
        .get(format!("{base}{path}"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{path}");
    res.text().await.unwrap()
}

/// The session cookie (`cowans_session=…`) a console sign-in set.
pub(crate) fn session_cookie(res: &reqwest::Response) -> String {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with("cowans_session="))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned()
}
