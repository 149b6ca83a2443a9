//! The simulator's fidelity to Shopify: API versions, its clock, latency, bulk limits and the
//! bulk finish webhook; a bucket per app token; a merchant edit or stock moved between a read and
//! a write shows in `updatedAt` and fails a stale compare-and-swap.

// Test helpers may unwrap: a failure there is a test failure with its location.
#![allow(clippy::unwrap_used)]

// The client's tests and these share one set of helpers.
#[path = "../../cowans-shopify/tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use cowans_shopify::{Client, Gid, ShopifyError};
use cowans_shopsim::{Faults, SimConfig};
use futures::StreamExt;
use serde_json::{Value, json};

use common::{TOKEN, VERSION, client, control, faults, receiver, sim, wait_inbox};

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
