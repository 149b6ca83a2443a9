//! Products through the client: every product paged once in update order (searches narrowed or
//! refused), userErrors surfaced and not retried, `productSet` replacing lists, and an
//! asynchronous `productSet` polled to completion.

// Test helpers may unwrap: a failure there is a test failure with its location.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use cowans_shopify::{Client, Gid, ShopifyError};
use cowans_shopsim::{Faults, ForcedUserError};
use futures::StreamExt;
use serde_json::{Value, json};

use common::{TOKEN, VERSION, client, control, faults, log, sim};

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
    // The 2026-10 shape: options with their values, variants naming their option values, the
    // SKU on the inventory item.
    let input = json!({"title": "Hat",
    "productOptions": [{"name": "Size", "values": [{"name": "XS"}, {"name": "XXL"}]}],
    "variants": [
        {"id": keep, "price": "12.50", "optionValues": [{"optionName": "Size", "name": "XS"}]},
        {"price": 3, "inventoryItem": {"sku": "NEW-1"}, "optionValues": [{"optionName": "Size", "name": "XXL"}]},
    ]});
    let a = client
        .mutate::<Value>(
            PRODUCT_SET,
            json!({"id": p.id.to_string(), "input": input}),
            true,
        )
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
async fn an_asynchronous_product_set_is_polled_to_completion() {
    let sim = sim(0, 1).await;
    let client = client(&sim);
    let input = json!({"title": "Async hat", "handle": "async-hat",
    "productOptions": [{"name": "Colour", "values": [{"name": "Red"}, {"name": "Blue"}]}],
    "variants": [
        {"inventoryItem": {"sku": "AH-1"}, "price": "9.99", "optionValues": [{"optionName": "Colour", "name": "Red"}]},
        {"inventoryItem": {"sku": "AH-2"}, "price": 11, "optionValues": [{"optionName": "Colour", "name": "Blue"}]},
    ]});
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
