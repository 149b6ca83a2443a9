//! The Shopify client against the simulator over real HTTP: auth, pagination, cost and
//! throttling, pacing under sustained load, faults, userErrors and merchant edits.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use cowans_shopify::{Client, ClientConfig, Gid, LocalBucket, RetryPolicy, ShopifyError};
use cowans_shopsim::{Faults, ForcedUserError, Plan, Running, SimConfig};
use futures::StreamExt;
use serde_json::{Value, json};

const TOKEN: &str = "shpat_test_token_0123456789";
const VERSION: &str = "2026-10";

async fn sim(products: usize, variants: usize) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    cowans_shopsim::start(
        listener,
        &SimConfig {
            plan: Plan::Standard,
            tokens: vec![TOKEN.to_owned()],
            secret: "whsec".to_owned(),
            products,
            variants,
        },
    )
    .unwrap()
}

fn client(sim: &Running) -> Client {
    let mut cfg = ClientConfig::new(sim.base_url(), VERSION, TOKEN);
    cfg.retry = RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
    };
    Client::new(cfg).unwrap()
}

async fn control(sim: &Running, method: reqwest::Method, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .request(method, format!("{}/__sim/{path}", sim.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "control {path}: {}", r.status());
    r.json().await.unwrap_or(Value::Null)
}

async fn log(sim: &Running) -> Vec<Value> {
    control(sim, reqwest::Method::GET, "requests", json!(null))
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn faults(sim: &Running, f: Faults) {
    control(
        sim,
        reqwest::Method::PUT,
        "faults",
        serde_json::to_value(f).unwrap(),
    )
    .await;
}

#[tokio::test]
async fn a_missing_or_wrong_token_gets_shopifys_401_and_a_typed_error_without_the_token() {
    let sim = sim(1, 1).await;
    let url = format!("{}/admin/api/{VERSION}/graphql.json", sim.base_url());
    let r = reqwest::Client::new()
        .post(&url)
        .json(&json!({"query": "{ products(first: 1) { nodes { id } } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"errors":"[API] Invalid API key or access token (unrecognized login or wrong password)"}"#
    );
    let secret = "shpat_wrong_secret_value";
    let bad = Client::new(ClientConfig::new(sim.base_url(), VERSION, secret)).unwrap();
    let err = bad
        .query::<Value>("{ products(first: 1) { nodes { id } } }", json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, ShopifyError::Unauthorized), "{err:?}");
    assert!(!format!("{err} {err:?}").contains(secret));
    assert!(!format!("{:?}", ClientConfig::new("u", "v", secret)).contains(secret));
}

#[tokio::test]
async fn every_product_is_paged_once_in_update_order_with_ids_above_two_to_the_53() {
    let sim = sim(620, 2).await;
    control(&sim, reqwest::Method::POST, "plan", json!({"plan": "plus"})).await;
    let client = client(&sim);
    let pages: Vec<_> = client.product_pages(None, 250).collect().await;
    // Pages are capped so each request stays within the 1000-point maximum.
    let requests = log(&sim).await;
    assert_eq!(requests.len(), pages.len());
    assert!(
        requests
            .iter()
            .all(|r| r["requested_cost"].as_f64().unwrap() <= 1000.0 && r["outcome"] == "ok")
    );
    let products: Vec<_> = pages.into_iter().flat_map(|p| p.unwrap()).collect();
    assert_eq!(products.len(), 620);
    let mut ids: Vec<u64> = products.iter().map(|p| p.id.id).collect();
    assert!(ids.iter().all(|id| *id > 1 << 53));
    assert!(
        products
            .windows(2)
            .all(|w| w[0].updated_at <= w[1].updated_at)
    );
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 620, "no product twice");
    assert_eq!(products[0].variants.nodes.len(), 2);
    let v: &Gid = &products[0].variants.nodes[0].id;
    assert_eq!(v.kind, "ProductVariant");

    // A search narrows the scan; an unknown field is ignored (a full scan), as on Shopify.
    let last = products[599].updated_at.clone();
    let newer: Vec<_> = client
        .product_pages(Some(format!("updated_at:>'{last}'")), 250)
        .collect()
        .await;
    let newer: usize = newer.into_iter().map(|p| p.unwrap().len()).sum();
    assert_eq!(newer, 20);
    let raw: Value = reqwest::Client::new()
        .post(format!(
            "{}/admin/api/{VERSION}/graphql.json",
            sim.base_url()
        ))
        .header("X-Shopify-Access-Token", TOKEN)
        .json(&json!({"query": "{ products(first: 250, query: \"colour:red\") { nodes { id } } }"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        raw["data"]["products"]["nodes"].as_array().unwrap().len(),
        250,
        "ignored: a full scan"
    );
    // The client refuses such a search instead of silently scanning everything.
    let refused: Vec<_> = client
        .product_pages(Some("colour:red".into()), 250)
        .collect()
        .await;
    assert!(
        matches!(&refused[..], [Err(ShopifyError::Graphql(e))] if e[0].message.contains("colour")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn costs_are_reported_and_over_a_thousand_is_refused_on_both_sides() {
    let sim = sim(30, 1).await;
    let client = client(&sim);
    let a = client
        .query::<Value>("{ products(first: 50) { nodes { id title } } }", json!({}))
        .await
        .unwrap();
    let cost = a.cost.unwrap();
    assert_eq!(cost.requested_query_cost, Some(52.0), "2 + 50 × 1");
    assert_eq!(
        cost.actual_query_cost,
        Some(32.0),
        "30 products came back: 2 + 30 × 1"
    );
    assert_eq!(cost.throttle_status.maximum_available, 2000.0);
    assert_eq!(cost.throttle_status.restore_rate, 100.0);

    let huge = "{ products(first: 250) { nodes { id variants(first: 250) { nodes { id } } } } }";
    let before = log(&sim).await.len();
    let err = client.query::<Value>(huge, json!({})).await.unwrap_err();
    assert!(
        matches!(err, ShopifyError::MaxCostExceeded { .. }),
        "{err:?}"
    );
    assert_eq!(log(&sim).await.len(), before, "the client never sent it");
    let raw: Value = reqwest::Client::new()
        .post(format!(
            "{}/admin/api/{VERSION}/graphql.json",
            sim.base_url()
        ))
        .header("X-Shopify-Access-Token", TOKEN)
        .json(&json!({"query": huge}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raw["errors"][0]["extensions"]["code"], "MAX_COST_EXCEEDED");
    // Arrays over 250 are refused as Shopify does.
    let ids: Vec<String> = (0..251)
        .map(|i| format!("gid://shopify/Product/{i}"))
        .collect();
    let err = client
        .mutate::<Value>(
            "mutation($v: [ProductVariantsBulkInput!]!) { productVariantsBulkUpdate(productId: \"gid://shopify/Product/1\", variants: $v) { userErrors { message } } }",
            json!({"v": ids.iter().map(|i| json!({"id": i})).collect::<Vec<_>>()}),
            false,
        )
        .await
        .unwrap_err();
    assert!(
        format!("{err}").contains("greater than the maximum allowed of 250"),
        "{err}"
    );
}

#[tokio::test]
async fn a_throttled_answer_is_http_200_and_the_client_waits_it_out() {
    let sim = sim(5, 1).await;
    control(
        &sim,
        reqwest::Method::POST,
        "plan",
        json!({"bucket_size": 100.0, "restore_rate": 50.0, "available": 5.0}),
    )
    .await;
    let raw = reqwest::Client::new()
        .post(format!(
            "{}/admin/api/{VERSION}/graphql.json",
            sim.base_url()
        ))
        .header("X-Shopify-Access-Token", TOKEN)
        .json(&json!({"query": "{ products(first: 10) { nodes { id } } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 200);
    let body: Value = raw.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "THROTTLED");
    assert!(body.get("data").is_none());
    assert_eq!(body["extensions"]["cost"]["actualQueryCost"], Value::Null);

    let client = client(&sim);
    let t0 = Instant::now();
    let a = client
        .query::<Value>("{ products(first: 40) { nodes { id } } }", json!({}))
        .await
        .unwrap();
    assert!(a.attempts >= 2, "throttled first, then paced");
    assert!(
        t0.elapsed() >= Duration::from_millis(500),
        "waited for ~77 points at 50/s"
    );
    // A query needing more than the whole bucket can never run: a clear error, not a long wait.
    let err = client
        .query::<Value>("{ products(first: 200) { nodes { id } } }", json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ShopifyError::MaxCostExceeded { max, .. } if max == 100.0),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_sustained_push_uses_the_restore_rate_with_almost_no_throttles() {
    let sim = sim(40, 1).await;
    let client = client(&sim);
    let products: Vec<Gid> = client
        .product_pages(None, 50)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flat_map(|p| p.unwrap())
        .map(|p| p.id)
        .collect();
    // Small bucket so the run is dominated by the restore rate, not the initial burst.
    control(
        &sim,
        reqwest::Method::POST,
        "plan",
        json!({"bucket_size": 100.0, "restore_rate": 100.0}),
    )
    .await;
    control(&sim, reqwest::Method::DELETE, "requests", json!(null)).await;
    let done = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let run_for = Duration::from_secs(4);
    // Two clients (two "workers" of the shop) pacing against one shared bucket that has learnt
    // nothing yet: without the sharing each would spend the whole budget, and without tracking
    // the first (unpaced) requests the shared state would drift optimistic (both seen failing).
    let bucket: Arc<dyn cowans_shopify::CostBucket> = Arc::new(LocalBucket::new());
    let shared = |_| {
        let mut cfg = ClientConfig::new(sim.base_url(), VERSION, TOKEN);
        cfg.retry.base_delay = Duration::from_millis(20);
        Client::with_bucket(cfg, bucket.clone()).unwrap()
    };
    let clients = [shared(0), shared(1)];
    let mut workers = Vec::new();
    for w in 0..4 {
        let (client, products, done) = (clients[w % 2].clone(), products.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            let mut i = w;
            while t0.elapsed() < run_for {
                let id = &products[i % products.len()];
                let a = client
                    .mutate::<Value>(
                        "mutation($p: ProductUpdateInput!) { productUpdate(product: $p) { product { id } userErrors { field message } } }",
                        json!({"p": {"id": id.to_string(), "title": format!("T{i}")}}),
                        true,
                    )
                    .await
                    .unwrap();
                Client::check_user_errors(&a.data["productUpdate"]).unwrap();
                done.fetch_add(1, Ordering::Relaxed);
                i += 4;
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let points = done.load(Ordering::Relaxed) as f64 * 10.0;
    let log = log(&sim).await;
    let throttled = log.iter().filter(|r| r["outcome"] == "throttled").count();
    // The initial bucket (100 points) is spent on top of the restore rate.
    let use_of_rate = (points - 100.0) / elapsed / 100.0;
    println!(
        "sustained push: {points} points in {elapsed:.2} s = {:.1}% of the restore rate, {throttled} of {} answers throttled",
        use_of_rate * 100.0,
        log.len()
    );
    assert!(
        use_of_rate >= 0.90,
        "used {:.1}% of the restore rate",
        use_of_rate * 100.0
    );
    assert!(
        throttled as f64 <= 0.01 * log.len() as f64,
        "{throttled} of {} throttled",
        log.len()
    );
}

#[tokio::test]
async fn faults_are_retried_for_idempotent_calls_and_surfaced_otherwise() {
    let sim = sim(3, 1).await;
    let client = client(&sim);
    let q = "{ products(first: 3) { nodes { id } } }";
    for (f, name) in [
        (
            Faults {
                internal_errors: 2,
                ..Default::default()
            },
            "internal",
        ),
        (
            Faults {
                unavailable: 2,
                ..Default::default()
            },
            "503 html",
        ),
        (
            Faults {
                resets: 2,
                ..Default::default()
            },
            "connection reset",
        ),
        (
            Faults {
                throttles: 2,
                ..Default::default()
            },
            "forced throttle",
        ),
    ] {
        faults(&sim, f).await;
        let a = client
            .query::<Value>(q, json!({}))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(a.attempts, 3, "{name}: two failures, then success");
    }
    // A non-idempotent mutation is not retried: the caller sees the typed error.
    let create_once = async |f: Faults| {
        faults(&sim, f).await;
        client
            .mutate::<Value>(
                "mutation { productCreate(product: {title: \"x\"}) { userErrors { message } } }",
                json!({}),
                false,
            )
            .await
            .unwrap_err()
    };
    let err = create_once(Faults {
        internal_errors: 1,
        ..Default::default()
    })
    .await;
    assert!(matches!(err, ShopifyError::Internal { .. }), "{err:?}");
    let err = create_once(Faults {
        unavailable: 1,
        ..Default::default()
    })
    .await;
    assert!(
        matches!(err, ShopifyError::Server { status: 503 }),
        "{err:?}"
    );
    // The retry budget is bounded.
    faults(
        &sim,
        Faults {
            internal_errors: 10,
            ..Default::default()
        },
    )
    .await;
    let err = client.query::<Value>(q, json!({})).await.unwrap_err();
    match err {
        ShopifyError::RetriesExhausted { attempts, last } => {
            assert_eq!(attempts, 5);
            assert!(matches!(*last, ShopifyError::Internal { .. }));
        }
        other => panic!("{other:?}"),
    }
}

const PRODUCT_SET: &str = "mutation($id: ID, $input: ProductSetInput!) { productSet(identifier: {id: $id}, input: $input, synchronous: true) { product { id title variants(first: 10) { nodes { id sku price } } } userErrors { field message code } } }";

#[tokio::test]
async fn user_errors_are_surfaced_and_product_set_replaces_lists() {
    let sim = sim(1, 3).await;
    let client = client(&sim);
    let p = client
        .product_pages(None, 1)
        .next()
        .await
        .unwrap()
        .unwrap()
        .remove(0);
    assert_eq!(p.variants.nodes.len(), 3);
    let keep = p.variants.nodes[0].id.to_string();
    let a = client
        .mutate::<Value>(PRODUCT_SET, json!({"id": p.id.to_string(), "input": {"title": "Hat", "variants": [{"id": keep, "price": "12.50"}, {"sku": "NEW-1", "price": 3}]}}), true)
        .await
        .unwrap();
    Client::check_user_errors(&a.data["productSet"]).unwrap();
    let variants = a.data["productSet"]["product"]["variants"]["nodes"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(variants.len(), 2, "the two variants left out were deleted");
    assert_eq!(variants[0]["id"], json!(keep));
    assert_eq!(variants[0]["price"], "12.50");
    assert_eq!(variants[1]["sku"], "NEW-1");

    let forced = ForcedUserError {
        mutation: "productSet".into(),
        field: vec![
            "input".into(),
            "variants".into(),
            "0".into(),
            "price".into(),
        ],
        message: "Price is invalid".into(),
        code: Some("INVALID_VARIANT".into()),
    };
    faults(
        &sim,
        Faults {
            user_errors: vec![forced],
            ..Default::default()
        },
    )
    .await;
    let a = client
        .mutate::<Value>(
            PRODUCT_SET,
            json!({"id": p.id.to_string(), "input": {"title": "Hat 2"}}),
            true,
        )
        .await
        .unwrap();
    match Client::check_user_errors(&a.data["productSet"]).unwrap_err() {
        ShopifyError::UserErrors(errors) => {
            assert_eq!(
                errors[0].field.as_deref(),
                Some(
                    &[
                        "input".to_owned(),
                        "variants".to_owned(),
                        "0".to_owned(),
                        "price".to_owned()
                    ][..]
                )
            );
            assert_eq!(errors[0].code.as_deref(), Some("INVALID_VARIANT"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(a.attempts, 1, "userErrors are not retried");
}

#[tokio::test]
async fn a_merchant_edit_between_read_and_write_is_visible_to_the_caller() {
    let sim = sim(1, 1).await;
    let client = client(&sim);
    let base = client
        .product_pages(None, 1)
        .next()
        .await
        .unwrap()
        .unwrap()
        .remove(0);
    // The merchant edits the product in the admin after our read.
    control(
        &sim,
        reqwest::Method::POST,
        "clock",
        json!({"advance_ms": 2000}),
    )
    .await;
    control(
        &sim,
        reqwest::Method::POST,
        &format!("products/{}/edit", base.id.id),
        json!({"title": "Merchant title"}),
    )
    .await;
    let now = client
        .product_pages(None, 1)
        .next()
        .await
        .unwrap()
        .unwrap()
        .remove(0);
    assert_ne!(now.updated_at, base.updated_at, "updatedAt moved");
    assert_eq!(now.title, "Merchant title");

    // Stock moved by an order: updatedAt moves too, and a compare-and-swap on the old quantity fails.
    let q = "query($id: ID!) { product(id: $id) { variants(first: 1) { nodes { inventoryQuantity inventoryItem { id } } } } }";
    let a = client
        .query::<Value>(q, json!({"id": base.id.to_string()}))
        .await
        .unwrap();
    let item = a.data["product"]["variants"]["nodes"][0]["inventoryItem"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let qty = a.data["product"]["variants"]["nodes"][0]["inventoryQuantity"]
        .as_i64()
        .unwrap();
    let item_id: Gid = item.parse().unwrap();
    control(
        &sim,
        reqwest::Method::POST,
        "clock",
        json!({"advance_ms": 2000}),
    )
    .await;
    control(
        &sim,
        reqwest::Method::POST,
        "inventory",
        json!({"inventory_item_id": item_id.id, "quantity": qty - 1}),
    )
    .await;
    let after = client
        .product_pages(None, 1)
        .next()
        .await
        .unwrap()
        .unwrap()
        .remove(0);
    assert_ne!(
        after.updated_at, now.updated_at,
        "inventory changes bump updatedAt"
    );
    let set = "mutation($i: InventorySetQuantitiesInput!) { inventorySetQuantities(input: $i) { userErrors { field message code } } }";
    let a = client
        .mutate::<Value>(set, json!({"i": {"name": "available", "reason": "correction", "quantities": [{"inventoryItemId": item, "locationId": "gid://shopify/Location/1", "quantity": 50, "changeFromQuantity": qty}]}}), true)
        .await
        .unwrap();
    match Client::check_user_errors(&a.data["inventorySetQuantities"]).unwrap_err() {
        ShopifyError::UserErrors(e) => {
            assert_eq!(e[0].code.as_deref(), Some("CHANGE_FROM_QUANTITY_STALE"))
        }
        other => panic!("{other:?}"),
    }
    let a = client
        .mutate::<Value>(set, json!({"i": {"name": "available", "reason": "correction", "quantities": [{"inventoryItemId": item, "locationId": "gid://shopify/Location/1", "quantity": 50, "changeFromQuantity": qty - 1}]}}), true)
        .await
        .unwrap();
    Client::check_user_errors(&a.data["inventorySetQuantities"]).unwrap();
}

#[tokio::test]
async fn a_hundred_thousand_product_bulk_export_streams_with_flat_memory() {
    let sim = sim(100_000, 2).await;
    let client = client(&sim);
    let query = "{ products { edges { node { id title updatedAt variants { edges { node { id sku price } } } } } } }";
    let t0 = Instant::now();
    let op = client.bulk_query_start(query).await.unwrap();
    let op = client
        .bulk_wait(&op.id, Duration::from_millis(100), Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(op.status, "COMPLETED", "{op:?}");
    assert_eq!(op.object_count, "300000");
    let ran = t0.elapsed();
    let before = cowans_tests::rss_kib();
    let mut peak = before;
    let t1 = Instant::now();
    let (mut parents, mut children) = (0u64, 0u64);
    let mut seen = std::collections::HashSet::new();
    let mut child_before_parent = 0u64;
    let stats = client
        .bulk_download(op.url.as_deref().unwrap(), |item| match item {
            cowans_shopify::BulkItem::Parent(v) => {
                parents += 1;
                if parents % 5000 == 0 {
                    peak = peak.max(cowans_tests::rss_kib());
                }
                seen.insert(v["id"].as_str().unwrap().parse::<Gid>().unwrap().id);
            }
            cowans_shopify::BulkItem::Child { parent, value } => {
                children += 1;
                assert!(value.get("__parentId").is_none() && parent.kind == "Product");
                if !seen.contains(&parent.id) {
                    child_before_parent += 1;
                }
            }
        })
        .await
        .unwrap();
    let download = t1.elapsed();
    let grew_kib = peak.saturating_sub(before);
    println!(
        "bulk export: 100000 products, {} lines, {} bytes; operation {:.2} s, download+parse {:.2} s; RSS {before} KiB before, peak {peak} KiB during (+{grew_kib}); max orphans held {}; longest line {} B",
        stats.lines,
        stats.bytes,
        ran.as_secs_f64(),
        download.as_secs_f64(),
        stats.max_orphans,
        stats.max_line
    );
    assert_eq!((parents, children), (100_000, 200_000));
    assert_eq!(
        child_before_parent, 0,
        "every child is handed out after its parent"
    );
    assert!(
        stats.max_orphans >= 2,
        "the simulator really put children first"
    );
    assert!(
        stats.max_orphans <= 2,
        "orphans are released as soon as their parent arrives"
    );
    // The file is ~25 MB; holding it (or its parsed values) would show here.
    assert!(
        grew_kib < 12 * 1024,
        "peak memory grew {grew_kib} KiB while downloading"
    );
}

#[derive(Default)]
struct Inbox {
    accepted: Vec<(String, Value)>,
    rejected: usize,
    duplicates: usize,
    dedup: Option<cowans_shopify::webhook::Dedup>,
}

/// A webhook receiver as an app would write it: verify the HMAC over the raw body first,
/// de-duplicate by webhook id, then accept.
async fn receiver(secret: &'static str) -> (String, Arc<std::sync::Mutex<Inbox>>) {
    use axum::{body::Bytes, extract::State, http::HeaderMap, http::StatusCode, routing::post};
    let inbox = Arc::new(std::sync::Mutex::new(Inbox {
        dedup: Some(cowans_shopify::webhook::Dedup::new(10_000)),
        ..Default::default()
    }));
    async fn handle(
        State((secret, inbox)): State<(&'static str, Arc<std::sync::Mutex<Inbox>>)>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        let h = cowans_shopify::webhook::WebhookHeaders::parse(|n| headers.get(n)?.to_str().ok());
        let mut inbox = inbox.lock().unwrap();
        let Ok(h) = h else {
            inbox.rejected += 1;
            return StatusCode::BAD_REQUEST;
        };
        if !cowans_shopify::webhook::verify(secret.as_bytes(), &body, &h.hmac) {
            inbox.rejected += 1;
            return StatusCode::UNAUTHORIZED;
        }
        if !inbox.dedup.as_mut().unwrap().first_time(&h.webhook_id) {
            inbox.duplicates += 1;
            return StatusCode::OK;
        }
        let v: Value = serde_json::from_slice(&body).unwrap();
        inbox.accepted.push((h.topic, v));
        StatusCode::OK
    }
    let app = axum::Router::new()
        .route("/hooks", post(handle))
        .with_state((secret, inbox.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hooks"), inbox)
}

async fn wait_inbox(inbox: &Arc<std::sync::Mutex<Inbox>>, what: &str, ok: impl Fn(&Inbox) -> bool) {
    let t0 = Instant::now();
    while !ok(&inbox.lock().unwrap()) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn webhooks_are_signed_retried_deduplicated_reordered_and_forgeries_rejected() {
    let sim = sim(0, 1).await;
    let client = client(&sim);
    let (url, inbox) = receiver("whsec").await;
    for topic in ["PRODUCTS_CREATE", "PRODUCTS_UPDATE", "PRODUCTS_DELETE"] {
        let a = client
            .mutate::<Value>(
                "mutation($t: WebhookSubscriptionTopic!, $u: String!) { webhookSubscriptionCreate(topic: $t, webhookSubscription: {callbackUrl: $u}) { webhookSubscription { id } userErrors { message } } }",
                json!({"t": topic, "u": url}),
                false,
            )
            .await
            .unwrap();
        Client::check_user_errors(&a.data["webhookSubscriptionCreate"]).unwrap();
    }
    // First delivery signed with a wrong secret: rejected, then retried correctly signed.
    faults(
        &sim,
        Faults {
            webhook_bad_signatures: 1,
            ..Default::default()
        },
    )
    .await;
    let a = client
        .mutate::<Value>("mutation { productCreate(product: {title: \"Hat\"}) { product { id } userErrors { message } } }", json!({}), false)
        .await
        .unwrap();
    let id: Gid = a.data["productCreate"]["product"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    wait_inbox(&inbox, "the create after a retry", |i| {
        i.accepted.len() == 1
    })
    .await;
    {
        let i = inbox.lock().unwrap();
        assert_eq!(i.rejected, 1, "the badly signed attempt was refused");
        assert_eq!(i.accepted[0].0, "products/create");
        assert_eq!(
            i.accepted[0].1["id"].as_u64(),
            Some(id.id),
            "numeric ids above 2^53 are exact in the payload"
        );
    }
    let update = |title: &'static str| {
        let (client, id) = (client.clone(), id.clone());
        async move {
            client
                .mutate::<Value>(
                    "mutation($p: ProductUpdateInput!) { productUpdate(product: $p) { userErrors { message } } }",
                    json!({"p": {"id": id.to_string(), "title": title}}),
                    true,
                )
                .await
                .unwrap();
        }
    };
    // A duplicate delivery (same webhook id) is recognised.
    faults(
        &sim,
        Faults {
            webhook_duplicates: 1,
            ..Default::default()
        },
    )
    .await;
    update("Hat 2").await;
    wait_inbox(&inbox, "the duplicate", |i| {
        i.duplicates == 1 && i.accepted.len() == 2
    })
    .await;
    // A dropped delivery never arrives (reconciliation must catch it); the simulator says so.
    faults(
        &sim,
        Faults {
            webhook_drops: 1,
            ..Default::default()
        },
    )
    .await;
    update("Hat 3").await;
    // Reordered: two updates a second apart arrive newest first; updated_at puts them right.
    faults(
        &sim,
        Faults {
            webhook_reorder: 2,
            ..Default::default()
        },
    )
    .await;
    update("Hat 4").await;
    control(
        &sim,
        reqwest::Method::POST,
        "clock",
        json!({"advance_ms": 1000}),
    )
    .await;
    update("Hat 5").await;
    wait_inbox(&inbox, "the reordered pair", |i| i.accepted.len() == 4).await;
    {
        let i = inbox.lock().unwrap();
        let titles: Vec<&str> = i.accepted[2..]
            .iter()
            .map(|(_, v)| v["title"].as_str().unwrap())
            .collect();
        assert_eq!(titles, ["Hat 5", "Hat 4"], "delivered newest first");
        let latest = i.accepted[2..]
            .iter()
            .max_by_key(|(_, v)| v["updated_at"].as_str().unwrap().to_owned())
            .unwrap();
        assert_eq!(
            latest.1["title"], "Hat 5",
            "ordering by updated_at recovers the truth"
        );
        assert!(
            i.accepted.iter().all(|(_, v)| v["title"] != "Hat 3"),
            "the dropped one never came"
        );
    }
    let log = control(&sim, reqwest::Method::GET, "webhooks", json!(null)).await;
    assert!(log.as_array().unwrap().iter().any(|d| d["dropped"] == true));
    client
        .mutate::<Value>("mutation($i: ProductDeleteInput!) { productDelete(input: $i) { userErrors { message } } }", json!({"i": {"id": id.to_string()}}), false)
        .await
        .unwrap();
    wait_inbox(&inbox, "the delete", |i| i.accepted.len() == 5).await;
    assert_eq!(inbox.lock().unwrap().accepted[4].1, json!({"id": id.id}));

    // A forged or altered delivery sent straight to the receiver is refused.
    let body = r#"{"id":1,"title":"forged"}"#;
    let good_sig = cowans_shopify::webhook::sign(b"whsec", br#"{"id":1,"title":"original"}"#);
    let r = reqwest::Client::new()
        .post(&url)
        .header("x-shopify-topic", "products/update")
        .header("x-shopify-shop-domain", "x.myshopify.com")
        .header("x-shopify-webhook-id", "forged-1")
        .header("x-shopify-hmac-sha256", good_sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(inbox.lock().unwrap().accepted.len(), 5);
}

#[tokio::test]
async fn a_bulk_mutation_runs_from_a_staged_upload_and_results_map_back_by_line_number() {
    let sim = sim(300, 1).await;
    let client = client(&sim);
    let mut products: Vec<Gid> = Vec::new();
    let mut pages = client.product_pages(None, 250);
    while let Some(page) = pages.next().await {
        products.extend(page.unwrap().into_iter().map(|p| p.id));
    }
    drop(pages);
    assert_eq!(products.len(), 300);
    // Line 7 names a product that does not exist: its userErrors come back on line 7.
    let variables: Vec<Value> = products
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let id = if i == 7 {
                "gid://shopify/Product/1".to_owned()
            } else {
                id.to_string()
            };
            json!({"p": {"id": id, "title": format!("Bulk {i}")}})
        })
        .collect();
    let mutation = "mutation($p: ProductUpdateInput!) { productUpdate(product: $p) { product { id title } userErrors { field message } } }";
    let op = client
        .bulk_mutation_start(mutation, variables)
        .await
        .unwrap();
    let op = client
        .bulk_wait(&op.id, Duration::from_millis(50), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(op.status, "COMPLETED", "{op:?}");
    let mut by_line: Vec<Option<Value>> = vec![None; 300];
    let mut order = Vec::new();
    client
        .bulk_mutation_results(op.url.as_deref().unwrap(), |line, v| {
            order.push(line);
            by_line[line] = Some(v);
        })
        .await
        .unwrap();
    assert!(
        order.windows(2).any(|w| w[0] > w[1]),
        "results came back out of input order"
    );
    for (i, r) in by_line.iter().enumerate() {
        let r = r
            .as_ref()
            .unwrap_or_else(|| panic!("no result for line {i}"));
        let payload = &r["data"]["productUpdate"];
        if i == 7 {
            assert!(
                Client::check_user_errors(payload).is_err(),
                "line 7's error maps back to line 7"
            );
        } else {
            assert_eq!(payload["product"]["title"], format!("Bulk {i}"));
            assert_eq!(payload["product"]["id"], json!(products[i].to_string()));
        }
    }
}

#[tokio::test]
async fn small_mutations_are_batched_with_aliases_up_to_the_cost_cap() {
    let sim = sim(150, 1).await;
    control(&sim, reqwest::Method::POST, "plan", json!({"plan": "plus"})).await;
    let client = client(&sim);
    let mut ids: Vec<Gid> = Vec::new();
    let mut pages = client.product_pages(None, 250);
    while let Some(page) = pages.next().await {
        ids.extend(page.unwrap().into_iter().map(|p| p.id));
    }
    drop(pages);
    control(&sim, reqwest::Method::DELETE, "requests", json!(null)).await;
    let m = cowans_shopify::AliasedMutation {
        field: "productUpdate",
        arg: "product",
        arg_type: "ProductUpdateInput!",
        selection: "product { id title } userErrors { field message }",
    };
    let inputs: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| json!({"id": id.to_string(), "title": format!("A{i}")}))
        .collect();
    let out = client.mutate_aliased(&m, inputs, true).await.unwrap();
    assert_eq!(out.len(), 150);
    assert!(
        out.iter()
            .enumerate()
            .all(|(i, p)| p["product"]["title"] == format!("A{i}")),
        "answers in input order"
    );
    let log = log(&sim).await;
    let sizes: Vec<usize> = log
        .iter()
        .map(|r| r["root_fields"].as_array().unwrap().len())
        .collect();
    assert_eq!(
        sizes,
        [100, 50],
        "100 mutations × 10 points fill one request"
    );
    assert!(
        log.iter()
            .all(|r| r["requested_cost"].as_f64().unwrap() <= 1000.0)
    );
}

#[tokio::test]
async fn an_asynchronous_product_set_is_polled_to_completion() {
    let sim = sim(0, 1).await;
    let client = client(&sim);
    let input = json!({"title": "Async hat", "handle": "async-hat", "variants": [{"sku": "AH-1", "price": "9.99"}, {"sku": "AH-2", "price": 11}]});
    let t0 = Instant::now();
    let product = client.product_set(None, input, false).await.unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(500),
        "waited for CREATED → ACTIVE → COMPLETE"
    );
    assert_eq!(product["title"], "Async hat");
    assert_eq!(product["variants"]["nodes"].as_array().unwrap().len(), 2);
    let ops = log(&sim).await;
    assert!(
        ops.iter()
            .filter(|r| r["root_fields"] == json!(["productOperation"]))
            .count()
            >= 3
    );
    // The same handle again updates the product instead of creating a second one.
    let again = client
        .product_set(
            Some(json!({"handle": "async-hat"})),
            json!({"title": "Async hat v2"}),
            true,
        )
        .await
        .unwrap();
    assert_eq!(
        (again["id"].clone(), again["title"].clone()),
        (product["id"].clone(), json!("Async hat v2"))
    );
}

#[tokio::test]
async fn the_simulator_honours_versions_its_clock_latency_and_bulk_limits() {
    let sim = sim(2000, 1).await;
    let http = reqwest::Client::new();
    let post = |version: &str, query: &str| {
        http.post(format!(
            "{}/admin/api/{version}/graphql.json",
            sim.base_url()
        ))
        .header("X-Shopify-Access-Token", TOKEN)
        .json(&json!({ "query": query }))
        .send()
    };
    // An unknown version falls forward to the oldest supported one, and the header says so.
    let r = post("2019-01", "{ products(first: 1) { nodes { id } } }")
        .await
        .unwrap();
    assert_eq!(r.headers()["x-shopify-api-version"], "2025-04");
    let r = post(VERSION, "{ products(first: 1) { nodes { id } } }")
        .await
        .unwrap();
    assert_eq!(r.headers()["x-shopify-api-version"], VERSION);

    // The bucket refills with the simulator's clock.
    control(
        &sim,
        reqwest::Method::POST,
        "plan",
        json!({"available": 0.0}),
    )
    .await;
    let b = control(&sim, reqwest::Method::GET, "bucket", json!(null)).await;
    assert!(b["currently_available"].as_f64().unwrap() < 5.0);
    control(
        &sim,
        reqwest::Method::POST,
        "clock",
        json!({"advance_ms": 3000}),
    )
    .await;
    let b = control(&sim, reqwest::Method::GET, "bucket", json!(null)).await;
    assert!(b["currently_available"].as_f64().unwrap() >= 300.0, "{b}");

    // Latency is injected.
    faults(
        &sim,
        Faults {
            latency_ms: 300,
            ..Default::default()
        },
    )
    .await;
    let t0 = Instant::now();
    post(VERSION, "{ products(first: 1) { nodes { id } } }")
        .await
        .unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(300));
    faults(&sim, Faults::default()).await;

    // At most five bulk queries at once; a sixth is refused with a userError; one is cancelled;
    // each finish is announced by a bulk_operations/finish webhook.
    let client = client(&sim);
    let (url, inbox) = receiver("whsec").await;
    client
        .mutate::<Value>(
            "mutation($u: String!) { webhookSubscriptionCreate(topic: BULK_OPERATIONS_FINISH, webhookSubscription: {callbackUrl: $u}) { userErrors { message } } }",
            json!({"u": url}),
            false,
        )
        .await
        .unwrap();
    sim.shop.lock().bulk_concurrency = 1;
    faults(
        &sim,
        Faults {
            bulk_delay_ms: 2000,
            ..Default::default()
        },
    )
    .await;
    let q = "{ products { edges { node { id title } } } }";
    let first = client.bulk_query_start(q).await.unwrap();
    match client.bulk_query_start(q).await {
        Err(ShopifyError::UserErrors(e)) => {
            assert_eq!(e[0].code.as_deref(), Some("OPERATION_IN_PROGRESS"))
        }
        other => panic!("a second bulk query while one runs: {other:?}"),
    }
    let cancel = client
        .mutate::<Value>("mutation($id: ID!) { bulkOperationCancel(id: $id) { bulkOperation { status } userErrors { message } } }", json!({"id": first.id.to_string()}), false)
        .await
        .unwrap();
    Client::check_user_errors(&cancel.data["bulkOperationCancel"]).unwrap();
    let status = client
        .bulk_wait(
            &first.id,
            Duration::from_millis(20),
            Duration::from_secs(10),
        )
        .await
        .unwrap()
        .status;
    assert_eq!(status, "CANCELED");
    wait_inbox(&inbox, "the finish webhook", |i| {
        i.accepted
            .iter()
            .any(|(t, _)| t == "bulk_operations/finish")
    })
    .await;
    let i = inbox.lock().unwrap();
    let (_, finish) = i
        .accepted
        .iter()
        .find(|(t, _)| t == "bulk_operations/finish")
        .unwrap();
    assert_eq!(finish["admin_graphql_api_id"], json!(first.id.to_string()));
    assert_eq!(finish["type"], "query");
}

#[tokio::test]
async fn each_app_token_has_its_own_bucket() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = cowans_shopsim::start(
        listener,
        &SimConfig {
            tokens: vec!["app-a".into(), "app-b".into()],
            products: 60,
            ..SimConfig::default()
        },
    )
    .unwrap();
    control(
        &sim,
        reqwest::Method::POST,
        "plan",
        json!({"bucket_size": 100.0, "restore_rate": 1.0}),
    )
    .await;
    let raw = |token: &'static str| {
        reqwest::Client::new()
            .post(format!(
                "{}/admin/api/{VERSION}/graphql.json",
                sim.base_url()
            ))
            .header("X-Shopify-Access-Token", token)
            .json(&json!({"query": "{ products(first: 40) { nodes { id } } }"}))
            .send()
    };
    let code = |v: &Value| {
        v["errors"][0]["extensions"]["code"]
            .as_str()
            .map(str::to_owned)
    };
    let a1: Value = raw("app-a").await.unwrap().json().await.unwrap();
    let a2: Value = raw("app-a").await.unwrap().json().await.unwrap();
    let a3: Value = raw("app-a").await.unwrap().json().await.unwrap();
    assert_eq!(code(&a1), None);
    assert_eq!(code(&a3), Some("THROTTLED".into()), "{a2} {a3}");
    let b1: Value = raw("app-b").await.unwrap().json().await.unwrap();
    assert_eq!(
        code(&b1),
        None,
        "app B's bucket is untouched by app A: {b1}"
    );
}
