//! Shops through the API and the command line: admins add, change and delete them; their
//! secrets go in and never come out (not in answers, the database, the audit log or the
//! command line); bad input is refused naming the field; pulls start over HTTP and answer the
//! job to follow; the catalog reads back with filters and keyset pages; a missing or wrong key
//! stops the processes at start-up with the reason, and `secrets rotate` moves every secret to
//! a new key.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{
    api::{api, assert_error_shape},
    catalog::{KEY, TOKEN, catalog_api, catalog_db, fixture, run, settings_env},
};

const SECRET: &str = "shpat_never_shown_again_9f3c";
const WEBHOOK: &str = "whsec_never_shown_either_77aa";

/// Every text the database holds for the catalog's shops and the audit log.
async fn database_text(pool: &sqlx::PgPool) -> String {
    let shops: Vec<String> = sqlx::query_scalar("SELECT row_to_json(s)::text FROM cowans_shops s")
        .fetch_all(pool)
        .await
        .unwrap();
    let audit: Vec<String> = sqlx::query_scalar("SELECT row_to_json(a)::text FROM cowans_audit a")
        .fetch_all(pool)
        .await
        .unwrap();
    format!("{shops:?}{audit:?}")
}

fn assert_no_secret(text: &str) {
    for secret in [SECRET, WEBHOOK, "never_shown"] {
        assert!(!text.contains(secret), "a secret leaked: {text}");
    }
}

#[tokio::test]
async fn admins_manage_shops_whose_secrets_never_come_back_out() {
    let (api, _) = catalog_api().await;
    let body = json!({
        "name": "acme",
        "domain": "Acme.myshopify.com",
        "api_version": "2026-10",
        "access_token": SECRET,
        "webhook_secret": WEBHOOK,
        "incremental_schedule": "*/10 * * * *",
    });
    let (s, shop) = api
        .call(
            Method::POST,
            "/api/v1/shops",
            Some(&api.admin),
            Some(body.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{shop}");
    assert_eq!(
        shop["domain"], "acme.myshopify.com",
        "domains are lower-cased"
    );
    assert_eq!(shop["access_token"], "…9f3c");
    assert_eq!(shop["webhook_secret"], "…77aa");
    assert_eq!(shop["status"], "active");
    assert_eq!(shop["incremental_schedule"], "*/10 * * * *");
    assert_no_secret(&shop.to_string());
    let id = shop["id"].as_i64().unwrap();

    // Read back by name and by id, and listed: never the secret.
    for path in [
        "/api/v1/shops/acme".to_owned(),
        format!("/api/v1/shops/{id}"),
        "/api/v1/shops".to_owned(),
    ] {
        let (s, v) = api.call(Method::GET, &path, Some(&api.viewer), None).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
        assert_no_secret(&v.to_string());
    }
    let (_, detail) = api
        .call(Method::GET, "/api/v1/shops/acme", Some(&api.viewer), None)
        .await;
    assert_eq!(
        (detail["products"].as_i64(), detail["variants"].as_i64()),
        (Some(0), Some(0))
    );

    // Duplicates conflict.
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/shops",
            Some(&api.admin),
            Some(body.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_error_shape(&v, "conflict");
    assert_no_secret(&v.to_string());

    // Bad input: 422 naming the field, nothing stored.
    let bad = [
        (json!({"name": "Not A Handle"}), "name"),
        (json!({"name": "12345"}), "name"),
        (
            json!({"domain": "https://acme.myshopify.com/admin"}),
            "domain",
        ),
        (json!({"api_version": "latest"}), "api_version"),
        (json!({"access_token": "  "}), "access_token"),
        // An empty or tiny webhook secret would let anyone sign the shop's webhooks.
        (json!({"webhook_secret": ""}), "webhook_secret"),
        (json!({"webhook_secret": "  abc  "}), "webhook_secret"),
        (json!({"admin_url": "ftp://x"}), "admin_url"),
        (
            json!({"incremental_schedule": "every five minutes"}),
            "incremental_schedule",
        ),
    ];
    for (change, field) in bad {
        let mut b = body.clone();
        b["name"] = json!("other");
        b["domain"] = json!("other.myshopify.com");
        for (k, v) in change.as_object().unwrap() {
            b[k] = v.clone();
        }
        let (s, v) = api
            .call(Method::POST, "/api/v1/shops", Some(&api.admin), Some(b))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{change}: {v}");
        assert_eq!(v["error"]["details"]["field"], field, "{v}");
        assert_no_secret(&v.to_string());
    }
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/shops",
            Some(&api.admin),
            Some(json!({"name": "x", "domain": "x.myshopify.com", "api_version": "2026-10", "access_token": SECRET, "password": "p"})),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown fields are refused: {v}"
    );
    assert_no_secret(&v.to_string());
    let (_, list) = api
        .call(Method::GET, "/api/v1/shops", Some(&api.viewer), None)
        .await;
    assert_eq!(
        list["shops"].as_array().unwrap().len(),
        1,
        "nothing half-added"
    );

    // A new token and no schedule; a bad change is refused whole.
    let (s, v) = api
        .call(
            Method::PATCH,
            "/api/v1/shops/acme",
            Some(&api.admin),
            Some(json!({"access_token": "shpat_rotated_by_the_merchant_b0b0", "incremental_schedule": null})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["access_token"], "…b0b0");
    assert_eq!(v["webhook_secret"], "…77aa", "untouched");
    assert_eq!(v["incremental_schedule"], Value::Null);
    let (s, v) = api
        .call(
            Method::PATCH,
            "/api/v1/shops/acme",
            Some(&api.admin),
            Some(json!({"api_version": "2026-10-01", "access_token": "shpat_never_shown_half_applied"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["details"]["field"], "api_version");
    let (_, still) = api
        .call(Method::GET, "/api/v1/shops/acme", Some(&api.viewer), None)
        .await;
    assert_eq!(still["access_token"], "…b0b0", "nothing half-applied");
    let (s, _) = api
        .call(
            Method::PATCH,
            "/api/v1/shops/nope",
            Some(&api.admin),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Sealed at rest, absent from the audit log, which records who did what.
    assert_no_secret(&database_text(&api.pool).await);
    let (_, audit) = api
        .call(Method::GET, "/api/v1/audit", Some(&api.admin), None)
        .await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"shop.add") && actions.contains(&"shop.update"),
        "{actions:?}"
    );

    let (s, v) = api
        .call(Method::DELETE, "/api/v1/shops/acme", Some(&api.admin), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = api
        .call(Method::GET, "/api/v1/shops/acme", Some(&api.viewer), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_error_shape(&v, "not_found");
}

#[tokio::test]
async fn the_catalog_routes_answer_404_where_the_catalog_is_not_enabled() {
    let api = api().await;
    let (s, v) = api
        .call(Method::GET, "/api/v1/shops", Some(&api.viewer), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_error_shape(&v, "not_found");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("catalog"),
        "{v}"
    );
}

#[tokio::test]
async fn a_pull_started_over_http_answers_its_job_and_one_of_each_kind_runs_at_a_time() {
    let (api, catalog) = catalog_api().await;
    let sim = crate::support::catalog::sim(10, 1).await;
    catalog
        .add_shop(
            &crate::support::catalog::actor(),
            crate::support::catalog::shop_request(&sim, "sim", TOKEN),
        )
        .await
        .unwrap();
    // No worker runs: the pull stays running.
    let (s, pull) = api
        .call(
            Method::POST,
            "/api/v1/shops/sim/pull",
            Some(&api.operator),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{pull}");
    assert_eq!(
        (pull["kind"].as_str(), pull["state"].as_str()),
        (Some("full"), Some("running"))
    );
    let job = pull["job_id"].as_i64().unwrap();
    let (s, j) = api
        .call(
            Method::GET,
            &format!("/api/v1/jobs/{job}"),
            Some(&api.viewer),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{j}");
    assert_eq!(j["kind"], "catalog.pull_full");
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/shops/sim/pull",
            Some(&api.operator),
            Some(json!({"kind": "full"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["details"]["pull_id"], pull["id"], "{v}");
    let (s, inc) = api
        .call(
            Method::POST,
            "/api/v1/shops/sim/pull",
            Some(&api.operator),
            Some(json!({"kind": "incremental"})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{inc}");
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/shops/sim/pull",
            Some(&api.operator),
            Some(json!({"kind": "everything"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, listed) = api
        .call(
            Method::GET,
            "/api/v1/shops/sim/pulls",
            Some(&api.viewer),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(listed["pulls"].as_array().unwrap().len(), 2);
    let (s, newest) = api
        .call(
            Method::GET,
            "/api/v1/shops/sim/pulls?limit=1",
            Some(&api.viewer),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(newest["pulls"].as_array().unwrap().len(), 1);
    assert_eq!(newest["pulls"][0]["id"], listed["pulls"][0]["id"]);
    for bad in ["limit=abc", "limit=0", "limit=100000", "lmit=5"] {
        let (s, v) = api
            .call(
                Method::GET,
                &format!("/api/v1/shops/sim/pulls?{bad}"),
                Some(&api.viewer),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {v}");
    }
    let (s, one) = api
        .call(
            Method::GET,
            &format!("/api/v1/pulls/{}", pull["id"]),
            Some(&api.viewer),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(one["id"], pull["id"]);
    let (s, _) = api
        .call(Method::GET, "/api/v1/pulls/999999", Some(&api.viewer), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_catalog_reads_back_filtered_and_in_keyset_pages_with_exact_ids() {
    let f = fixture(90, 2).await;
    let _worker = f.worker(&[]);
    f.pull(cowans_catalog::PullKind::Full).await;
    let base = f.api().await;
    let key = crate::support::api::key(&f.db.pool, "viewer").await;
    let http = reqwest::Client::new();
    let get = |path: String| {
        let (http, base, key) = (http.clone(), base.clone(), key.clone());
        async move {
            let r = http
                .get(format!("{base}{path}"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    // Every product, 25 a page.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/api/v1/shops/sim/products?limit=25&after={a}"),
            None => "/api/v1/shops/sim/products?limit=25".to_owned(),
        };
        let (s, page) = get(path).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        for p in page["products"].as_array().unwrap() {
            seen.push(p["id"].as_str().unwrap().to_owned());
        }
        match page["next_after"].as_str() {
            Some(a) => after = Some(a.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = f
        .sim
        .shop
        .lock()
        .catalog
        .products
        .keys()
        .map(|id| id.to_string())
        .collect();
    assert_eq!(
        seen, expected,
        "every product once, in id order, ids exact as strings"
    );

    // Filters.
    let count = |v: &Value| v["products"].as_array().unwrap().len();
    let (_, v) = get("/api/v1/shops/sim/products?vendor=Acme&limit=1000".into()).await;
    assert_eq!(count(&v), 30);
    assert!(
        v["products"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["vendor"] == "Acme")
    );
    let (_, v) = get("/api/v1/shops/sim/products?tag=summer&limit=1000".into()).await;
    assert_eq!(count(&v), 30);
    let (_, v) = get("/api/v1/shops/sim/products?sku=SKU-7-1".into()).await;
    assert_eq!(count(&v), 1);
    assert_eq!(v["products"][0]["title"], "Product 7");
    let (_, v) = get("/api/v1/shops/sim/products?q=product-42".into()).await;
    assert_eq!(v["products"][0]["handle"], "product-42");
    let (_, v) = get("/api/v1/shops/sim/products?status=archived".into()).await;
    assert_eq!(count(&v), 0);

    // One product, by number or GID, with its variants.
    let id = &expected[5];
    let (s, p) = get(format!("/api/v1/shops/sim/products/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["gid"], format!("gid://shopify/Product/{id}"));
    assert_eq!(p["variants"].as_array().unwrap().len(), 2);
    assert!(p["variants"][0]["id"].is_string());
    assert_eq!(p["variants"][0]["options"][0]["name"], "Size");
    let (s, by_gid) = get(format!(
        "/api/v1/shops/sim/products/gid:%2F%2Fshopify%2FProduct%2F{id}"
    ))
    .await;
    assert_eq!(s, StatusCode::OK, "{by_gid}");
    assert_eq!(by_gid["id"], p["id"]);
    for (path, status) in [
        (
            "/api/v1/shops/sim/products/abc",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("/api/v1/shops/sim/products/1", StatusCode::NOT_FOUND),
        ("/api/v1/shops/nope/products", StatusCode::NOT_FOUND),
        (
            "/api/v1/shops/sim/products?limit=0",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/v1/shops/sim/products?colour=red",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (s, v) = get(path.to_owned()).await;
        assert_eq!(s, status, "{path}: {v}");
        assert!(v["error"]["code"].is_string(), "{path}: {v}");
    }
}

#[tokio::test]
async fn the_command_line_adds_lists_and_pulls_shops_with_the_token_on_standard_input() {
    let sim = crate::support::catalog::sim(40, 2).await;
    let db = catalog_db().await;
    let url = db.url();
    let mut env = settings_env();
    env.push(("COWANS__DATABASE__URL", &url));
    let admin = sim.base_url();
    let (ok, out, err) = run(
        "cowans-api",
        &[
            "shops",
            "add",
            "--name",
            "sim",
            "--domain",
            "sim.myshopify.com",
            "--admin-url",
            &admin,
        ],
        &env,
        &format!("{TOKEN}\n"),
    )
    .await;
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("added shop sim") && out.contains(&TOKEN[TOKEN.len() - 4..]),
        "{out}"
    );
    assert!(
        !out.contains(TOKEN) && !err.contains(TOKEN),
        "the token is not printed"
    );
    let (ok, _, err) = run(
        "cowans-api",
        &["shops", "add", "--name", "x", "--domain", "x.myshopify.com"],
        &env,
        "",
    )
    .await;
    assert!(!ok, "no token, no shop");
    assert!(err.contains("COWANS_SHOP_ACCESS_TOKEN"), "{err}");

    let mut worker_env = env.clone();
    worker_env.extend_from_slice(cowans_tests::FAST_ENGINE);
    let _worker = cowans_tests::WorkerProcess::spawn(&url, "catalog", 2, &worker_env);
    let (ok, out, err) = run(
        "cowans-api",
        &["shops", "pull", "sim", "--follow"],
        &env,
        "",
    )
    .await;
    assert!(ok, "{out}{err}");
    let last = out.lines().last().unwrap_or_default();
    assert!(
        last.contains("completed") && last.contains("40 products and 80 variants"),
        "{out}"
    );
    let (ok, out, _) = run("cowans-api", &["shops", "list"], &env, "").await;
    assert!(ok && out.contains("40 products, 80 variants"), "{out}");
}

#[tokio::test]
async fn a_missing_or_wrong_key_stops_the_processes_at_start_up_and_rotation_moves_secrets() {
    let f = fixture(15, 1).await;
    let url = f.db.url();
    let other = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
    for (bin, args) in [
        (
            "cowans-worker",
            vec!["run", "--queues", "catalog", "--ops-listen", "127.0.0.1:0"],
        ),
        ("cowans-api", vec!["serve", "--listen", "127.0.0.1:0"]),
    ] {
        let base = [
            ("COWANS__DATABASE__URL", url.as_str()),
            ("COWANS__APPS", "catalog"),
        ];
        let (ok, _, err) = run(bin, &args, &base, "").await;
        assert!(!ok, "{bin} refuses to start without keys");
        assert!(err.contains("catalog.secret_keys is empty"), "{bin}: {err}");
        let mut wrong = base.to_vec();
        wrong.push(("COWANS__CATALOG__SECRET_KEYS__T", other));
        let (ok, _, err) = run(bin, &args, &wrong, "").await;
        assert!(!ok, "{bin} refuses to start with the wrong key");
        assert!(
            err.contains("does not open") && err.contains("shop sim"),
            "{bin}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }

    // Rotate to a new key: then the new key alone opens every secret.
    let both = [
        ("COWANS__DATABASE__URL", url.as_str()),
        ("COWANS__APPS", "catalog"),
        ("COWANS__CATALOG__SECRET_KEYS__T", KEY),
        ("COWANS__CATALOG__SECRET_KEYS__NEW", other),
        ("COWANS__CATALOG__ACTIVE_KEY", "new"),
    ];
    let (ok, out, err) = run("cowans-api", &["secrets", "rotate"], &both, "").await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("re-sealed the secrets of 1 shop"), "{out}");
    let mut only_new: Vec<(&str, &str)> = vec![
        ("COWANS__CATALOG__SECRET_KEYS__NEW", other),
        ("COWANS__CATALOG__PULL_BATCH", "100"),
        ("COWANS__CATALOG__INCREMENTAL_SCHEDULE", ""),
        ("COWANS__APPS", "catalog"),
    ];
    only_new.extend_from_slice(cowans_tests::FAST_ENGINE);
    let _worker = cowans_tests::WorkerProcess::spawn(&url, "catalog", 2, &only_new);
    let pull = f.start(cowans_catalog::PullKind::Full).await;
    let done = f.finished(pull.id, Duration::from_secs(60)).await;
    assert_eq!(
        done.state, "completed",
        "the new key opens the rotated token: {done:?}"
    );
}
