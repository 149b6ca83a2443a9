//! The console's catalog pages in a real browser against the API, a catalog worker and a
//! simulated shop: shops and sync (a pull started from the page, its progress live), the
//! staged-change review (a viewer sees no decision control and a forged decision is refused; a
//! hostile product title stays text; an operator approves one change and Shopify gets it,
//! settles a conflict with a merchant's edit by pushing the proposed value, then rejects all
//! that match after seeing the count), the bulk edit preview, and how long a page of 1,000
//! pending changes takes to render.

use std::time::Duration;

use cowans_catalog::{Edit, PullKind, Source};
use cowans_testkit::wait_for;
use serde_json::json;

use crate::support::{
    browser::{Browser, browser, session_of, sign_in},
    catalog::{Fixture, actor, fixture},
};

fn title_edit(product: i64, title: &str) -> Edit {
    Edit {
        product_id: product,
        variant_id: None,
        fields: json!({ "title": title }).as_object().unwrap().clone(),
    }
}

async fn product_ids(f: &Fixture, n: i64) -> Vec<i64> {
    f.catalog
        .products(f.shop.id, &Default::default(), None, n)
        .await
        .unwrap()
        .into_iter()
        .map(|(p, _)| p.id)
        .collect()
}

async fn stage(f: &Fixture, edits: &[Edit]) -> Vec<i64> {
    f.catalog
        .stage(&actor(), f.shop.id, edits, Source::Edit, |i| {
            format!("edits[{i}]")
        })
        .await
        .unwrap()
        .ids
}

fn sim_title(f: &Fixture, id: i64) -> String {
    f.sim.shop.lock().catalog.products[&(id as u64)]
        .title
        .clone()
}

/// The change staged for `product`.
async fn change_of(f: &Fixture, product: i64) -> i64 {
    let filter = cowans_catalog::ChangeFilter {
        product_id: Some(product),
        ..Default::default()
    };
    let found = f
        .catalog
        .changes(f.shop.id, &filter, None, 2)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    found[0].id
}

async fn change_state(f: &Fixture, id: i64) -> String {
    f.catalog.change(f.shop.id, id).await.unwrap().state
}

/// Signs out (the form in the page's header).
async fn sign_out(b: &Browser) {
    b.navigate_by("form.signout button").await;
}

#[tokio::test]
async fn a_reviewer_approves_a_change_that_reaches_the_shop_and_a_viewer_cannot() {
    let f = fixture(1000, 1).await;
    let _worker = f.worker(&[]);
    let api = f.api().await;
    let operator = crate::support::api::key(&f.db.pool, "operator").await;
    let viewer = crate::support::api::key(&f.db.pool, "viewer").await;
    let b = browser().await;

    // Shops and sync: the operator starts the first pull from the page and watches it end.
    sign_in(&b, &api, &operator).await;
    b.open(&format!("{api}/console/shops")).await;
    assert!(b.text("section.shop").await.contains("never pulled"));
    b.navigate_by("section.shop form button").await;
    let pull = b
        .js("return document.querySelector('[data-pull]').getAttribute('data-pull')")
        .await;
    let pull = pull.as_str().unwrap().to_owned();
    let css = format!("[data-pull='{pull}']");
    let done = wait_for(
        "the pull to show completed",
        Duration::from_secs(180),
        || async {
            let t = b.text(&css).await;
            t.starts_with("full completed").then_some(t)
        },
    )
    .await;
    assert!(done.contains("1000 products"), "{done}");
    let size = format!("[data-catalog='{}']", f.shop.id);
    wait_for(
        "the card to show the catalog's size",
        Duration::from_secs(60),
        || async { (b.text(&size).await == "1000 products, 1000 variants").then_some(()) },
    )
    .await;
    b.screenshot("shops").await;
    sign_out(&b).await;

    // 999 ordinary changes, one hostile title, one to approve.
    let ids = product_ids(&f, 1000).await;
    let probe = "<img src=x onerror=window.cowansXss=1>";
    let mut edits: Vec<Edit> = ids[2..]
        .iter()
        .map(|id| title_edit(*id, &format!("Renamed {id}")))
        .collect();
    edits.push(title_edit(ids[0], probe));
    edits.push(title_edit(ids[1], "Approved in the console"));
    let changes = stage(&f, &edits).await;
    assert_eq!(changes.len(), 1000);
    let (hostile, approved) = (change_of(&f, ids[0]).await, change_of(&f, ids[1]).await);

    // A viewer: the whole page of 1,000 renders (timed), no decision control, and a decision
    // posted by hand with the viewer's own token is refused.
    sign_in(&b, &api, &viewer).await;
    let review = format!("{api}/console/shops/{}/changes", f.shop.id);
    b.open(&format!("{review}?limit=1000")).await;
    assert_eq!(b.count("div.change").await, 1000);
    let timing = b
        .js("const n = performance.getEntriesByType('navigation')[0]; \
             return { ms: n.loadEventEnd - n.startTime, bytes: n.decodedBodySize };")
        .await;
    println!("review page of 1,000 pending changes: {timing}");
    assert_eq!(b.count("button[name='approve_one']").await, 0);
    assert_eq!(b.count("form.decide-all").await, 0);
    let (_, csrf) = session_of(&b).await;
    let status = b
        .js(&format!(
            "return fetch('/console/shops/{}/changes/decide', {{method: 'POST', \
               headers: {{'content-type': 'application/x-www-form-urlencoded'}}, \
               body: 'approve_one={approved}&_csrf=' + encodeURIComponent('{csrf}')}}) \
             .then(r => r.status)",
            f.shop.id
        ))
        .await;
    assert_eq!(status, json!(403));
    assert_eq!(change_state(&f, approved).await, "pending");

    // The hostile title is text, and no script ran.
    b.open(&format!("{review}?product={}", ids[0])).await;
    let cell = b
        .text(&format!("div.change[data-change='{hostile}'] td.proposed"))
        .await;
    assert_eq!(cell, probe);
    assert_eq!(b.count("section.product img").await, 0);
    assert_eq!(
        b.js("return window.cowansXss === undefined").await,
        json!(true)
    );
    sign_out(&b).await;

    // The operator approves one change with the button on it; the push takes it to Shopify.
    sign_in(&b, &api, &operator).await;
    b.open(&format!("{review}?product={}", ids[1])).await;
    let block = b
        .text(&format!("div.change[data-change='{approved}']"))
        .await;
    assert!(block.contains("Approved in the console"), "{block}");
    b.navigate_by(&format!("button[name='approve_one'][value='{approved}']"))
        .await;
    wait_for(
        "Shopify to have the new title",
        Duration::from_secs(120),
        || async { (sim_title(&f, ids[1]) == "Approved in the console").then_some(()) },
    )
    .await;
    wait_for(
        "the change to be pushed",
        Duration::from_secs(60),
        || async { (change_state(&f, approved).await == "pushed").then_some(()) },
    )
    .await;
    b.open(&format!("{review}?state=pushed")).await;
    assert!(
        b.count(&format!("div.change[data-change='{approved}']"))
            .await
            == 1
    );

    // A merchant renames a product in Shopify's admin after its change was staged: approved,
    // the push finds the conflict; the page shows Shopify's value against the proposed one,
    // and the operator pushes the proposed value over it.
    let disputed = change_of(&f, ids[2]).await;
    let r = reqwest::Client::new()
        .post(format!(
            "{}/__sim/products/{}/edit",
            f.sim.base_url(),
            ids[2]
        ))
        .json(&json!({"title": "The merchant's title"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    b.open(&format!("{review}?product={}", ids[2])).await;
    b.navigate_by(&format!("button[name='approve_one'][value='{disputed}']"))
        .await;
    wait_for(
        "the push to find the conflict",
        Duration::from_secs(120),
        || async { (change_state(&f, disputed).await == "conflict").then_some(()) },
    )
    .await;
    b.open(&format!("{review}?state=conflict")).await;
    let row = b
        .text(&format!("div.change[data-change='{disputed}'] tr.conflict"))
        .await;
    assert!(
        row.contains("The merchant's title") && row.contains(&format!("Renamed {}", ids[2])),
        "{row}"
    );
    b.screenshot("review-conflict").await;
    b.navigate_by("button[name='choice'][value='proposed']")
        .await;
    assert_eq!(change_state(&f, disputed).await, "pending");
    b.open(&format!("{review}?product={}", ids[2])).await;
    b.navigate_by(&format!("button[name='approve_one'][value='{disputed}']"))
        .await;
    wait_for(
        "the proposed title in Shopify",
        Duration::from_secs(120),
        || async { (sim_title(&f, ids[2]) == format!("Renamed {}", ids[2])).then_some(()) },
    )
    .await;

    // Then rejects all 998 others with a reason, after the page showed the count.
    b.open(&format!("{review}?limit=12")).await;
    b.screenshot("review").await;
    let button = b.text("form.decide-all button[value='reject']").await;
    assert_eq!(button, "Reject all 998 matching");
    b.type_into("form.decide-all input[name='reason']", "not this season")
        .await;
    b.navigate_by("form.decide-all button[value='reject']")
        .await;
    assert_eq!(b.text("p.count strong").await, "0");
    let rejected = f.catalog.change(f.shop.id, hostile).await.unwrap();
    assert_eq!(rejected.state, "rejected");
    assert_eq!(rejected.reason.as_deref(), Some("not this season"));
    assert_ne!(
        sim_title(&f, ids[0]),
        probe,
        "a rejected change is never pushed"
    );

    // Every page fits a laptop's and a phone's width: wide tables scroll inside themselves,
    // the page does not.
    let shop = f.shop.id;
    for (width, height) in [(1280, 900), (390, 844)] {
        b.client.set_window_size(width, height).await.unwrap();
        for path in [
            "/console".to_owned(),
            "/console/jobs".to_owned(),
            "/console/dead".to_owned(),
            "/console/batches".to_owned(),
            "/console/shops".to_owned(),
            format!("/console/shops/{shop}/changes?state=rejected&limit=20"),
            format!("/console/shops/{shop}/bulk-edit"),
            "/console/errors".to_owned(),
        ] {
            b.open(&format!("{api}{path}")).await;
            let fits = b
                .js("return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
                .await;
            let (page, window) = (fits[0].as_i64().unwrap(), fits[1].as_i64().unwrap());
            assert!(window <= i64::from(width), "a {width}px window: {fits}");
            assert!(
                page <= window,
                "{path} is {page}px wide in a {window}px window"
            );
        }
    }
    b.open(&format!("{review}?state=rejected&limit=5")).await;
    b.screenshot("review-phone").await;
}

#[tokio::test]
async fn a_bulk_edit_is_previewed_then_staged_for_review() {
    let f = fixture(30, 2).await;
    let _worker = f.worker(&[]);
    f.pull(PullKind::Full).await;
    let api = f.api().await;
    let operator = crate::support::api::key(&f.db.pool, "operator").await;
    let b = browser().await;
    sign_in(&b, &api, &operator).await;
    b.open(&format!("{api}/console/shops/{}/bulk-edit", f.shop.id))
        .await;
    b.type_into("input[name='value']", "-10").await;
    b.js("document.querySelector(\"select[name='op']\").value = 'percent'; return null")
        .await;
    b.navigate_by("form.bulk-edit button").await;
    // 30 products × 2 variants, every price 10 % lower: 60 changes, nothing staged yet.
    let preview = b.text("p.count").await;
    assert!(
        preview.contains("30 products selected; 30 would change (60 changes"),
        "{preview}"
    );
    assert_eq!(b.count("table.diffs tbody tr").await, 50);
    assert!(f.catalog.change_counts(f.shop.id).await.unwrap().is_empty());
    b.screenshot("bulk-edit-preview").await;
    b.navigate_by("form.inline button").await;
    wait_for(
        "the bulk edit's changes",
        Duration::from_secs(120),
        || async {
            let n: i64 = f
                .catalog
                .change_counts(f.shop.id)
                .await
                .unwrap()
                .iter()
                .map(|(_, n)| n)
                .sum();
            (n == 60).then_some(())
        },
    )
    .await;
    b.client.refresh().await.unwrap();
    assert_eq!(b.text("p.count strong").await, "60");
    let url = b.client.current_url().await.unwrap();
    assert!(url.query().unwrap().contains("source=bulk_edit"), "{url}");
}
