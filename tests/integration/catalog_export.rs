//! Exports: a shop's products as CSV (one row per variant, Shopify's column names, product
//! columns on a product's first row) and JSON Lines (one product per line, as the API shows it),
//! filtered like the listing, streamed over HTTP and on the command line; jobs, dead letters and
//! the audit log as CSV and JSON Lines; bad requests refused naming the field.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::catalog::{fixture, run, settings_env};

const TRICKY: &str = "Tee, \"the\" best\nsecond line";

/// CSV text as records keyed by column name.
fn records(csv_text: &str) -> (Vec<String>, Vec<BTreeMap<String, String>>) {
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|r| {
            header
                .iter()
                .cloned()
                .zip(r.unwrap().iter().map(str::to_owned))
                .collect()
        })
        .collect();
    (header, rows)
}

#[tokio::test]
async fn a_shops_products_export_as_csv_and_jsonl_over_http_and_the_command_line() {
    let f = fixture(60, 3).await;
    let (tricky_id, draft_id) = {
        let mut shop = f.sim.shop.lock();
        let mut ids = shop.catalog.products.keys().copied();
        let (a, b) = (ids.next().unwrap(), ids.nth(10).unwrap());
        let p = shop.catalog.products.get_mut(&a).unwrap();
        p.title = TRICKY.to_owned();
        p.description_html = "<p>a, b; \"c\"</p>".to_owned();
        shop.catalog.products.get_mut(&b).unwrap().status = "DRAFT".to_owned();
        (a, b)
    };
    let _worker = f.worker(&[]);
    f.pull(cowans_catalog::PullKind::Full).await;
    let base = f.api().await;
    let viewer = crate::support::api::key(&f.db.pool, "viewer").await;
    let http = reqwest::Client::new();
    let get = |path: String| {
        let (http, base, key) = (http.clone(), base.clone(), viewer.clone());
        async move {
            let r = http
                .get(format!("{base}{path}"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let headers = r.headers().clone();
            (status, headers, r.text().await.unwrap())
        }
    };

    // CSV: one row per variant, the product's columns on its first row.
    let (s, headers, csv_text) = get("/api/v1/shops/sim/products/export?format=csv".into()).await;
    assert_eq!(s, StatusCode::OK, "{csv_text}");
    assert!(
        headers[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        headers[reqwest::header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .contains("sim-products.csv")
    );
    let (header, rows) = records(&csv_text);
    assert_eq!(
        header[..7],
        [
            "Handle",
            "Title",
            "Body (HTML)",
            "Vendor",
            "Type",
            "Tags",
            "Status"
        ]
    );
    assert_eq!(rows.len(), 180, "one row per variant");
    let sim_products: BTreeMap<u64, cowans_shopsim::model::Product> =
        f.sim.shop.lock().catalog.products.clone();
    let mut by_product: BTreeMap<u64, Vec<&BTreeMap<String, String>>> = BTreeMap::new();
    for r in &rows {
        by_product
            .entry(r["Product ID"].parse().unwrap())
            .or_default()
            .push(r);
    }
    assert_eq!(
        by_product.keys().copied().collect::<Vec<_>>(),
        sim_products.keys().copied().collect::<Vec<_>>(),
        "every product, in id order, ids exact"
    );
    for (id, rows) in &by_product {
        let p = &sim_products[id];
        assert_eq!(rows[0]["Title"], p.title);
        assert_eq!(rows[0]["Status"], p.status.to_ascii_lowercase());
        assert_eq!(rows[0]["Tags"], p.tags.join(", "));
        assert_eq!(rows[0]["Option1 Name"], p.options[0].name);
        let variant_ids: Vec<u64> = rows
            .iter()
            .map(|r| r["Variant ID"].parse().unwrap())
            .collect();
        assert_eq!(
            variant_ids,
            p.variants.iter().map(|v| v.id).collect::<Vec<_>>()
        );
        for (r, v) in rows.iter().zip(&p.variants) {
            assert_eq!(r["Handle"], p.handle, "every row names its product");
            assert_eq!(r["Variant SKU"], v.sku.clone().unwrap_or_default());
            assert_eq!(r["Variant Price"], v.price);
            assert!(!r["Option1 Value"].is_empty());
        }
        assert!(
            rows[1..]
                .iter()
                .all(|r| r["Title"].is_empty() && r["Vendor"].is_empty()),
            "later rows carry the variant only"
        );
    }
    assert_eq!(by_product[&tricky_id][0]["Title"], TRICKY, "quoted exactly");
    assert_eq!(
        by_product[&tricky_id][0]["Body (HTML)"],
        "<p>a, b; \"c\"</p>"
    );

    // Filtered like the listing.
    let (s, _, draft) = get("/api/v1/shops/sim/products/export?status=draft".into()).await;
    assert_eq!(s, StatusCode::OK);
    let (_, draft) = records(&draft);
    assert_eq!(draft.len(), 3);
    assert!(
        draft
            .iter()
            .all(|r| r["Product ID"] == draft_id.to_string())
    );

    // JSON Lines: one product per line, exactly as the API shows it.
    let (s, headers, lines) = get("/api/v1/shops/sim/products/export?format=jsonl".into()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(headers[reqwest::header::CONTENT_TYPE], "application/jsonl");
    let lines: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 60);
    let (_, _, one) = get(format!("/api/v1/shops/sim/products/{tricky_id}")).await;
    let one: Value = serde_json::from_str(&one).unwrap();
    assert_eq!(lines[0], one);
    assert_eq!(lines[0]["title"], TRICKY);

    // Bad requests name the field.
    for (path, status, field) in [
        (
            "/api/v1/shops/sim/products/export?format=xml",
            422,
            "format",
        ),
        ("/api/v1/shops/sim/products/export?limit=5", 422, "limit"),
        (
            "/api/v1/shops/sim/products/export?status=gone",
            422,
            "status",
        ),
        ("/api/v1/shops/sim/products/export?colour=red", 422, "query"),
        ("/api/v1/shops/sim/products?format=csv", 422, "format"),
        ("/api/v1/shops/nope/products/export", 404, ""),
    ] {
        let (s, _, body) = get(path.to_owned()).await;
        assert_eq!(s.as_u16(), status, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        crate::support::api::assert_error_shape(
            &v,
            if status == 404 {
                "not_found"
            } else {
                "invalid"
            },
        );
        if !field.is_empty() {
            assert_eq!(v["error"]["details"]["field"], field, "{path}: {v}");
        }
    }

    // The command line writes the same bytes.
    let url = f.db.url();
    let mut env = settings_env();
    env.push(("COWANS__DATABASE__URL", &url));
    let (ok, out, err) = run(
        "cowans-api",
        &["shops", "export", "sim", "--format", "csv"],
        &env,
        "",
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(out, csv_text);
    let (ok, _, err) = run(
        "cowans-api",
        &["shops", "export", "sim", "--format", "xml"],
        &env,
        "",
    )
    .await;
    assert!(!ok && err.contains("--format"), "{err}");
    // Refused the same way as over HTTP, and an existing file is left alone.
    let dir = std::env::temp_dir().join(format!("cowans-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("keep.csv");
    std::fs::write(&file, "precious").unwrap();
    let path = file.to_str().unwrap();
    let (ok, _, err) = run(
        "cowans-api",
        &[
            "shops", "export", "sim", "--status", "gone", "--output", path,
        ],
        &env,
        "",
    )
    .await;
    assert!(!ok && err.contains("status"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "precious");
    let (ok, _, err) = run(
        "cowans-api",
        &[
            "shops", "export", "sim", "--status", "draft", "--output", path,
        ],
        &env,
        "",
    )
    .await;
    assert!(ok, "{err}");
    let (_, rows) = records(&std::fs::read_to_string(&file).unwrap());
    assert_eq!(rows.len(), 3, "the draft product's variants");
    std::fs::remove_dir_all(&dir).unwrap();

    // Where the catalog is not enabled, its commands say so instead of acting.
    let no_catalog: Vec<(&str, &str)> = env
        .iter()
        .map(|(k, v)| {
            if *k == "COWANS__APPS" {
                (*k, "demo")
            } else {
                (*k, *v)
            }
        })
        .collect();
    let (ok, _, err) = run("cowans-api", &["shops", "list"], &no_catalog, "").await;
    assert!(!ok && err.contains("not enabled"), "{err}");
}

#[tokio::test]
async fn jobs_dead_letters_and_the_audit_log_export_as_csv_and_jsonl() {
    let f = fixture(5, 1).await;
    // Two pulls' jobs; one of them dead (its shop's token refused).
    let bad = f.start(cowans_catalog::PullKind::Full).await;
    f.catalog
        .update_shop(
            &crate::support::catalog::actor(),
            f.shop.id,
            cowans_catalog::ShopUpdate {
                access_token: Some(secrecy::SecretString::from("shpat_refused_0000")),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let _worker = f.worker(&[]);
    let bad = f.finished(bad.id, std::time::Duration::from_secs(60)).await;
    let dead_id = cowans_core::JobId(bad.job_id.unwrap());
    crate::support::control_kinds::state_becomes(
        &f.db,
        dead_id,
        cowans_core::JobState::Dead,
        std::time::Duration::from_secs(30),
    )
    .await;

    let base = f.api().await;
    let viewer = crate::support::api::key(&f.db.pool, "viewer").await;
    let admin = crate::support::api::key(&f.db.pool, "admin").await;
    let http = reqwest::Client::new();
    let get = |path: &str, key: &str| {
        let req = http.get(format!("{base}{path}")).bearer_auth(key);
        async move {
            let r = req.send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };

    let (s, jobs) = get("/api/v1/jobs/export?format=jsonl&queue=catalog", &viewer).await;
    assert_eq!(s, StatusCode::OK, "{jobs}");
    let jobs: Vec<Value> = jobs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let listed = cowans_store::list_jobs(
        &f.db.pool,
        &cowans_store::JobFilter {
            queue: Some("catalog".into()),
            ..Default::default()
        },
        None,
        1000,
    )
    .await
    .unwrap();
    assert_eq!(
        jobs.iter()
            .map(|j| j["id"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        listed.iter().map(|j| j.id.0).collect::<Vec<_>>()
    );
    let (s, _) = get("/api/v1/jobs/export?state=lost", &viewer).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    let (s, dead) = get("/api/v1/queues/catalog/dead/export?format=csv", &viewer).await;
    assert_eq!(s, StatusCode::OK, "{dead}");
    let (header, dead) = records(&dead);
    assert_eq!(header[0], "id");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["id"], dead_id.0.to_string());
    assert_eq!(dead[0]["state"], "dead");
    assert!(dead[0]["last_error"].contains("unauthorized"), "{dead:?}");

    let (s, _) = get("/api/v1/audit/export", &viewer).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "the audit log is for admins");
    let (s, audit) = get("/api/v1/audit/export?format=csv", &admin).await;
    assert_eq!(s, StatusCode::OK, "{audit}");
    let (_, audit) = records(&audit);
    let actions: Vec<&str> = audit.iter().map(|r| r["action"].as_str()).collect();
    assert!(
        actions.contains(&"shop.add") && actions.contains(&"shop.update"),
        "{actions:?}"
    );
    let ids: Vec<i64> = audit.iter().map(|r| r["id"].parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first");
}
