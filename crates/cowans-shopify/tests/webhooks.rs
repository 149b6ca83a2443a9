//! Webhooks from the simulator to a receiver using the client's verification: signed, retried
//! after a bad signature, de-duplicated, reordered (ordered back by `updated_at`), dropped, and
//! forgeries rejected.

// Test helpers may unwrap: a failure there is a test failure with its location.
#![allow(clippy::unwrap_used)]

mod common;

use cowans_shopify::Gid;
use cowans_shopsim::Faults;
use serde_json::{Value, json};

use common::{client, control, faults, receiver, sim, wait_inbox};

#[tokio::test]
async fn webhooks_are_signed_retried_deduplicated_reordered_and_forgeries_rejected() {
    let sim = sim(0, 1).await;
    let client = client(&sim);
    let (url, inbox) = receiver("whsec").await;
    for topic in ["PRODUCTS_CREATE", "PRODUCTS_UPDATE", "PRODUCTS_DELETE"] {
        let id = client
            .webhook_subscription_create(topic, &url)
            .await
            .unwrap();
        assert_eq!(id.kind, "WebhookSubscription");
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
