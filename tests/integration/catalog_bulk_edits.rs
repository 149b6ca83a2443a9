//! Bulk edits over HTTP with real worker processes: a preview counts and shows diffs without
//! staging anything; a bulk edit stages its changes through a batch of chunk jobs (the batch's
//! progress on the engine, the changes reviewable by their source); only an admin may push one
//! without review, and that push reaches the simulated shop; bad operations name their part.

use std::time::Duration;

use cowans_catalog::PullKind;
use cowans_core::Role;
use cowans_testkit::wait_for;
use serde_json::{Value, json};

use crate::support::catalog::{Fixture, actor, fixture};

async fn key(f: &Fixture, role: Role) -> String {
    f.catalog
        .front()
        .create_api_key(&actor(), role.as_str(), role)
        .await
        .unwrap()
        .0
}

/// A decimal price in cents.
fn cents(price: &str) -> i64 {
    let (int, frac) = price.split_once('.').unwrap_or((price, ""));
    let frac = format!("{:0<2}", &frac[..frac.len().min(2)]);
    int.parse::<i64>().unwrap() * 100 + frac.parse::<i64>().unwrap()
}

/// `price` − 10 %, rounded half up to cents, then to the nearest price ending in .99.
fn minus_ten_to_99(price: &str) -> String {
    let c = (cents(price) * 90 + 50) / 100;
    let c = (((c + 1 + 50) / 100) * 100 - 1).max(99);
    format!("{}.{:02}", c / 100, c % 100)
}

async fn finished(f: &Fixture, id: i64) -> cowans_catalog::BulkEditRow {
    wait_for(
        "the bulk edit to finish",
        Duration::from_secs(120),
        || async {
            let b = f.catalog.bulk_edit(id).await.unwrap();
            (b.state != "running").then_some(b)
        },
    )
    .await
}

#[tokio::test]
async fn a_previewed_bulk_price_edit_is_staged_by_chunks_and_pushed_only_by_an_admin() {
    let f = fixture(1500, 2).await;
    let _w = f.worker(&[]);
    f.pull(PullKind::Full).await;
    let base = f.api().await;
    let (operator, admin) = (key(&f, Role::Operator).await, key(&f, Role::Admin).await);
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{base}/api/v1/shops/sim{p}");
    let spec = json!({
        "operations": [
            {"field": "price", "op": "percent", "value": "-10", "rounding": "99"},
            {"field": "tags", "op": "add", "value": ["sale"]}
        ]
    });

    let preview: Value = http
        .post(url("/bulk-edits/preview?sample=5"))
        .bearer_auth(&operator)
        .json(&spec)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(preview["products"], 1500, "{preview}");
    assert_eq!(preview["diffs"].as_array().unwrap().len(), 5);
    let changes = preview["changes"].as_u64().unwrap();
    // Worked out here, independently: a tag change per product not tagged sale yet, and a price change per variant
    // whose price −10 % rounded to the nearest .99 differs from its price now.
    let mut expected = 0u64;
    let mut after = None;
    loop {
        let page = f
            .catalog
            .products(f.shop.id, &Default::default(), after, 500)
            .await
            .unwrap();
        let Some((last, _)) = page.last() else { break };
        after = Some(last.id);
        for (p, vs) in &page {
            expected += u64::from(!p.tags.iter().any(|t| t.eq_ignore_ascii_case("sale")));
            expected += vs
                .iter()
                .filter(|v| cents(&v.price) != cents(&minus_ten_to_99(&v.price)))
                .count() as u64;
        }
    }
    assert_eq!(changes, expected, "{preview}");
    assert!(
        f.catalog.change_counts(f.shop.id).await.unwrap().is_empty(),
        "a preview stages nothing"
    );

    let r = http
        .post(url("/bulk-edits"))
        .bearer_auth(&operator)
        .json(&spec)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let started: Value = r.json().await.unwrap();
    let id = started["id"].as_i64().unwrap();
    let done = finished(&f, id).await;
    assert_eq!(done.state, "completed");
    assert_eq!((done.products, done.processed), (1500, 1500));
    assert_eq!(done.changes as u64, changes, "what the preview counted");
    let batch = f
        .catalog
        .front()
        .batch(done.batch_id.unwrap())
        .await
        .unwrap();
    assert_eq!(batch.total, 2, "1,500 products in chunks of 1,000");
    let listed: Value = http
        .get(url(&format!(
            "/changes?source=bulk_edit&source_id={id}&field=tags&limit=1000"
        )))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["changes"].as_array().unwrap().len(),
        1000,
        "a full page of tag changes"
    );
    assert_eq!(listed["counts"]["pending"].as_u64().unwrap(), changes);
    assert_eq!(
        listed["counts"].as_object().unwrap().len(),
        1,
        "all pending: {}",
        listed["counts"]
    );
    let prices: Value = http
        .get(url(&format!(
            "/changes?source=bulk_edit&source_id={id}&field=price&limit=50"
        )))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for c in prices["changes"].as_array().unwrap() {
        let f = &c["fields"][0];
        assert_eq!(
            f["proposed"].as_str().unwrap(),
            minus_ten_to_99(f["base"].as_str().unwrap()),
            "{c}"
        );
    }
    assert_eq!(
        f.requests_to("productUpdate"),
        0,
        "nothing pushed without review"
    );
    assert!(
        f.sim
            .shop
            .lock()
            .bulk
            .values()
            .all(|op| op.kind != "MUTATION"),
        "no bulk mutation either"
    );

    // Pushing without review: refused to an operator, done for an admin.
    let first: i64 = {
        let page = f
            .catalog
            .products(f.shop.id, &Default::default(), None, 1)
            .await
            .unwrap();
        page[0].0.id
    };
    let push = json!({
        "selection": {"ids": [first.to_string()]},
        "operations": [{"field": "vendor", "op": "set", "value": "Bulk Vendor"}],
        "push": true
    });
    let r = http
        .post(url("/bulk-edits"))
        .bearer_auth(&operator)
        .json(&push)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .post(url("/bulk-edits"))
        .bearer_auth(&admin)
        .json(&push)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id: i64 = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    assert_eq!(finished(&f, id).await.changes, 1);
    wait_for(
        "the vendor to reach Shopify",
        Duration::from_secs(60),
        || async {
            (f.sim.shop.lock().catalog.products[&(first as u64)].vendor == "Bulk Vendor")
                .then_some(())
        },
    )
    .await;

    // Bad operations name their part; nothing starts.
    for (body, field) in [
        (
            json!({"operations": [{"field": "price", "op": "triple"}]}),
            "operations[0].op",
        ),
        (json!({"operations": []}), "operations"),
        (
            json!({"selection": {"ids": ["x"]}, "operations": [{"field": "vendor", "op": "set", "value": "v"}]}),
            "selection.ids[0]",
        ),
        (
            json!({"selection": {"status": "gone"}, "operations": [{"field": "vendor", "op": "set", "value": "v"}]}),
            "status",
        ),
    ] {
        let r = http
            .post(url("/bulk-edits"))
            .bearer_auth(&operator)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{body}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["details"]["field"], field, "{e}");
    }
    assert_eq!(f.catalog.bulk_edits(f.shop.id, 50).await.unwrap().len(), 2);
}
