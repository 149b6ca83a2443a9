//! The API's authentication and authorisation: the auth matrix on every route, API keys (created
//! on the command line, stored hashed, revoked on a running server), JWT bearer tokens (nbf,
//! issuer, audience, age), the per-key rate limit and the per-address limit on failed
//! authentications.

use std::time::{Duration, Instant};

use cowans_testkit::TestDb;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::api::{api_with, assert_error_shape, key, metrics_handle, serve};

#[tokio::test]
async fn every_route_refuses_missing_malformed_wrong_and_revoked_credentials_and_low_roles() {
    // Hundreds of failed authentications from one address: the per-address limit (tested on
    // its own below) is raised so each answer is the route's own.
    let api = api_with(cowans_api::ApiOptions {
        auth_failures: Some(cowans_api::rate_limit::RateConfig {
            per_second: 1000.0,
            burst: 100_000.0,
        }),
        ..Default::default()
    })
    .await;
    // (method, path, body, least role)
    let routes: Vec<(Method, &str, Option<Value>, &str)> = vec![
        (
            Method::POST,
            "/api/v1/jobs",
            Some(json!({"queue": "q", "kind": "k"})),
            "operator",
        ),
        (
            Method::POST,
            "/api/v1/jobs/bulk",
            Some(json!([{"queue": "q", "kind": "k"}])),
            "operator",
        ),
        (Method::GET, "/api/v1/jobs", None, "viewer"),
        (Method::GET, "/api/v1/jobs/1", None, "viewer"),
        (Method::POST, "/api/v1/jobs/1/cancel", None, "operator"),
        (Method::POST, "/api/v1/jobs/1/retry", None, "operator"),
        (Method::GET, "/api/v1/kinds", None, "viewer"),
        (Method::GET, "/api/v1/events/ws", None, "viewer"),
        (Method::GET, "/api/v1/queues", None, "viewer"),
        (Method::GET, "/api/v1/queues/q", None, "viewer"),
        (Method::POST, "/api/v1/queues/q/pause", None, "operator"),
        (Method::POST, "/api/v1/queues/q/resume", None, "operator"),
        (Method::GET, "/api/v1/queues/q/dead", None, "viewer"),
        (
            Method::POST,
            "/api/v1/queues/q/dead/redrive",
            Some(json!({"all": true})),
            "operator",
        ),
        (
            Method::POST,
            "/api/v1/queues/q/dead/purge",
            Some(json!({"expected": 0})),
            "admin",
        ),
        (
            Method::POST,
            "/api/v1/batches",
            Some(json!({"jobs": [{"queue": "q", "kind": "k"}]})),
            "operator",
        ),
        (Method::GET, "/api/v1/batches/1", None, "viewer"),
        (Method::POST, "/api/v1/batches/1/cancel", None, "operator"),
        (Method::GET, "/api/v1/audit", None, "admin"),
        (Method::GET, "/api/v1/audit/export", None, "admin"),
        (Method::GET, "/api/v1/errors", None, "viewer"),
        (Method::GET, "/api/v1/jobs/export", None, "viewer"),
        (Method::GET, "/api/v1/queues/q/dead/export", None, "viewer"),
        (
            Method::POST,
            "/api/v1/shops",
            Some(
                json!({"name": "s", "domain": "s.myshopify.com", "api_version": "2026-10", "access_token": "t"}),
            ),
            "admin",
        ),
        (Method::GET, "/api/v1/shops", None, "viewer"),
        (Method::GET, "/api/v1/shops/s", None, "viewer"),
        (Method::PATCH, "/api/v1/shops/s", Some(json!({})), "admin"),
        (Method::DELETE, "/api/v1/shops/s", None, "admin"),
        (
            Method::POST,
            "/api/v1/shops/s/pull",
            Some(json!({})),
            "operator",
        ),
        (Method::GET, "/api/v1/shops/s/pulls", None, "viewer"),
        (Method::GET, "/api/v1/shops/s/products", None, "viewer"),
        (
            Method::GET,
            "/api/v1/shops/s/products/export",
            None,
            "viewer",
        ),
        (Method::GET, "/api/v1/shops/s/products/1", None, "viewer"),
        (Method::GET, "/api/v1/pulls/1", None, "viewer"),
        (Method::POST, "/api/v1/shops/s/webhooks", None, "admin"),
    ];
    let revoked = key(&api.pool, "admin").await;
    let front = cowans_queue::FrontDoor::builder(api.pool.clone()).build();
    let row = front.find_api_key(&revoked).await.unwrap().unwrap();
    front
        .revoke_api_key(&cowans_core::Actor::system("test"), row.id)
        .await
        .unwrap();
    for (method, path, body, least) in &routes {
        let (s, v) = api.call(method.clone(), path, None, body.clone()).await;
        assert_eq!(s, 401, "{method} {path} without credentials");
        assert_error_shape(&v, "unauthorized");
        let r = api
            .http
            .request(method.clone(), format!("{}{path}", api.base))
            .header("authorization", "Basic dXNlcjpwYXNz")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} {path} with a malformed header");
        for bad in ["cwk_not_a_real_key", "garbage", revoked.as_str()] {
            let (s, _) = api
                .call(method.clone(), path, Some(bad), body.clone())
                .await;
            assert_eq!(s, 401, "{method} {path} with key {bad:.8}…");
        }
        for (role, key) in [
            ("viewer", &api.viewer),
            ("operator", &api.operator),
            ("admin", &api.admin),
        ] {
            let (s, v) = api
                .call(method.clone(), path, Some(key), body.clone())
                .await;
            let allowed = matches!(
                (*least, role),
                ("viewer", _) | ("operator", "operator" | "admin") | ("admin", "admin")
            );
            if allowed {
                assert!(s != 401 && s != 403, "{method} {path} as {role}: {s} {v}");
            } else {
                assert_eq!(s, 403, "{method} {path} as {role}");
                assert_error_shape(&v, "forbidden");
            }
        }
    }
    // The X-Api-Key header works too.
    let r = api
        .http
        .get(format!("{}/api/v1/queues", api.base))
        .header("x-api-key", &api.viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn keys_are_created_on_the_command_line_shown_once_and_stored_hashed() {
    let db = TestDb::new().await;
    let run = |args: &[&str]| {
        std::process::Command::new(cowans_tests::binary("cowans-api"))
            .args(args)
            .env("COWANS__DATABASE__URL", db.url())
            .env("COWANS__LOG__FILTER", "warn")
            .env_remove("DATABASE_URL")
            .output()
            .expect("run cowans-api")
    };
    let out = run(&["keys", "create", "--name", "ci", "--role", "operator"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let key = stdout
        .lines()
        .find(|l| l.starts_with("cwk_"))
        .unwrap_or_else(|| panic!("{stdout}"))
        .to_owned();
    let front = cowans_queue::FrontDoor::builder(db.pool.clone()).build();
    let row = front.find_api_key(&key).await.unwrap().unwrap();
    assert_eq!((row.name.as_str(), row.role.as_str()), ("ci", "operator"));
    let stored: Vec<u8> = sqlx::query_scalar("SELECT key_hash FROM cowans_api_keys WHERE id = $1")
        .bind(row.id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(
        !stored.windows(key.len()).any(|w| w == key.as_bytes()),
        "only the hash is stored"
    );
    let out = run(&["keys", "create", "--name", "x", "--role", "root"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("role") && err.trim().lines().count() == 1,
        "{err}"
    );
    let out = run(&["keys", "revoke", "--id", &row.id.to_string()]);
    assert!(out.status.success());
    assert!(front.find_api_key(&key).await.unwrap().is_none());
}

#[tokio::test]
async fn a_revoked_key_stops_working_on_a_running_server_within_the_cache_ttl() {
    let api = api_with(cowans_api::ApiOptions::default()).await;
    let key = crate::support::api::key(&api.pool, "viewer").await;
    let (s, _) = api
        .call(Method::GET, "/api/v1/queues", Some(&key), None)
        .await;
    assert_eq!(s, 200);
    let id: i64 = sqlx::query_scalar("SELECT max(id) FROM cowans_api_keys")
        .fetch_one(&api.pool)
        .await
        .unwrap();
    cowans_queue::FrontDoor::builder(api.pool.clone())
        .build()
        .revoke_api_key(&cowans_core::Actor::system("test"), id)
        .await
        .unwrap();
    let revoked_at = Instant::now();
    loop {
        let (s, v) = api
            .call(Method::GET, "/api/v1/queues", Some(&key), None)
            .await;
        if s == 401 {
            assert_error_shape(&v, "unauthorized");
            break;
        }
        assert!(
            // The cache's TTL plus a margin a loaded machine keeps: the point is that it ends.
            revoked_at.elapsed() < cowans_api::auth::KEY_CACHE_TTL + Duration::from_secs(10),
            "the revoked key still works after {:?}",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A server over `db` with `options`, any kind accepted, metrics to a private recorder.
async fn serve_open(db: &TestDb, options: cowans_api::ApiOptions) -> String {
    serve(
        db,
        options,
        cowans_core::KindRegistry::new(),
        metrics_handle(),
    )
    .await
}

#[tokio::test]
async fn jwt_bearer_tokens_carry_a_role_and_expire() {
    use jsonwebtoken::{EncodingKey, Header, encode};
    let db = TestDb::new().await;
    let options = cowans_api::ApiOptions {
        jwt: Some(cowans_api::auth::JwtConfig::hs256(b"jwt-secret")),
        ..Default::default()
    };
    let base = serve_open(&db, options).await;
    let now = chrono::Utc::now().timestamp();
    let token = |role: &str, exp: i64, secret: &[u8]| {
        encode(
            &Header::default(),
            &json!({"sub": "ci-bot", "role": role, "exp": exp}),
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    };
    let http = reqwest::Client::new();
    let submit = |t: String| {
        http.post(format!("{base}/api/v1/jobs"))
            .bearer_auth(t)
            .json(&json!({"queue": "jwt", "kind": "k"}))
            .send()
    };
    let status = async |role: &str, exp: i64, secret: &[u8]| {
        submit(token(role, exp, secret)).await.unwrap().status()
    };
    assert_eq!(status("operator", now + 600, b"jwt-secret").await, 201);
    assert_eq!(status("viewer", now + 600, b"jwt-secret").await, 403);
    let expired = submit(token("operator", now - 600, b"jwt-secret"))
        .await
        .unwrap();
    assert_eq!(expired.status(), 401);
    let v: Value = expired.json().await.unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("expired"),
        "{v}"
    );
    assert_eq!(status("operator", now + 600, b"other-secret").await, 401);
    assert_eq!(status("root", now + 600, b"jwt-secret").await, 401);
    // Not valid before an hour from now: refused until then.
    let early = encode(
        &Header::default(),
        &json!({"sub": "ci-bot", "role": "operator", "exp": now + 7200, "nbf": now + 3600}),
        &EncodingKey::from_secret(b"jwt-secret"),
    )
    .unwrap();
    let r = submit(early).await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not valid yet"),
        "{v}"
    );
    let audit: Vec<(String, String)> = sqlx::query_as("SELECT actor, action FROM cowans_audit")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        audit,
        [("jwt:ci-bot".to_owned(), "job.submit".to_owned())],
        "the one accepted submit is audited under the token's subject"
    );
}

#[tokio::test]
async fn jwt_issuer_audience_and_age_are_enforced_when_configured() {
    use jsonwebtoken::{EncodingKey, Header, encode};
    let db = TestDb::new().await;
    // Configured as an operator would: the settings' api.jwt_* keys.
    let settings = cowans_service::settings::ApiSettings {
        jwt_hs256_secret: Some("jwt-secret".into()),
        jwt_issuer: Some("https://id.example".into()),
        jwt_audience: Some("cowans".into()),
        jwt_max_age_secs: Some(300),
        ..Default::default()
    };
    let jwt = cowans_api::auth::JwtConfig::from_settings(&settings)
        .unwrap()
        .expect("JWT is configured");
    let options = cowans_api::ApiOptions {
        jwt: Some(jwt),
        ..Default::default()
    };
    let base = serve_open(&db, options).await;
    let now = chrono::Utc::now().timestamp();
    let http = reqwest::Client::new();
    let answer = async |claims: Value| {
        let token = encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(b"jwt-secret"),
        )
        .unwrap();
        let r = http
            .get(format!("{base}/api/v1/queues"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        (
            status,
            v["error"]["message"].as_str().unwrap_or("").to_owned(),
        )
    };
    let good = json!({"sub": "s", "role": "viewer", "exp": now + 600, "iat": now,
                      "iss": "https://id.example", "aud": "cowans"});
    assert_eq!(answer(good.clone()).await.0, 200);
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(k);
        c
    };
    for (claims, why) in [
        (with("iss", json!("https://evil.example")), "issuer"),
        (without("iss"), "required claim"),
        (with("aud", json!("another-api")), "audience"),
        (without("aud"), "required claim"),
        (without("iat"), "required claim"),
        (with("iat", json!(now - 3600)), "older"),
        (with("iat", json!(now + 3600)), "future"),
    ] {
        let (status, message) = answer(claims.clone()).await;
        assert_eq!(status, 401, "{claims}");
        assert!(message.contains(why), "{claims}: {message}");
    }
    // An audience list that includes ours is fine.
    assert_eq!(answer(with("aud", json!(["x", "cowans"]))).await.0, 200);
}

#[tokio::test]
async fn failed_authentications_are_limited_per_client_address_before_any_lookup() {
    let db = TestDb::new().await;
    let options = cowans_api::ApiOptions {
        auth_failures: Some(cowans_api::rate_limit::RateConfig {
            per_second: 0.001,
            burst: 5.0,
        }),
        ..Default::default()
    };
    let base = serve_open(&db, options).await;
    let good = key(&db.pool, "viewer").await;
    let from = |ip: [u8; 4]| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from(ip))
            .build()
            .unwrap()
    };
    let (guesser, neighbour) = (from([127, 0, 0, 1]), from([127, 0, 0, 2]));
    let get = async |http: &reqwest::Client, key: &str| {
        http.get(format!("{base}/api/v1/queues"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    };
    let guess = |n: usize| format!("cwk_{n:0>40}");
    for n in 0..5 {
        assert_eq!(get(&guesser, &guess(n)).await.status(), 401);
    }
    // The sixth guess is refused before the key is looked up.
    let r = get(&guesser, &guess(5)).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let v: Value = r.json().await.unwrap();
    assert_error_shape(&v, "rate_limited");
    // Another address is not affected.
    assert_eq!(get(&neighbour, &guess(6)).await.status(), 401);
    assert_eq!(get(&neighbour, &good).await.status(), 200);
}

#[tokio::test]
async fn a_key_over_its_rate_gets_429_with_retry_after_and_metrics_count_requests() {
    let db = TestDb::new().await;
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let rate = cowans_api::rate_limit::RateConfig {
        per_second: 1.0,
        burst: 3.0,
    };
    // The router records through the global facade; route this test's recorder there.
    let _ = metrics::set_global_recorder(recorder);
    let options = cowans_api::ApiOptions {
        rate,
        ..Default::default()
    };
    let base = serve(
        &db,
        options,
        cowans_core::KindRegistry::new(),
        handle.clone(),
    )
    .await;
    let (k1, k2) = (key(&db.pool, "viewer").await, key(&db.pool, "viewer").await);
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = http
            .get(format!("{base}/api/v1/queues"))
            .bearer_auth(&k1)
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            assert_eq!(r.headers()["retry-after"], "1");
            let v: Value = r.json().await.unwrap();
            assert_error_shape(&v, "rate_limited");
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    let r = http
        .get(format!("{base}/api/v1/queues"))
        .bearer_auth(&k2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "another key has its own budget");
    let text = cowans_tests::get_text(&http, &format!("{base}/metrics")).await;
    assert!(
        text.contains(
            r#"cowans_api_requests_total{route="/api/v1/queues",method="GET",status="429"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"cowans_api_request_duration_seconds_count{route="/api/v1/queues"}"#)
            || text.contains("cowans_api_request_duration_seconds{route=\"/api/v1/queues\""),
        "{text}"
    );
}

#[tokio::test]
async fn a_console_session_opened_with_a_jwt_ends_when_the_token_does() {
    use jsonwebtoken::{EncodingKey, Header, encode};
    let db = TestDb::new().await;
    let options = cowans_api::ApiOptions {
        jwt: Some(cowans_api::auth::JwtConfig::hs256(b"jwt-secret")),
        ..Default::default()
    };
    let base = serve_open(&db, options).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let exp = chrono::Utc::now().timestamp() + 600;
    let jwt = encode(
        &Header::default(),
        &json!({"sub": "reviewer", "role": "operator", "exp": exp}),
        &EncodingKey::from_secret(b"jwt-secret"),
    )
    .unwrap();
    let res = crate::support::api::console_sign_in(&http, &base, &jwt).await;
    assert_eq!(res.status(), 303);
    let session = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("cowans_session="))
        .unwrap();
    let max_age: i64 = session
        .split("; ")
        .find_map(|p| p.strip_prefix("Max-Age="))
        .unwrap()
        .parse()
        .unwrap();
    // Eight hours for a key; the token's ten minutes here.
    assert!((1..=600).contains(&max_age), "{session}");
    let (actor, ends): (String, i64) = sqlx::query_as(
        "SELECT actor, extract(epoch FROM expires_at)::bigint FROM cowans_console_sessions",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(actor, "jwt:reviewer");
    assert!(ends <= exp, "the session ends by the token's exp");
    // A hand-edited query value is a page naming it, not a bare 400.
    let cookie = crate::support::api::session_cookie(&res);
    for path in [
        "/console/jobs?after=abc",
        "/console/dead?after=1x",
        "/console/batches?before=-",
    ] {
        let bad = http
            .get(format!("{base}{path}"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 422, "{path}");
        let page = bad.text().await.unwrap();
        assert!(page.contains("is not a whole number"), "{page}");
    }
}
