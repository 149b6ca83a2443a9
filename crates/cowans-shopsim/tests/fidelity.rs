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

/// The id of the shop's first location (`locations`).
async fn location(client: &Client) -> String {
    let a = client
        .query::<Value>(
            "{ locations(first: 5) { nodes { id name isActive } } }",
            json!({}),
        )
        .await
        .unwrap();
    a.data["locations"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
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
    assert_eq!(r.headers()["x-shopify-api-version"], "2026-01");
    // 2025-10 was retired on 2026-10-01 (a version is supported for 12 months).
    let r = post("2025-10", "{ products(first: 1) { nodes { id } } }")
        .await
        .unwrap();
    assert_eq!(r.headers()["x-shopify-api-version"], "2026-01");
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
    // Emptied (it also refills in real time, 100 points a second: a margin of a second for a
    // loaded machine, well below the 300 the clock's 3 s add next).
    let b = control(&sim, reqwest::Method::GET, "bucket", json!(null)).await;
    let before = b["currently_available"].as_f64().unwrap();
    assert!(before < 100.0, "{b}");
    control(
        &sim,
        reqwest::Method::POST,
        "clock",
        json!({"advance_ms": 3000}),
    )
    .await;
    let b = control(&sim, reqwest::Method::GET, "bucket", json!(null)).await;
    assert!(
        b["currently_available"].as_f64().unwrap() >= before + 300.0,
        "{b}"
    );

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
        .webhook_subscription_create("BULK_OPERATIONS_FINISH", &url)
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
    let location = location(&client).await;
    let set = "mutation($i: InventorySetQuantitiesInput!, $k: String!) { inventorySetQuantities(input: $i) @idempotent(key: $k) { userErrors { field message code } } }";
    let a = client
        .mutate::<Value>(set, json!({"k": "cas-1", "i": {"name": "available", "reason": "correction", "quantities": [{"inventoryItemId": item, "locationId": location, "quantity": 50, "changeFromQuantity": qty}]}}), true)
        .await
        .unwrap();
    match Client::check_user_errors(&a.data["inventorySetQuantities"]).unwrap_err() {
        ShopifyError::UserErrors(e) => {
            assert_eq!(e[0].code.as_deref(), Some("CHANGE_FROM_QUANTITY_STALE"))
        }
        other => panic!("{other:?}"),
    }
    let a = client
        .mutate::<Value>(set, json!({"k": "cas-2", "i": {"name": "available", "reason": "correction", "quantities": [{"inventoryItemId": item, "locationId": location, "quantity": 50, "changeFromQuantity": qty - 1}]}}), true)
        .await
        .unwrap();
    Client::check_user_errors(&a.data["inventorySetQuantities"]).unwrap();
}

/// One GraphQL request at API `version`, as any app would send it; the whole JSON answer.
async fn gql(sim: &cowans_shopsim::Running, version: &str, query: &str, variables: Value) -> Value {
    reqwest::Client::new()
        .post(format!(
            "{}/admin/api/{version}/graphql.json",
            sim.base_url()
        ))
        .header("X-Shopify-Access-Token", TOKEN)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The codes of a payload's userErrors.
fn codes(payload: &Value) -> Vec<String> {
    payload["userErrors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap_or_default().to_owned())
        .collect()
}

const SET: &str = "mutation($input: ProductSetInput!, $identifier: ProductSetIdentifiers, $sync: Boolean) { \
  productSet(input: $input, identifier: $identifier, synchronous: $sync) { \
    product { id title handle hasOnlyDefaultVariant \
      options { id name position values optionValues { id name hasVariants } } \
      variants(first: 50) { nodes { id title sku barcode price compareAtPrice position taxable inventoryPolicy \
        selectedOptions { name value } inventoryItem { id sku tracked measurement { weight { unit value } } } } } \
      customId: metafield(namespace: \"custom\", key: \"erp_id\") { value type } } \
    userErrors { __typename field message code } } }";

#[tokio::test]
async fn product_set_takes_the_documented_2026_10_input_and_gives_its_errors() {
    // Reference: shopify.dev/docs/api/admin-graphql/latest/input-objects/ProductSetInput,
    // ProductVariantSetInput, OptionSetInput, VariantOptionValueInput, ProductSetIdentifiers,
    // enums/ProductSetUserErrorCode.
    let sim = sim(0, 1).await;
    let set = |input: Value, identifier: Value| {
        let sim = &sim;
        async move {
            gql(
                sim,
                VERSION,
                SET,
                json!({"input": input, "identifier": identifier, "sync": null}),
            )
            .await
        }
    };
    let hat = json!({
        "title": "Hat", "vendor": "Acme", "status": "DRAFT", "tags": ["wool"],
        "productOptions": [
            {"name": "Colour", "values": [{"name": "Red"}, {"name": "Blue"}, {"name": "Green"}]},
            {"name": "Size", "values": [{"name": "S"}, {"name": "M"}]},
        ],
        "variants": [
            {"optionValues": [{"optionName": "Colour", "name": "Red"}, {"optionName": "Size", "name": "S"}],
             "price": "10.00", "compareAtPrice": "12.00", "barcode": "4006381333931",
             "inventoryItem": {"sku": "HAT-RS", "tracked": true, "measurement": {"weight": {"unit": "GRAMS", "value": 120.0}}},
             "inventoryPolicy": "CONTINUE", "taxable": false},
            {"optionValues": [{"optionName": "Size", "name": "M"}, {"optionName": "Colour", "name": "Blue"}],
             "price": 11, "sku": "HAT-BM"},
        ]
    });
    // An upsert by handle creates the product (`synchronous: null` reads as the default).
    let a = set(hat.clone(), json!({"handle": "hat"})).await;
    let p = &a["data"]["productSet"]["product"];
    assert_eq!(a["data"]["productSet"]["userErrors"], json!([]), "{a}");
    assert_eq!(p["handle"], "hat");
    assert_eq!(p["hasOnlyDefaultVariant"], false);
    let options = p["options"].as_array().unwrap();
    assert_eq!(options[0]["name"], "Colour");
    assert_eq!(
        options[0]["values"],
        json!(["Red", "Blue"]),
        "values: the used ones"
    );
    assert_eq!(
        options[0]["optionValues"].as_array().unwrap().len(),
        3,
        "optionValues: all"
    );
    assert_eq!(options[0]["optionValues"][2]["hasVariants"], false);
    let v = p["variants"]["nodes"].as_array().unwrap();
    assert_eq!(v[0]["title"], "Red / S");
    assert_eq!(
        v[1]["title"], "Blue / M",
        "values in option order, whatever the input order"
    );
    assert_eq!(
        (v[0]["sku"].clone(), v[0]["inventoryItem"]["sku"].clone()),
        (json!("HAT-RS"), json!("HAT-RS")),
        "inventoryItem.sku is the variant's SKU"
    );
    assert_eq!(
        v[1]["sku"], "HAT-BM",
        "the variant's own sku field sets it too"
    );
    assert_eq!(
        (
            v[0]["price"].clone(),
            v[0]["compareAtPrice"].clone(),
            v[0]["barcode"].clone()
        ),
        (json!("10.00"), json!("12.00"), json!("4006381333931"))
    );
    assert_eq!(v[1]["price"], "11");
    assert_eq!(
        (v[0]["inventoryPolicy"].clone(), v[0]["taxable"].clone()),
        (json!("CONTINUE"), json!(false))
    );
    assert_eq!(
        v[0]["inventoryItem"]["measurement"]["weight"],
        json!({"unit": "GRAMS", "value": 120.0})
    );
    let id = p["id"].as_str().unwrap().to_owned();
    let kept = v[0]["id"].clone();

    // The same handle again updates: fields left out stay, variants too.
    let a = set(json!({"title": "Hat II"}), json!({"handle": "hat"})).await;
    let p = &a["data"]["productSet"]["product"];
    assert_eq!(
        (p["id"].as_str(), p["title"].as_str()),
        (Some(id.as_str()), Some("Hat II"))
    );
    assert_eq!(p["variants"]["nodes"].as_array().unwrap().len(), 2);

    // By id: lists are replaced in full (variants left out are deleted, kept ids stay).
    let a = set(
        json!({"productOptions": [{"name": "Colour", "values": [{"name": "Red"}]}],
               "variants": [{"id": kept, "optionValues": [{"optionName": "Colour", "name": "Red"}]}]}),
        json!({"id": id}),
    )
    .await;
    let p = &a["data"]["productSet"]["product"];
    assert_eq!(p["variants"]["nodes"][0]["id"], kept);
    assert_eq!(p["variants"]["nodes"][0]["title"], "Red");
    assert_eq!(
        p["variants"]["nodes"][0]["price"], "10.00",
        "unchanged fields stay"
    );
    assert_eq!(p["options"].as_array().unwrap().len(), 1);

    // A product created without options or variants gets the standalone default variant.
    let a = set(json!({"title": "Plain"}), json!(null)).await;
    let p = &a["data"]["productSet"]["product"];
    assert_eq!(p["hasOnlyDefaultVariant"], true);
    assert_eq!(p["options"][0]["name"], "Title");
    assert_eq!(p["options"][0]["values"], json!(["Default Title"]));
    assert_eq!(p["variants"]["nodes"][0]["title"], "Default Title");
    assert_eq!(
        p["variants"]["nodes"][0]["selectedOptions"],
        json!([{"name": "Title", "value": "Default Title"}])
    );
    assert_eq!(p["handle"], "plain", "the handle comes from the title");

    // The documented refusals, each a ProductSetUserError with its code.
    let one = |o: &str, v: &str| json!({"optionValues": [{"optionName": o, "name": v}]});
    let colours = json!([{"name": "Colour", "values": [{"name": "Red"}, {"name": "Blue"}]}]);
    let cases: Vec<(Value, Value, &str)> = vec![
        (
            json!({"variants": [one("Colour", "Red")]}),
            json!({"id": id}),
            "PRODUCT_OPTIONS_INPUT_MISSING",
        ),
        (
            json!({"productOptions": colours}),
            json!({"id": id}),
            "VARIANTS_INPUT_MISSING",
        ),
        (
            json!({"productOptions": [{"name": "A", "values": [{"name": "1"}]}, {"name": "B", "values": [{"name": "1"}]},
                                      {"name": "C", "values": [{"name": "1"}]}, {"name": "D", "values": [{"name": "1"}]}],
                   "variants": []}),
            json!({"id": id}),
            "OPTIONS_OVER_LIMIT",
        ),
        (
            json!({"productOptions": [{"name": "Colour", "values": []}], "variants": []}),
            json!({"id": id}),
            "OPTION_VALUES_MISSING",
        ),
        (
            json!({"productOptions": [{"name": "Colour", "values": [{"name": "Red"}]}, {"name": "colour", "values": [{"name": "Blue"}]}], "variants": []}),
            json!({"id": id}),
            "DUPLICATED_OPTION_NAME",
        ),
        (
            json!({"productOptions": [{"name": "Colour", "values": [{"name": "Red"}, {"name": "Red"}]}], "variants": []}),
            json!({"id": id}),
            "DUPLICATED_OPTION_VALUE",
        ),
        (
            json!({"productOptions": colours, "variants": [one("Size", "S")]}),
            json!({"id": id}),
            "OPTION_DOES_NOT_EXIST",
        ),
        (
            json!({"productOptions": colours, "variants": [one("Colour", "Mauve")]}),
            json!({"id": id}),
            "OPTION_VALUE_DOES_NOT_EXIST",
        ),
        (
            json!({"productOptions": colours, "variants": [one("Colour", "Red"), one("Colour", "Red")]}),
            json!({"id": id}),
            "INVALID_VARIANT",
        ),
        (
            json!({"productOptions": colours, "variants": [{"id": "gid://shopify/ProductVariant/1", "optionValues": [{"optionName": "Colour", "name": "Red"}]}]}),
            json!({"id": id}),
            "PRODUCT_VARIANT_DOES_NOT_EXIST",
        ),
        (
            json!({"productOptions": colours, "variants": [{"price": "-1", "optionValues": [{"optionName": "Colour", "name": "Red"}]}]}),
            json!({"id": id}),
            "INVALID_VARIANT",
        ),
        (
            json!({"title": "x"}),
            json!({"id": "gid://shopify/Product/1"}),
            "NOT_FOUND",
        ),
        (
            json!({"title": "x", "handle": "other"}),
            json!({"handle": "hat"}),
            "INPUT_MISMATCH",
        ),
        (
            json!({"title": "x", "handle": "hat"}),
            json!(null),
            "HANDLE_NOT_UNIQUE",
        ),
        (
            json!({"vendor": "no title"}),
            json!(null),
            "INVALID_PRODUCT",
        ),
    ];
    for (input, identifier, code) in cases {
        let a = set(input.clone(), identifier).await;
        let payload = &a["data"]["productSet"];
        assert_eq!(payload["product"], Value::Null, "{input}: {a}");
        assert!(
            codes(payload).contains(&code.to_owned()),
            "{input}: want {code}, got {a}"
        );
        assert_eq!(
            payload["userErrors"][0]["__typename"],
            "ProductSetUserError"
        );
    }
    // Shapes the 2026-10 schema does not have are GraphQL errors: a variant without
    // `optionValues`, a variant `title`, an `id` inside the input.
    for input in [
        json!({"title": "x", "productOptions": colours, "variants": [{"price": "1"}]}),
        json!({"title": "x", "productOptions": colours, "variants": [{"title": "Red", "optionValues": []}]}),
        json!({"id": id, "title": "x"}),
    ] {
        let a = set(input.clone(), json!(null)).await;
        assert!(
            a["errors"].is_array() && a.get("data").is_none(),
            "{input}: {a}"
        );
    }

    // Custom ids: an upsert by customId creates, then updates, and productByIdentifier finds it;
    // `metafields` given without the custom id value is refused.
    let custom = json!({"customId": {"namespace": "custom", "key": "erp_id", "value": "ERP-1"}});
    let a = set(json!({"title": "Scarf"}), custom.clone()).await;
    let scarf = a["data"]["productSet"]["product"].clone();
    assert_eq!(
        scarf["customId"],
        json!({"value": "ERP-1", "type": "id"}),
        "{a}"
    );
    let a = set(json!({"title": "Scarf II"}), custom.clone()).await;
    assert_eq!(a["data"]["productSet"]["product"]["id"], scarf["id"]);
    let a = gql(
        &sim,
        VERSION,
        "query($i: ProductIdentifierInput!) { productByIdentifier(identifier: $i) { id title } }",
        json!({"i": custom}),
    )
    .await;
    assert_eq!(a["data"]["productByIdentifier"]["title"], "Scarf II");
    let a = set(
        json!({"title": "x", "metafields": [{"namespace": "custom", "key": "erp_id", "value": "ERP-2", "type": "id"}]}),
        custom,
    )
    .await;
    assert_eq!(codes(&a["data"]["productSet"]), ["METAFIELD_MISMATCH"]);

    // 2026-10 barcodes: the whole set, read back through the `barcodes` connection, the first
    // one as the deprecated `barcode`; not before 2026-10.
    let input = json!({"productOptions": [{"name": "Colour", "values": [{"name": "Red"}]}],
        "variants": [{"optionValues": [{"optionName": "Colour", "name": "Red"}],
                      "barcodes": [{"type": "EAN", "value": "4006381333931"}, {"type": "UPC", "value": "036000291452"}]}]});
    let q = "mutation($input: ProductSetInput!, $identifier: ProductSetIdentifiers) { productSet(input: $input, identifier: $identifier) { \
        product { variants(first: 1) { nodes { barcode barcodes(first: 5) { nodes { type value } } } } } userErrors { code } } }";
    let a = gql(
        &sim,
        VERSION,
        q,
        json!({"input": input, "identifier": {"id": id}}),
    )
    .await;
    let v = &a["data"]["productSet"]["product"]["variants"]["nodes"][0];
    assert_eq!(v["barcode"], "4006381333931", "{a}");
    assert_eq!(
        v["barcodes"]["nodes"][1],
        json!({"type": "UPC", "value": "036000291452"})
    );
    let a = gql(&sim, "2026-07", "mutation($input: ProductSetInput!, $identifier: ProductSetIdentifiers) { productSet(input: $input, identifier: $identifier) { userErrors { code } } }", json!({"input": input, "identifier": {"id": id}})).await;
    assert!(
        a["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("barcodes"),
        "{a}"
    );
}

#[tokio::test]
async fn the_query_root_reads_nodes_variants_identifiers_the_shop_and_locations() {
    // Reference: queries/nodes, node, productVariants, productByIdentifier, shop, locations.
    let sim = sim(30, 3).await;
    let q = |query: &'static str, vars: Value| {
        let sim = &sim;
        async move { gql(sim, VERSION, query, vars).await }
    };
    let a = q(
        "{ products(first: 2) { nodes { id variants(first: 1) { nodes { id } } } } }",
        json!({}),
    )
    .await;
    let product = a["data"]["products"]["nodes"][0]["id"].clone();
    let variant = a["data"]["products"]["nodes"][0]["variants"]["nodes"][0]["id"].clone();

    // nodes: [Node]! in the order asked, null where nothing exists; node: one.
    let a = q(
        "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id ... on Product { title } ... on ProductVariant { sku product { id } } } }",
        json!({"ids": [variant, "gid://shopify/Product/1", product]}),
    )
    .await;
    let n = a["data"]["nodes"].as_array().unwrap();
    assert_eq!(n[0]["__typename"], "ProductVariant", "{a}");
    assert_eq!(n[0]["product"]["id"], product);
    assert_eq!(n[1], Value::Null);
    assert_eq!(
        (n[2]["__typename"].as_str(), n[2]["title"].as_str()),
        (Some("Product"), Some("Product 0"))
    );
    let a = q(
        "query($id: ID!) { node(id: $id) { id ... on ProductVariant { title } } }",
        json!({"id": variant}),
    )
    .await;
    assert_eq!(a["data"]["node"]["title"], "XS");
    let many: Vec<String> = (0..251)
        .map(|i| format!("gid://shopify/Product/{i}"))
        .collect();
    let a = q(
        "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
        json!({"ids": many}),
    )
    .await;
    assert_eq!(
        a["errors"][0]["extensions"]["code"], "MAX_INPUT_SIZE_EXCEEDED",
        "{a}"
    );
    let a = q("{ node(id: \"not-a-gid\") { id } }", json!({})).await;
    assert!(
        a["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Invalid global id")
    );

    // productVariants: a search over variants, paged.
    let a = q(
        "{ productVariants(first: 10, query: \"sku:SKU-1-*\") { nodes { sku product { title } } pageInfo { hasNextPage } } }",
        json!({}),
    )
    .await;
    let skus: Vec<&str> = a["data"]["productVariants"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["sku"].as_str().unwrap())
        .collect();
    assert_eq!(skus, ["SKU-1-0", "SKU-1-1", "SKU-1-2"], "{a}");
    let a = q("{ productVariants(first: 50, sortKey: SKU, reverse: true) { nodes { sku } pageInfo { hasNextPage } } productVariantsCount { count precision } }", json!({})).await;
    assert_eq!(a["data"]["productVariants"]["nodes"][0]["sku"], "SKU-9-2");
    assert_eq!(
        a["data"]["productVariants"]["pageInfo"]["hasNextPage"],
        true
    );
    assert_eq!(
        a["data"]["productVariantsCount"],
        json!({"count": 90, "precision": "EXACT"})
    );

    // productByIdentifier: by id or handle; null when absent.
    let a = q(
        "query($a: ProductIdentifierInput!, $b: ProductIdentifierInput!, $c: ProductIdentifierInput!) { \
         a: productByIdentifier(identifier: $a) { handle } b: productByIdentifier(identifier: $b) { id } c: productByIdentifier(identifier: $c) { id } }",
        json!({"a": {"id": product}, "b": {"handle": "product-3"}, "c": {"handle": "nope"}}),
    )
    .await;
    assert_eq!(a["data"]["a"]["handle"], "product-0");
    assert!(a["data"]["b"]["id"].is_string());
    assert_eq!(a["data"]["c"], Value::Null);

    // The shop and its (one) location.
    let a = q("{ shop { id name myshopifyDomain currencyCode plan { shopifyPlus } } locations(first: 5) { nodes { id name isActive } pageInfo { hasNextPage } } }", json!({})).await;
    let shop = &a["data"]["shop"];
    assert!(
        shop["id"]
            .as_str()
            .unwrap()
            .starts_with("gid://shopify/Shop/")
    );
    assert_eq!(shop["myshopifyDomain"], "cowans-sim.myshopify.com");
    assert_eq!(shop["currencyCode"], "USD");
    let locations = a["data"]["locations"]["nodes"].as_array().unwrap();
    assert_eq!(locations.len(), 1);
    assert_eq!(locations[0]["isActive"], true);

    // products: `last` takes the final items in the connection's order; `before` bounds it.
    let a = q(
        "{ products(first: 30) { edges { cursor node { handle } } } }",
        json!({}),
    )
    .await;
    let edges = a["data"]["products"]["edges"].as_array().unwrap().clone();
    let a = q(
        "{ products(last: 2) { nodes { handle } pageInfo { hasPreviousPage hasNextPage } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        a["data"]["products"]["nodes"],
        json!([{"handle": "product-28"}, {"handle": "product-29"}])
    );
    assert_eq!(
        a["data"]["products"]["pageInfo"],
        json!({"hasPreviousPage": true, "hasNextPage": false})
    );
    let a = q(
        "query($b: String) { products(last: 2, before: $b) { nodes { handle } } }",
        json!({"b": edges[5]["cursor"]}),
    )
    .await;
    assert_eq!(
        a["data"]["products"]["nodes"],
        json!([{"handle": "product-3"}, {"handle": "product-4"}])
    );
    let a = q(
        "{ products(first: 1, sortKey: VENDOR, reverse: true) { nodes { vendor } } }",
        json!({}),
    )
    .await;
    assert_eq!(a["data"]["products"]["nodes"][0]["vendor"], "Globex");

    // The catalog's export selection and its incremental page are valid against the schema.
    let export = "{ products { edges { node { id title handle descriptionHtml vendor productType status tags createdAt updatedAt options { name position optionValues { name } } variants { edges { node { id title position sku barcode price compareAtPrice inventoryQuantity selectedOptions { name value } inventoryItem { id measurement { weight { unit value } } } } } } } } } }";
    let op = client(&sim).bulk_query_start(export).await.unwrap();
    let op = client(&sim)
        .bulk_wait(&op.id, Duration::from_millis(20), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(op.status, "COMPLETED");
    let page = "query($first: Int!, $after: String, $query: String) { products(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) { nodes { id title handle descriptionHtml vendor productType status tags createdAt updatedAt options { name position optionValues { name } } variants(first: 25) { nodes { id title position sku barcode price compareAtPrice inventoryQuantity selectedOptions { name value } inventoryItem { id measurement { weight { unit value } } } } pageInfo { hasNextPage } } } pageInfo { hasNextPage endCursor } } }";
    let a = gql(
        &sim,
        VERSION,
        page,
        json!({"first": 5, "after": null, "query": "updated_at:>='2000-01-01T00:00:00Z'"}),
    )
    .await;
    assert!(a.get("errors").is_none(), "{a}");
    assert_eq!(a["data"]["products"]["nodes"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn inventory_mutations_take_idempotency_keys_and_need_them_from_2026_04() {
    // Reference: changelog "Making idempotency mandatory for inventory adjustments and refund
    // mutations" (2026-04); input-objects/InventoryQuantityInput (2026-07: changeFromQuantity
    // mandatory); enums/InventorySetQuantitiesUserErrorCode.
    let sim = sim(1, 1).await;
    let client = client(&sim);
    let location = location(&client).await;
    let a = gql(&sim, VERSION, "{ products(first: 1) { nodes { variants(first: 1) { nodes { inventoryItem { id legacyResourceId } } } } } }", json!({})).await;
    let item = a["data"]["products"]["nodes"][0]["variants"]["nodes"][0]["inventoryItem"].clone();
    let item_id = item["id"].clone();
    let legacy: u64 = item["legacyResourceId"].as_str().unwrap().parse().unwrap();
    let with_key = "mutation($i: InventorySetQuantitiesInput!, $k: String!) { inventorySetQuantities(input: $i) @idempotent(key: $k) { inventoryAdjustmentGroup { id reason changes(quantityNames: [\"available\"]) { name delta quantityAfterChange } } userErrors { field message code } } }";
    let without = "mutation($i: InventorySetQuantitiesInput!) { inventorySetQuantities(input: $i) { userErrors { code } } }";
    let input = |qty: i64| json!({"name": "available", "reason": "correction", "quantities": [{"inventoryItemId": item_id, "locationId": location, "quantity": qty, "changeFromQuantity": null}]});

    // From 2026-04: no directive, or no changeFromQuantity, is an error; 2026-01 takes both.
    let a = gql(&sim, VERSION, without, json!({"i": input(5)})).await;
    assert!(
        a["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("@idempotent"),
        "{a}"
    );
    let mut omitted = input(5);
    omitted["quantities"][0]
        .as_object_mut()
        .unwrap()
        .remove("changeFromQuantity");
    let a = gql(&sim, VERSION, with_key, json!({"i": omitted, "k": "k0"})).await;
    assert!(
        a["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("changeFromQuantity"),
        "{a}"
    );
    let a = gql(&sim, "2026-01", without, json!({"i": omitted})).await;
    assert_eq!(
        a["data"]["inventorySetQuantities"]["userErrors"],
        json!([]),
        "{a}"
    );

    // A key's first answer is kept: sent again it is not applied twice.
    let a = gql(&sim, VERSION, with_key, json!({"i": input(50), "k": "k1"})).await;
    let first = a["data"]["inventorySetQuantities"].clone();
    assert_eq!(
        first["inventoryAdjustmentGroup"]["changes"],
        json!([{"name": "available", "delta": 45, "quantityAfterChange": 50}]),
        "{a}"
    );
    control(
        &sim,
        reqwest::Method::POST,
        "inventory",
        json!({"inventory_item_id": legacy, "quantity": 7}),
    )
    .await;
    let a = gql(&sim, VERSION, with_key, json!({"i": input(50), "k": "k1"})).await;
    assert_eq!(
        a["data"]["inventorySetQuantities"], first,
        "the first answer again"
    );
    let a = gql(
        &sim,
        VERSION,
        "{ products(first: 1) { nodes { totalInventory } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        a["data"]["products"]["nodes"][0]["totalInventory"], 7,
        "not applied again"
    );
    let a = gql(&sim, VERSION, with_key, json!({"i": input(51), "k": "k1"})).await;
    assert_eq!(
        codes(&a["data"]["inventorySetQuantities"]),
        ["IDEMPOTENCY_KEY_PARAMETER_MISMATCH"]
    );

    // Refusals by code.
    let mut bad_location = input(1);
    bad_location["quantities"][0]["locationId"] = json!("gid://shopify/Location/1");
    let mut bad_reason = input(1);
    bad_reason["reason"] = json!("because");
    let mut bad_name = input(1);
    bad_name["name"] = json!("committed");
    let mut stale = input(1);
    stale["quantities"][0]["changeFromQuantity"] = json!(99);
    for (i, (input, code)) in [
        (bad_location, "INVALID_LOCATION"),
        (bad_reason, "INVALID_REASON"),
        (bad_name, "INVALID_NAME"),
        (stale, "CHANGE_FROM_QUANTITY_STALE"),
        (input(2_000_000_000), "INVALID_QUANTITY_TOO_HIGH"),
    ]
    .into_iter()
    .enumerate()
    {
        let a = gql(
            &sim,
            VERSION,
            with_key,
            json!({"i": input, "k": format!("r{i}")}),
        )
        .await;
        assert_eq!(codes(&a["data"]["inventorySetQuantities"]), [code], "{a}");
    }
}

#[tokio::test]
async fn product_search_reads_shopifys_syntax() {
    // Reference: shopify.dev/docs/api/usage/search-syntax; queries/productsCount (fields).
    let sim = sim(12, 1).await;
    let count = |query: &'static str| {
        let sim = &sim;
        async move {
            let a = gql(sim, VERSION, "query($q: String) { productsCount(query: $q, limit: null) { count } products(first: 50, query: $q) { nodes { id } } }", json!({"q": query})).await;
            let n = a["data"]["productsCount"]["count"].as_u64().unwrap();
            assert_eq!(
                a["data"]["products"]["nodes"].as_array().unwrap().len() as u64,
                n,
                "{query}"
            );
            (n, a)
        }
    };
    // Vendors cycle Cowans, Acme, Globex; tags [], [sale], [new, summer].
    for (query, want) in [
        ("vendor:Acme OR vendor:Globex", 8),
        ("tag:sale OR tag:new vendor:Acme", 4),
        ("vendor:Cowans OR (tag:new AND vendor:Globex)", 8),
        ("-vendor:Cowans", 8),
        ("NOT vendor:Cowans AND NOT tag:new", 4),
        ("title:'Product 1'", 1),
        ("handle:product-1,product-2", 2),
        ("handle:product-1*", 3),
        ("tag_not:sale", 8),
        ("inventory_total:>=10 price:<20", 10),
        ("created_at:<now", 12),
        ("published_status:published", 12),
        ("collection_id:1", 0),
    ] {
        assert_eq!(count(query).await.0, want, "{query}");
    }
    // An unknown field is ignored (every product), and the answer says so.
    let (n, a) = count("colour:red").await;
    assert_eq!(n, 12);
    assert_eq!(
        a["extensions"]["search"][0]["warnings"][0],
        json!({"field": "colour", "message": "Invalid search field for this query."})
    );
    // The client reads the same syntax: quoted values and groups pass, unknown fields do not.
    cowans_shopify::check_product_search(
        "updated_at:>='2026-01-01 10:00' AND (tag:a OR title:\"x:y\")",
    )
    .unwrap();
    cowans_shopify::check_product_search("-(tracks_inventory:true) metafields.custom.erp_id:1")
        .unwrap();
    assert!(cowans_shopify::check_product_search("vendor:a OR (colour:red)").is_err());
}

#[tokio::test]
async fn webhooks_follow_2026_10_subscriptions_payloads_and_headers() {
    // Reference: input-objects/WebhookSubscriptionInput (2025-10: uri, callbackUrl
    // deprecated), objects/WebhookSubscription, apps/build/webhooks/delivery-structure.
    use axum::{body::Bytes, extract::State, http::HeaderMap, routing::post};
    type Seen = std::sync::Arc<std::sync::Mutex<Vec<(HeaderMap, Value)>>>;
    let seen: Seen = Default::default();
    async fn hook(State(seen): State<Seen>, headers: HeaderMap, body: Bytes) -> &'static str {
        seen.lock()
            .unwrap()
            .push((headers, serde_json::from_slice(&body).unwrap()));
        "ok"
    }
    let app = axum::Router::new()
        .route("/h", post(hook))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}/h", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let sim = sim(0, 1).await;
    let client = client(&sim);
    let create = "mutation($t: WebhookSubscriptionTopic!, $s: WebhookSubscriptionInput!) { webhookSubscriptionCreate(topic: $t, webhookSubscription: $s) { webhookSubscription { id topic uri format includeFields filter apiVersion { handle } } userErrors { field message } } }";
    // A subscription made at 2026-07 gets payloads serialized with 2026-07.
    let a = gql(
        &sim,
        "2026-07",
        create,
        json!({"t": "PRODUCTS_CREATE", "s": {"uri": uri, "format": "JSON", "name": "catalog"}}),
    )
    .await;
    let sub = &a["data"]["webhookSubscriptionCreate"]["webhookSubscription"];
    assert_eq!(
        (
            sub["uri"].as_str(),
            sub["format"].as_str(),
            sub["apiVersion"]["handle"].as_str()
        ),
        (Some(uri.as_str()), Some("JSON"), Some("2026-07")),
        "{a}"
    );
    let update = client
        .webhook_subscription_create("PRODUCTS_UPDATE", &uri)
        .await
        .unwrap();
    // A trimmed, filtered subscription: only `id`, `title` and each variant's `price`, and only
    // for products tagged `sale`.
    let a = gql(&sim, VERSION, create, json!({"t": "PRODUCTS_UPDATE", "s": {"uri": format!("{uri}?trimmed"), "includeFields": ["id", "title", "variants.price"], "filter": "tag:sale"}})).await;
    assert_eq!(
        a["data"]["webhookSubscriptionCreate"]["userErrors"],
        json!([]),
        "{a}"
    );
    client
        .webhook_subscription_create("PRODUCTS_DELETE", &uri)
        .await
        .unwrap();
    // Refusals: no address, the same address twice.
    let a = gql(
        &sim,
        VERSION,
        create,
        json!({"t": "PRODUCTS_UPDATE", "s": {"format": "JSON"}}),
    )
    .await;
    assert_eq!(
        a["data"]["webhookSubscriptionCreate"]["userErrors"][0]["field"],
        json!(["webhookSubscription", "uri"])
    );
    let err = client
        .webhook_subscription_create("PRODUCTS_UPDATE", &uri)
        .await
        .unwrap_err();
    assert!(matches!(err, ShopifyError::UserErrors(_)), "{err:?}");
    // The list, through the client.
    let subs = client.webhook_subscriptions().await.unwrap();
    assert_eq!(subs.len(), 4);
    assert!(
        subs.iter()
            .any(|s| s.id == update && s.topic == "PRODUCTS_UPDATE" && s.uri == uri)
    );
    let a = gql(&sim, VERSION, "{ webhookSubscriptions(first: 10, topics: [PRODUCTS_UPDATE]) { nodes { uri includeFields filter } } }", json!({})).await;
    assert_eq!(
        a["data"]["webhookSubscriptions"]["nodes"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Create, then update (tagged sale), then delete.
    let a = gql(&sim, VERSION, SET, json!({"input": {"title": "Hat", "vendor": "Acme", "productType": "Hats", "tags": ["wool", "warm"], "descriptionHtml": "<p>Warm</p>",
        "productOptions": [{"name": "Size", "values": [{"name": "S"}, {"name": "M"}]}],
        "variants": [{"optionValues": [{"optionName": "Size", "name": "S"}], "price": "10.00", "compareAtPrice": "12.00", "inventoryItem": {"sku": "H-S"}, "barcode": "123"},
                     {"optionValues": [{"optionName": "Size", "name": "M"}], "price": "11.00"}]}})).await;
    let id: Gid = a["data"]["productSet"]["product"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let a = gql(
        &sim,
        VERSION,
        SET,
        json!({"input": {"tags": ["sale"]}, "identifier": {"id": id.to_string()}}),
    )
    .await;
    assert_eq!(a["data"]["productSet"]["userErrors"], json!([]));
    client
        .mutate::<Value>(
            "mutation($i: ProductDeleteInput!) { productDelete(input: $i) { deletedProductId } }",
            json!({"i": {"id": id.to_string()}}),
            false,
        )
        .await
        .unwrap();
    let t0 = Instant::now();
    while seen.lock().unwrap().len() < 4 {
        assert!(t0.elapsed() < Duration::from_secs(10), "4 deliveries");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = seen.lock().unwrap();
    let by = |topic: &str| {
        seen.iter()
            .filter(|(h, _)| h["x-shopify-topic"] == topic)
            .collect::<Vec<_>>()
    };
    let (h, created) = by("products/create")[0];
    for name in [
        "x-shopify-topic",
        "x-shopify-hmac-sha256",
        "x-shopify-shop-domain",
        "x-shopify-webhook-id",
        "x-shopify-event-id",
        "x-shopify-triggered-at",
        "x-shopify-api-version",
    ] {
        assert!(h.contains_key(name), "{name}");
    }
    assert_eq!(
        h["x-shopify-api-version"], "2026-07",
        "the subscription's version"
    );
    assert_eq!(h["x-shopify-name"], "catalog");
    assert_eq!(h["x-shopify-shop-domain"], "cowans-sim.myshopify.com");
    assert_eq!(created["id"].as_u64(), Some(id.id));
    assert_eq!(created["admin_graphql_api_id"], json!(id.to_string()));
    assert_eq!(
        (
            created["title"].as_str(),
            created["handle"].as_str(),
            created["body_html"].as_str(),
            created["vendor"].as_str(),
            created["product_type"].as_str(),
            created["status"].as_str(),
            created["tags"].as_str()
        ),
        (
            Some("Hat"),
            Some("hat"),
            Some("<p>Warm</p>"),
            Some("Acme"),
            Some("Hats"),
            Some("active"),
            Some("wool, warm")
        )
    );
    assert!(created["created_at"].is_string() && created["updated_at"].is_string());
    let v = &created["variants"][0];
    assert_eq!(v["product_id"].as_u64(), Some(id.id));
    assert_eq!(
        (
            v["title"].as_str(),
            v["price"].as_str(),
            v["sku"].as_str(),
            v["barcode"].as_str(),
            v["compare_at_price"].as_str(),
            v["option1"].as_str(),
            v["position"].as_u64()
        ),
        (
            Some("S"),
            Some("10.00"),
            Some("H-S"),
            Some("123"),
            Some("12.00"),
            Some("S"),
            Some(1)
        )
    );
    assert_eq!(v["option2"], Value::Null);
    assert!(
        v["id"].is_u64() && v["inventory_item_id"].is_u64() && v["inventory_quantity"].is_i64()
    );
    assert!(
        v["admin_graphql_api_id"]
            .as_str()
            .unwrap()
            .starts_with("gid://shopify/ProductVariant/")
    );
    assert_eq!(created["options"][0]["name"], "Size");
    assert_eq!(created["options"][0]["values"], json!(["S", "M"]));
    let updates = by("products/update");
    assert_eq!(updates.len(), 2, "the full one and the trimmed one");
    let trimmed = updates
        .iter()
        .find(|(_, b)| b.get("handle").is_none())
        .unwrap();
    assert_eq!(
        trimmed.1,
        json!({"id": id.id, "title": "Hat", "variants": [{"price": "10.00"}, {"price": "11.00"}]})
    );
    assert_eq!(trimmed.0["x-shopify-api-version"], VERSION);
    let full = updates
        .iter()
        .find(|(_, b)| b.get("handle").is_some())
        .unwrap();
    assert_eq!(full.1["tags"], "sale");
    assert_eq!(by("products/delete")[0].1, json!({"id": id.id}));
}

#[tokio::test]
async fn enums_are_typed_and_versions_beyond_the_stable_ones_are_served() {
    let sim = sim(3, 1).await;
    // Inputs Shopify types as enums are enums (introspection says so), and take enum values.
    let a = gql(&sim, VERSION, "{ a: __type(name: \"StagedUploadInput\") { inputFields { name type { kind name } } } b: __type(name: \"ProductVariantSetInput\") { inputFields { name type { kind name } } } c: __type(name: \"WebhookSubscriptionInput\") { inputFields { name type { kind name } } } }", json!({})).await;
    let kind = |t: &str, field: &str| {
        a["data"][t]["inputFields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == field)
            .map(|f| {
                (
                    f["type"]["kind"].as_str().unwrap().to_owned(),
                    f["type"]["name"].as_str().unwrap().to_owned(),
                )
            })
            .unwrap()
    };
    assert_eq!(
        kind("a", "httpMethod"),
        ("ENUM".to_owned(), "StagedUploadHttpMethodType".to_owned())
    );
    assert_eq!(
        kind("b", "inventoryPolicy"),
        (
            "ENUM".to_owned(),
            "ProductVariantInventoryPolicy".to_owned()
        )
    );
    assert_eq!(
        kind("c", "format"),
        ("ENUM".to_owned(), "WebhookSubscriptionFormat".to_owned())
    );
    let a = gql(&sim, VERSION, "mutation { stagedUploadsCreate(input: [{resource: BULK_MUTATION_VARIABLES, filename: \"a.jsonl\", mimeType: \"text/jsonl\", httpMethod: POST}]) { userErrors { message } } }", json!({})).await;
    assert_eq!(
        a["data"]["stagedUploadsCreate"]["userErrors"],
        json!([]),
        "{a}"
    );
    let a = gql(
        &sim,
        VERSION,
        "{ products(first: 1, sortKey: COLOUR) { nodes { id } } }",
        json!({}),
    )
    .await;
    assert!(a["errors"].is_array(), "not a ProductSortKeys value: {a}");
    // The release candidate and unstable are served as asked.
    for v in ["2027-01", "unstable"] {
        let r = reqwest::Client::new()
            .post(format!("{}/admin/api/{v}/graphql.json", sim.base_url()))
            .header("X-Shopify-Access-Token", TOKEN)
            .json(&json!({"query": "{ shop { name } }"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-shopify-api-version"], v);
    }
    // Bulk operations: typed status, UnsignedInt64 counts as strings.
    let client = client(&sim);
    let op = client
        .bulk_query_start("{ products { edges { node { id } } } }")
        .await
        .unwrap();
    let op = client
        .bulk_wait(&op.id, Duration::from_millis(20), Duration::from_secs(10))
        .await
        .unwrap();
    let a = gql(&sim, VERSION, "query($id: ID!) { node(id: $id) { ... on BulkOperation { status type objectCount rootObjectCount fileSize } } }", json!({"id": op.id.to_string()})).await;
    let n = &a["data"]["node"];
    assert_eq!(
        (
            n["status"].as_str(),
            n["type"].as_str(),
            n["objectCount"].as_str(),
            n["rootObjectCount"].as_str()
        ),
        (Some("COMPLETED"), Some("QUERY"), Some("3"), Some("3")),
        "{a}"
    );
}
