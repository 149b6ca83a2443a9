//! Shopify's webhooks end to end: a shop is subscribed to the API's `/webhooks/shopify`, the
//! simulated merchant's edits and deletions arrive by webhook and reach the catalog once each —
//! through duplicated, reordered and wrongly signed deliveries; forged, unsigned and malformed
//! deliveries are refused with the reason, and an older event never overwrites newer data.

use std::time::Duration;

use cowans_catalog::{CatalogSettings, PullKind};
use cowans_core::JobState;
use cowans_shopify::webhook::sign;
use cowans_testkit::wait_for;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{
    api::key,
    catalog::{Fixture, SIM_DOMAIN, actor, catalog_with, fixture, settings},
};

/// Jobs of `kind` in the fixture's database.
async fn jobs_of(f: &Fixture, kind: &str) -> Vec<(i64, String)> {
    sqlx::query_as("SELECT id, state::text FROM cowans_jobs WHERE kind = $1 ORDER BY id")
        .bind(kind)
        .fetch_all(&f.db.pool)
        .await
        .unwrap()
}

async fn control(f: &Fixture, method: reqwest::Method, path: &str, body: Value) {
    let r = reqwest::Client::new()
        .request(method, format!("{}/__sim/{path}", f.sim.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
}

#[tokio::test]
async fn the_merchants_edits_arrive_by_webhook_once_each_through_duplicates_reordering_and_bad_signatures()
 {
    let f = fixture(40, 2).await;
    let base = f.api().await;
    let url = format!("{base}/webhooks/shopify");
    let _worker = f.worker(&[("COWANS__CATALOG__WEBHOOK_URL", &url)]);
    f.pull(PullKind::Full).await;

    // Subscribe the shop (as adding it does when catalog.webhook_url is set).
    let hooks = catalog_with(
        &f.db,
        &CatalogSettings {
            webhook_url: Some(url.clone()),
            ..settings()
        },
    );
    let job = hooks.subscribe_webhooks(&actor(), f.shop.id).await.unwrap();
    let state = wait_for("the subscription job", Duration::from_secs(30), || async {
        let j = cowans_store::get_job(&f.db.pool, job)
            .await
            .unwrap()
            .unwrap();
        (j.state != JobState::Available && j.state != JobState::Running).then_some(j.state)
    })
    .await;
    assert_eq!(state, JobState::Completed);
    let topics: Vec<String> = {
        let shop = f.sim.shop.lock();
        shop.subscriptions
            .iter()
            .filter(|s| s.uri == url)
            .map(|s| s.topic.clone())
            .collect()
    };
    for t in ["products/create", "products/update", "products/delete"] {
        assert!(topics.iter().any(|x| x == t), "{t} subscribed: {topics:?}");
    }
    // Subscribing again adds nothing.
    let again = hooks.subscribe_webhooks(&actor(), f.shop.id).await.unwrap();
    wait_for(
        "the second subscription job",
        Duration::from_secs(30),
        || async {
            let j = cowans_store::get_job(&f.db.pool, again)
                .await
                .unwrap()
                .unwrap();
            (j.state == JobState::Completed).then_some(())
        },
    )
    .await;
    assert_eq!(f.sim.shop.lock().subscriptions.len(), topics.len());

    // Faults: every delivery sent twice, the first three held and sent newest first, the
    // first attempt of two signed with a wrong secret (Shopify then retries).
    {
        let mut shop = f.sim.shop.lock();
        shop.faults.webhook_duplicates = 6;
        shop.faults.webhook_reorder = 3;
        shop.faults.webhook_bad_signatures = 2;
    }
    let ids: Vec<u64> = f.sim.shop.lock().catalog.products.keys().copied().collect();
    let (renamed, deleted, trimmed) = (ids[3], ids[7], ids[11]);
    for title in ["First rename", "Second rename", "Final rename"] {
        control(
            &f,
            reqwest::Method::POST,
            "clock",
            json!({"advance_ms": 2000}),
        )
        .await;
        control(
            &f,
            reqwest::Method::POST,
            &format!("products/{renamed}/edit"),
            json!({"title": title}),
        )
        .await;
    }
    control(
        &f,
        reqwest::Method::DELETE,
        &format!("products/{deleted}"),
        json!(null),
    )
    .await;
    let variant = f.sim.shop.lock().catalog.products[&trimmed].variants[0].id;
    control(
        &f,
        reqwest::Method::POST,
        "clock",
        json!({"advance_ms": 2000}),
    )
    .await;
    control(
        &f,
        reqwest::Method::DELETE,
        &format!("variants/{variant}"),
        json!(null),
    )
    .await;

    wait_for(
        "the webhooks to reach the catalog",
        Duration::from_secs(60),
        || async {
            let (p, _) = f.catalog.product(f.shop.id, renamed as i64).await.unwrap();
            let (d, _) = f.catalog.product(f.shop.id, deleted as i64).await.unwrap();
            let (_, v) = f.catalog.product(f.shop.id, trimmed as i64).await.unwrap();
            (p.title == "Final rename" && d.deleted_at.is_some() && v.len() == 1).then_some(())
        },
    )
    .await;
    // Every delivery delivered (those first signed wrongly, on Shopify's retry); each webhook
    // id applied by one job, none failed.
    let log = wait_for(
        "every delivery to be delivered",
        Duration::from_secs(120),
        || async {
            let log = f.sim.shop.lock().webhook_log.clone();
            log.iter().all(|d| d.delivered).then_some(log)
        },
    )
    .await;
    assert!(
        log.iter().any(|d| d.attempts > 1),
        "some needed a retry: {log:?}"
    );
    let delivered: std::collections::BTreeSet<String> = log
        .iter()
        .filter(|d| d.delivered)
        .map(|d| d.webhook_id.clone())
        .collect();
    assert!(delivered.len() >= 5, "{log:?}");
    let applied = wait_for(
        "the webhook jobs to finish",
        Duration::from_secs(30),
        || async {
            let jobs = jobs_of(&f, "catalog.webhook").await;
            jobs.iter().all(|(_, s)| s == "completed").then_some(jobs)
        },
    )
    .await;
    assert_eq!(
        applied.len(),
        delivered.len(),
        "one job per webhook id, duplicates answered without one"
    );
    let (_, v) = f.catalog.product(f.shop.id, trimmed as i64).await.unwrap();
    assert!(
        v[0].weight.is_some(),
        "weights, absent from payloads, are kept"
    );
}

/// The simulated shop's domain and webhook secret.
const SIGNED: (&str, &str) = (SIM_DOMAIN, "whsec_test");

/// A delivery signed as Shopify signs it.
fn delivery(
    http: &reqwest::Client,
    url: &str,
    (domain, secret): (&str, &str),
    topic: &str,
    id: &str,
    body: &str,
) -> reqwest::RequestBuilder {
    http.post(url)
        .header("Content-Type", "application/json")
        .header("X-Shopify-Topic", topic)
        .header("X-Shopify-Shop-Domain", domain)
        .header("X-Shopify-Webhook-Id", id)
        .header(
            "X-Shopify-Hmac-Sha256",
            sign(secret.as_bytes(), body.as_bytes()),
        )
        .body(body.to_owned())
}

#[tokio::test]
async fn forged_unsigned_and_malformed_deliveries_are_refused_and_older_events_change_nothing() {
    let f = fixture(5, 1).await;
    let base = f.api().await;
    let url = format!("{base}/webhooks/shopify");
    let _worker = f.worker(&[]);
    f.pull(PullKind::Full).await;
    let http = reqwest::Client::new();
    let id = *f.sim.shop.lock().catalog.products.keys().next().unwrap();
    let (stored, _) = f.catalog.product(f.shop.id, id as i64).await.unwrap();
    let payload = |title: &str, at: chrono::DateTime<chrono::Utc>| {
        json!({
            "id": id, "admin_graphql_api_id": format!("gid://shopify/Product/{id}"),
            "title": title, "handle": stored.handle, "body_html": "", "vendor": stored.vendor,
            "product_type": stored.product_type, "status": "active", "tags": "",
            "created_at": stored.shopify_created_at, "updated_at": at,
            "options": [{"name": "Title", "position": 1, "values": ["Default Title"]}],
            "variants": [],
        })
        .to_string()
    };
    let newer = payload(
        "Newer",
        stored.shopify_updated_at + chrono::Duration::minutes(5),
    );
    let older = payload(
        "Older",
        stored.shopify_updated_at + chrono::Duration::minutes(1),
    );

    // Refused: forged, from an unknown shop, unsigned.
    let r = delivery(
        &http,
        &url,
        (SIM_DOMAIN, "not-the-secret"),
        "products/update",
        "w-1",
        &newer,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unauthorized");
    let r = delivery(
        &http,
        &url,
        ("someone-else.myshopify.com", "whsec_test"),
        "products/update",
        "w-1",
        &newer,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "an unknown shop");
    let r = http
        .post(&url)
        .header("X-Shopify-Topic", "products/update")
        .body(newer.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "unsigned");
    // Signed but unreadable: 422 naming what.
    let r = delivery(&http, &url, SIGNED, "products/update", "w-2", "{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["details"]["field"], "body", "{v}");
    let r = delivery(&http, &url, SIGNED, "products/update", "", &newer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        jobs_of(&f, "catalog.webhook").await.is_empty(),
        "nothing refused was queued"
    );

    // Accepted once; the same id again is a duplicate with the same job.
    let r = delivery(&http, &url, SIGNED, "products/update", "w-new", &newer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["duplicate"], false);
    let r = delivery(&http, &url, SIGNED, "products/update", "w-new", &newer)
        .send()
        .await
        .unwrap();
    let second: Value = r.json().await.unwrap();
    assert_eq!(
        (second["duplicate"].as_bool(), &second["job_id"]),
        (Some(true), &first["job_id"])
    );
    // An older event, delivered after the newer one was applied, changes nothing.
    crate::support::control_kinds::state_becomes(
        &f.db,
        cowans_core::JobId(first["job_id"].as_i64().unwrap()),
        cowans_core::JobState::Completed,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        f.catalog
            .product(f.shop.id, id as i64)
            .await
            .unwrap()
            .0
            .title,
        "Newer"
    );
    let r = delivery(&http, &url, SIGNED, "products/update", "w-old", &older)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // A topic the catalog does not use is acknowledged and ignored.
    let r = delivery(&http, &url, SIGNED, "orders/create", "w-order", "{}")
        .send()
        .await
        .unwrap();
    let ignored: Value = r.json().await.unwrap();
    assert_eq!(ignored["job_id"], Value::Null);

    let done = wait_for("both webhook jobs", Duration::from_secs(30), || async {
        let jobs = jobs_of(&f, "catalog.webhook").await;
        (jobs.len() == 2 && jobs.iter().all(|(_, s)| s == "completed")).then_some(jobs)
    })
    .await;
    assert_eq!(done.len(), 2);
    let (p, variants) = f.catalog.product(f.shop.id, id as i64).await.unwrap();
    assert_eq!(p.title, "Newer", "the older event did not overwrite it");
    assert_eq!(
        variants.len(),
        1,
        "a payload without variants leaves them (it lists none to keep)"
    );

    // The deliveries are in the audit log, as Shopify's.
    let admin = key(&f.db.pool, "admin").await;
    let audit: Value = http
        .get(format!("{base}/api/v1/audit"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let by_shopify = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == format!("webhook:{SIM_DOMAIN}"))
        .count();
    assert_eq!(by_shopify, 3, "{audit}");
}

#[tokio::test]
async fn reconciliation_repairs_what_webhooks_missed() {
    let f = fixture(60, 2).await;
    let _worker = f.worker(&[]);
    f.pull(PullKind::Full).await;
    // Changes no webhook told us about: edits, deletions, new products, and a product this
    // catalog wrongly holds as deleted.
    let ids: Vec<u64> = f.sim.shop.lock().catalog.products.keys().copied().collect();
    control(
        &f,
        reqwest::Method::POST,
        "clock",
        json!({"advance_ms": 2000}),
    )
    .await;
    for id in &ids[..3] {
        control(
            &f,
            reqwest::Method::POST,
            &format!("products/{id}/edit"),
            json!({"title": "Missed edit"}),
        )
        .await;
    }
    for id in &ids[10..12] {
        control(
            &f,
            reqwest::Method::DELETE,
            &format!("products/{id}"),
            json!(null),
        )
        .await;
    }
    {
        let mut shop = f.sim.shop.lock();
        let now = shop.clock.now();
        shop.catalog.seed(2, 1, now);
    }
    cowans_store::catalog::mark_products_deleted(&f.db.pool, f.shop.id, &[ids[20] as i64], None)
        .await
        .unwrap();

    let repair = f.pull(PullKind::Reconcile).await;
    assert_eq!(repair.kind, "reconcile");
    assert_eq!(repair.deleted, 2, "{repair:?}");
    assert_eq!(
        repair.products, 6,
        "3 edited, 2 new, 1 wrongly deleted: {repair:?}"
    );
    let (p, _) = f.catalog.product(f.shop.id, ids[0] as i64).await.unwrap();
    assert_eq!(p.title, "Missed edit");
    let (gone, _) = f.catalog.product(f.shop.id, ids[10] as i64).await.unwrap();
    assert!(gone.deleted_at.is_some());
    let (back, variants) = f.catalog.product(f.shop.id, ids[20] as i64).await.unwrap();
    assert!(back.deleted_at.is_none(), "Shopify still has it");
    assert_eq!(variants.len(), 2);
    assert_eq!(f.catalog.counts(f.shop.id).await.unwrap(), (60, 118));
    // Nothing left to repair.
    let again = f.pull(PullKind::Reconcile).await;
    assert_eq!((again.products, again.deleted), (0, 0), "{again:?}");
}
