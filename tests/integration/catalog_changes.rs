//! Staged changes, review and push against a simulated shop with real worker processes: a
//! change records base and proposed per field; a newer change supersedes an older pending one;
//! decisions by ids or by filter with the expected count; the four-eyes rule; the push's
//! three-way check (a merchant's edit between staging and push is a conflict for that field
//! only, the rest is pushed), conflict resolution, Shopify's user errors, a product deleted in
//! Shopify, a push killed mid-way that neither loses nor repeats a write, a push through the
//! simulator's throttles, errors and resets, a token refused mid-push, and the bulk path.

use std::time::Duration;

use cowans_catalog::{
    Catalog, ChangeFilter, ChangeRow, ChangeView, Decision, Edit, PullKind, Resolution, Selection,
    Source,
};
use cowans_core::Actor;
use cowans_testkit::wait_for;
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::support::api::{request, request_text};
use crate::support::catalog::{Fixture, actor, catalog_with, fixture, settings};

fn fields(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn product_edit(id: i64, v: Value) -> Edit {
    Edit {
        product_id: id,
        variant_id: None,
        fields: fields(v),
    }
}

fn variant_edit(product: i64, variant: i64, v: Value) -> Edit {
    Edit {
        product_id: product,
        variant_id: Some(variant),
        fields: fields(v),
    }
}

fn person(name: &str) -> Actor {
    Actor {
        name: format!("key:1:{name}"),
        role: cowans_core::Role::Operator,
        client_addr: None,
    }
}

/// The shop's products (id order) with their variants' ids, from the catalog.
async fn catalog_ids(f: &Fixture) -> Vec<(i64, Vec<i64>)> {
    f.catalog
        .products(f.shop.id, &Default::default(), None, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|(p, vs)| (p.id, vs.into_iter().map(|v| v.id).collect()))
        .collect()
}

async fn stage(cat: &Catalog, who: &Actor, shop: i64, edits: &[Edit]) -> Vec<i64> {
    cat.stage(who, shop, edits, Source::Edit, |i| format!("edits[{i}]"))
        .await
        .unwrap()
        .ids
}

async fn change(f: &Fixture, id: i64) -> ChangeRow {
    f.catalog.change(f.shop.id, id).await.unwrap()
}

fn sim_product(f: &Fixture, id: i64) -> cowans_shopsim::model::Product {
    f.sim.shop.lock().catalog.products[&(id as u64)].clone()
}

#[tokio::test]
async fn a_change_keeps_base_and_proposed_and_a_newer_one_supersedes_it() {
    let f = fixture(5, 2).await;
    let _w = f.worker(&[]);
    f.pull(PullKind::Full).await;
    let ids = catalog_ids(&f).await;
    let (p, vs) = &ids[0];
    let before = f.catalog.product(f.shop.id, *p).await.unwrap();

    let a = stage(
        &f.catalog,
        &actor(),
        f.shop.id,
        &[
            product_edit(*p, json!({"title": "First", "vendor": "Acme Two"})),
            variant_edit(*p, vs[0], json!({"price": "12.5"})),
        ],
    )
    .await;
    assert_eq!(a.len(), 2);
    let first = change(&f, a[0]).await;
    assert_eq!(first.state, "pending");
    assert_eq!(
        first.fields["title"],
        json!({"base": before.0.title, "proposed": "First"})
    );
    let price = change(&f, a[1]).await;
    assert_eq!(price.variant_id, Some(vs[0]));
    assert_eq!(
        price.fields["price"]["proposed"],
        json!("12.50"),
        "money in canonical form"
    );

    // A newer title takes the field over; the vendor stays with the first change.
    let b = stage(
        &f.catalog,
        &actor(),
        f.shop.id,
        &[product_edit(*p, json!({"title": "Second"}))],
    )
    .await;
    let first = change(&f, a[0]).await;
    assert_eq!(
        (first.state.as_str(), first.superseded.clone()),
        ("pending", vec!["title".to_owned()])
    );
    let view = ChangeView::from(first);
    assert!(
        view.fields
            .iter()
            .any(|f| f.field == "title" && f.superseded)
    );
    // And one that takes over the rest makes it superseded.
    stage(
        &f.catalog,
        &actor(),
        f.shop.id,
        &[product_edit(*p, json!({"vendor": "Acme Three"}))],
    )
    .await;
    assert_eq!(change(&f, a[0]).await.state, "superseded");
    assert_eq!(change(&f, b[0]).await.state, "pending");

    // A value already in the catalog proposes nothing; bad values name their field.
    let same = f
        .catalog
        .stage(
            &actor(),
            f.shop.id,
            &[product_edit(*p, json!({"handle": before.0.handle}))],
            Source::Edit,
            |_| String::new(),
        )
        .await
        .unwrap();
    assert_eq!((same.ids.len(), same.unchanged), (0, 1));
    for (edit, field) in [
        (
            variant_edit(*p, vs[0], json!({"price": "-3"})),
            "edits[0].price",
        ),
        (
            variant_edit(*p, vs[0], json!({"price": "abc"})),
            "edits[0].price",
        ),
        (
            product_edit(*p, json!({"colour": "red"})),
            "edits[0].colour",
        ),
        (product_edit(*p, json!({"price": "1.00"})), "edits[0].price"),
        (
            product_edit(*p, json!({"status": "gone"})),
            "edits[0].status",
        ),
        (
            product_edit(999, json!({"title": "x"})),
            "edits[0].product_id",
        ),
        (
            variant_edit(*p, ids[1].1[0], json!({"price": "1"})),
            "edits[0].variant_id",
        ),
    ] {
        let e = f
            .catalog
            .stage(&actor(), f.shop.id, &[edit], Source::Edit, |i| {
                format!("edits[{i}]")
            })
            .await
            .unwrap_err();
        match e {
            cowans_queue::StoreError::Invalid { field: got, .. } => assert_eq!(got, field),
            other => panic!("{field}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn decisions_by_ids_or_filter_check_state_count_and_four_eyes() {
    let f = fixture(6, 1).await;
    let _w = f.worker(&[]);
    f.pull(PullKind::Full).await;
    let mut s = settings();
    s.four_eyes = true;
    s.push_on_approve = false;
    let cat = catalog_with(&f.db, &s);
    let ids = catalog_ids(&f).await;
    let (ana, bo) = (person("ana"), person("bo"));
    let mine: Vec<i64> = {
        let edits: Vec<Edit> = ids
            .iter()
            .map(|(p, _)| product_edit(*p, json!({"tags": ["sale", "summer"]})))
            .collect();
        stage(&cat, &ana, f.shop.id, &edits).await
    };
    assert_eq!(mine.len(), 6);

    // Four eyes: ana cannot approve her own change, by id or by filter (where they do not count).
    let e = cat
        .decide(
            &ana,
            f.shop.id,
            &Selection::Ids(vec![mine[0]]),
            Decision::Approve,
            None,
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("four_eyes"), "{e}");
    let all_pending = ChangeFilter {
        state: Some("pending".into()),
        ..Default::default()
    };
    let e = cat
        .decide(
            &ana,
            f.shop.id,
            &Selection::Matching {
                filter: all_pending.clone(),
                expected: 6,
            },
            Decision::Approve,
            None,
        )
        .await
        .unwrap_err();
    match e {
        cowans_queue::StoreError::Conflict { details, .. } => assert_eq!(details["actual"], 0),
        other => panic!("{other:?}"),
    }
    // The count a reviewer is shown first is the one the decision will find.
    let count = async |who: &Actor, decision| {
        cat.count_decidable(who, f.shop.id, &all_pending, decision)
            .await
            .unwrap()
    };
    assert_eq!(count(&ana, Decision::Approve).await, 0);
    assert_eq!(count(&ana, Decision::Reject).await, 6);
    assert_eq!(count(&bo, Decision::Approve).await, 6);
    // A wrong count is refused and changes nothing.
    let e = cat
        .decide(
            &bo,
            f.shop.id,
            &Selection::Matching {
                filter: all_pending.clone(),
                expected: 5,
            },
            Decision::Approve,
            Some("looks right"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, cowans_queue::StoreError::Conflict { .. }),
        "{e:?}"
    );
    assert_eq!(change(&f, mine[0]).await.state, "pending");

    // bo rejects one by id, then approves the rest by filter.
    let rejected = cat
        .decide(
            &bo,
            f.shop.id,
            &Selection::Ids(vec![mine[0]]),
            Decision::Reject,
            Some("not this one"),
        )
        .await
        .unwrap();
    assert_eq!(rejected, vec![mine[0]]);
    let approved = cat
        .decide(
            &bo,
            f.shop.id,
            &Selection::Matching {
                filter: all_pending,
                expected: 5,
            },
            Decision::Approve,
            Some("summer sale"),
        )
        .await
        .unwrap();
    assert_eq!(approved.len(), 5);
    let c = change(&f, mine[1]).await;
    assert_eq!(
        (
            c.state.as_str(),
            c.decided_by.as_deref(),
            c.reason.as_deref()
        ),
        ("approved", Some("key:1:bo"), Some("summer sale"))
    );
    // A decided change cannot be decided again.
    let e = cat
        .decide(
            &bo,
            f.shop.id,
            &Selection::Ids(vec![mine[0]]),
            Decision::Approve,
            None,
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("is rejected"), "{e}");
    // Every decision is in the audit log.
    let audit = f.catalog.front().audit_log(None, 50).await.unwrap();
    let decisions: Vec<_> = audit
        .iter()
        .filter(|a| a.action.starts_with("change."))
        .map(|a| (a.action.as_str(), a.details["count"].as_i64()))
        .collect();
    assert!(
        decisions.contains(&("change.approve", Some(5))),
        "{decisions:?}"
    );
    assert!(
        decisions.contains(&("change.reject", Some(1))),
        "{decisions:?}"
    );
    // With push_on_approve off no push was started (the approval's audit entry names none).
    let approval = audit.iter().find(|a| a.action == "change.approve").unwrap();
    assert!(
        approval.details["push_job"].is_null(),
        "{:?}",
        approval.details
    );
    assert_eq!(f.requests_to("productUpdate"), 0);
}

#[tokio::test]
async fn a_merchant_edit_between_staging_and_push_is_a_conflict_for_that_field_only() {
    let f = fixture(4, 2).await;
    let _w = f.worker(&[]);
    f.pull(PullKind::Full).await;
    let ids = catalog_ids(&f).await;
    let (p, vs) = &ids[0];
    let (q, _) = &ids[1];
    let original = f.catalog.product(f.shop.id, *p).await.unwrap().0.title;
    let staged = stage(
        &f.catalog,
        &actor(),
        f.shop.id,
        &[
            product_edit(*p, json!({"title": "Our title", "tags": "new, sale"})),
            variant_edit(
                *p,
                vs[1],
                json!({"price": "99.00", "compare_at_price": "120"}),
            ),
            product_edit(*q, json!({"vendor": "Someone Else"})),
        ],
    )
    .await;
    // The merchant renames the product and changes stock-like data in the admin meanwhile.
    let r = reqwest::Client::new()
        .post(format!("{}/__sim/products/{p}/edit", f.sim.base_url()))
        .json(&json!({"title": "The merchant's title"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    let approved = f.approve_all(3).await;
    assert_eq!(approved.len(), 3);
    f.pushed().await;

    let title = change(&f, staged[0]).await;
    assert_eq!(title.state, "conflict");
    assert_eq!(title.fields["title"]["outcome"], "conflict");
    assert_eq!(title.fields["title"]["current"], "The merchant's title");
    assert_eq!(title.fields["title"]["proposed"], "Our title");
    assert_eq!(title.fields["title"]["base"], json!(original));
    // The same change's tags were written: only the title waits for review.
    assert_eq!(title.fields["tags"]["outcome"], "written");
    let price = change(&f, staged[1]).await;
    assert_eq!(price.state, "pushed", "{price:?}");
    let vendor = change(&f, staged[2]).await;
    assert_eq!(vendor.state, "pushed");

    let sp = sim_product(&f, *p);
    assert_eq!(
        sp.title, "The merchant's title",
        "never silently overwritten"
    );
    assert_eq!(sp.variants[1].price, "99.00");
    assert_eq!(sp.variants[1].compare_at_price.as_deref(), Some("120.00"));
    assert_eq!(sim_product(&f, *q).vendor, "Someone Else");
    // The catalog's snapshot follows what was pushed.
    let (stored_q, _) = f.catalog.product(f.shop.id, *q).await.unwrap();
    assert_eq!(stored_q.vendor, "Someone Else");
    let (_, stored_vs) = f.catalog.product(f.shop.id, *p).await.unwrap();
    assert_eq!(stored_vs[1].price, "99.00");

    // The reviewer keeps their title after all: back to pending, approved, pushed.
    let mut choice = std::collections::BTreeMap::new();
    choice.insert("title".to_owned(), Resolution::Proposed);
    let to = f
        .catalog
        .resolve(&actor(), f.shop.id, staged[0], &choice, Some("ours wins"))
        .await
        .unwrap();
    assert_eq!(to, cowans_catalog::ChangeState::Pending);
    let c = change(&f, staged[0]).await;
    assert_eq!(c.fields["title"]["base"], "The merchant's title");
    f.catalog
        .decide(
            &actor(),
            f.shop.id,
            &Selection::Ids(vec![staged[0]]),
            Decision::Approve,
            None,
        )
        .await
        .unwrap();
    f.pushed().await;
    let c = change(&f, staged[0]).await;
    assert_eq!(c.state, "pushed", "{c:?}");
    assert_eq!(
        c.fields["tags"]["outcome"], "already",
        "written by the first push"
    );
    assert_eq!(sim_product(&f, *p).title, "Our title");
}

#[tokio::test]
async fn user_errors_and_deleted_products_fail_their_changes_only() {
    let f = fixture(4, 1).await;
    let _w = f.worker(&[]);
    f.pull(PullKind::Full).await;
    let ids = catalog_ids(&f).await;
    let taken = sim_product(&f, ids[1].0).handle;
    let staged = stage(
        &f.catalog,
        &actor(),
        f.shop.id,
        &[
            // Shopify refuses a handle another product has.
            product_edit(ids[0].0, json!({"handle": taken})),
            product_edit(ids[2].0, json!({"title": "Gone soon"})),
            product_edit(ids[3].0, json!({"product_type": "Hats"})),
        ],
    )
    .await;
    let r = reqwest::Client::new()
        .delete(format!("{}/__sim/products/{}", f.sim.base_url(), ids[2].0))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    f.approve_all(3).await;
    f.pushed().await;
    let handle = change(&f, staged[0]).await;
    assert_eq!(handle.state, "failed");
    assert!(
        handle.error.as_deref().unwrap().contains("handle"),
        "{handle:?}"
    );
    let gone = change(&f, staged[1]).await;
    assert_eq!(gone.state, "failed");
    assert!(
        gone.error.as_deref().unwrap().contains("no longer exists"),
        "{gone:?}"
    );
    assert_eq!(change(&f, staged[2]).await.state, "pushed");
    assert_eq!(sim_product(&f, ids[3].0).product_type, "Hats");
}

#[tokio::test]
async fn a_push_killed_mid_way_neither_loses_nor_repeats_a_write() {
    let f = fixture(200, 1).await;
    let mut first = f.worker(&[("COWANS__CATALOG__PUSH_BATCH", "10")]);
    f.pull(PullKind::Full).await;
    let ids = catalog_ids(&f).await;
    let edits: Vec<Edit> = ids
        .iter()
        .map(|(p, vs)| variant_edit(*p, vs[0], json!({"price": "7.77"})))
        .collect();
    let staged = stage(&f.catalog, &actor(), f.shop.id, &edits).await;
    assert_eq!(staged.len(), 200);
    // Slow answers, so the kill is likely to land while a request is in flight.
    f.sim.shop.lock().faults.latency_ms = 100;
    f.approve_all(200).await;
    // Kill the worker once part of the changes are pushed.
    wait_for("a first batch pushed", Duration::from_secs(60), || async {
        let counts = f.catalog.change_counts(f.shop.id).await.unwrap();
        counts
            .iter()
            .any(|(s, n)| s == "pushed" && *n > 0)
            .then_some(())
    })
    .await;
    first.kill9();
    let counts = f.catalog.change_counts(f.shop.id).await.unwrap();
    let done_at_kill: i64 = counts
        .iter()
        .filter(|(s, _)| s == "pushed")
        .map(|(_, n)| n)
        .sum();
    assert!(done_at_kill < 200, "the push must be cut short: {counts:?}");

    f.sim.shop.lock().faults.latency_ms = 0;
    let _second = f.worker(&[("COWANS__CATALOG__PUSH_BATCH", "10")]);
    f.pushed().await;
    let counts = f.catalog.change_counts(f.shop.id).await.unwrap();
    assert_eq!(counts, vec![("pushed".to_owned(), 200)], "nothing lost");
    for (p, _) in &ids {
        assert_eq!(sim_product(&f, *p).variants[0].price, "7.77");
    }
    let writes: usize = f
        .sim
        .shop
        .lock()
        .log
        .iter()
        .map(|r| {
            r.root_fields
                .iter()
                .filter(|f| *f == "productVariantsBulkUpdate")
                .count()
        })
        .sum();
    assert_eq!(
        writes, 200,
        "each variant written once, however the kill fell"
    );
}

#[tokio::test]
async fn the_review_api_stages_lists_decides_and_refuses_by_field() {
    let f = fixture(3, 2).await;
    let _w = f.worker(&[]);
    f.pull(PullKind::Full).await;
    let base = f.api().await;
    let ids = catalog_ids(&f).await;
    let (p, vs) = &ids[0];
    let (token, _) = f
        .catalog
        .front()
        .create_api_key(&actor(), "reviewer", cowans_core::Role::Operator)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{base}/api/v1/shops/sim{path}");
    let original = f.catalog.product(f.shop.id, *p).await.unwrap().0.title;
    let edit =
        json!({"title": "From the API", "variants": [{"id": vs[0].to_string(), "price": "5"}]});
    let product = url(&format!("/products/{p}"));
    let (status, body) = request(&http, Method::PATCH, &product, Some(&token), Some(edit)).await;
    assert_eq!(status, 201);
    assert_eq!(body["changes"].as_array().unwrap().len(), 2, "{body}");
    let title = &body["changes"][0];
    assert_eq!(title["product_id"], p.to_string());
    assert_eq!(title["fields"][0]["field"], "title");
    assert_eq!(title["fields"][0]["proposed"], "From the API");
    assert_eq!(title["fields"][0]["base"], json!(original));
    assert_eq!(title["fields"][0]["current"], json!(original));

    for (body, field) in [
        (
            json!({"variants": [{"id": vs[0].to_string(), "price": "x"}]}),
            "variants[0].price",
        ),
        (json!({"variants": [{"price": "1"}]}), "variants[0].id"),
        (json!({"colour": "red"}), "colour"),
        (json!({}), "body"),
    ] {
        let (status, e) = request(
            &http,
            Method::PATCH,
            &product,
            Some(&token),
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(e["error"]["details"]["field"], field, "{e}");
    }

    let (_, list) = request(
        &http,
        Method::GET,
        &url("/changes?state=pending&field=price"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(list["changes"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["counts"]["pending"], 2);
    let approve = url("/changes/approve");
    let decide = |body: Value| request(&http, Method::POST, &approve, Some(&token), Some(body));
    let (status, e) = decide(json!({"filter": {"state": "pending"}, "expected": 3})).await;
    assert_eq!(status, 409);
    assert_eq!(e["error"]["details"]["actual"], 2, "{e}");
    let (status, _) = decide(json!({"filter": {"state": "pending"}})).await;
    assert_eq!(status, 422);
    let (status, _) =
        decide(json!({"filter": {"state": "pending"}, "expected": 2, "reason": "ok"})).await;
    assert_eq!(status, 200);
    f.pushed().await;
    let (_, list) = request(
        &http,
        Method::GET,
        &url("/changes?state=pushed"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(list["changes"].as_array().unwrap().len(), 2, "{list}");
    assert_eq!(sim_product(&f, *p).title, "From the API");
    // The changes as CSV (a row per field) and JSON Lines (a change per line).
    let (_, csv) = request_text(
        &http,
        Method::GET,
        &url("/changes/export?format=csv&state=pushed"),
        Some(&token),
        None,
    )
    .await;
    let mut rows = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = rows.headers().unwrap().iter().map(str::to_owned).collect();
    let col = |n: &str| header.iter().position(|h| h == n).unwrap();
    let rows: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2, "{csv}");
    let title = rows.iter().find(|r| &r[col("Field")] == "title").unwrap();
    assert_eq!(
        (
            &title[col("Proposed")],
            &title[col("Outcome")],
            &title[col("Product ID")]
        ),
        ("From the API", "written", p.to_string().as_str())
    );
    let (_, lines) = request_text(
        &http,
        Method::GET,
        &url("/changes/export?format=jsonl"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(lines.lines().count(), 2);
    let first: Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(first["state"], "pushed");
    let (status, _) = request(
        &http,
        Method::GET,
        &url("/changes/export?limit=5"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 422);
    // A viewer reads but does not stage.
    let (viewer, _) = f
        .catalog
        .front()
        .create_api_key(&actor(), "viewer", cowans_core::Role::Viewer)
        .await
        .unwrap();
    let r = http
        .patch(url(&format!("/products/{p}")))
        .bearer_auth(&viewer)
        .json(&json!({"title": "Nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn a_large_push_goes_through_a_bulk_export_and_bulk_mutations_with_the_same_checks() {
    let f = fixture(30, 2).await;
    // Ten or more approved changes take the bulk path here.
    let _w = f.worker(&[("COWANS__CATALOG__PUSH_BULK_MIN", "10")]);
    f.pull(PullKind::Full).await;
    let ids = catalog_ids(&f).await;
    let mut edits: Vec<Edit> = ids
        .iter()
        .map(|(p, vs)| variant_edit(*p, vs[1], json!({"price": "55.55"})))
        .collect();
    edits.push(product_edit(ids[0].0, json!({"vendor": "Bulk Vendor"})));
    let staged = stage(&f.catalog, &actor(), f.shop.id, &edits).await;
    assert_eq!(staged.len(), 31);
    // The merchant changes the prices of product 5 meanwhile: its change is a conflict.
    let r = reqwest::Client::new()
        .post(format!(
            "{}/__sim/products/{}/edit",
            f.sim.base_url(),
            ids[5].0
        ))
        .json(&json!({"price": "1.00"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    f.approve_all(31).await;
    f.pushed().await;
    let counts = f.catalog.change_counts(f.shop.id).await.unwrap();
    assert_eq!(
        counts,
        vec![("conflict".to_owned(), 1), ("pushed".to_owned(), 30)],
        "{counts:?}"
    );
    let conflict = f
        .catalog
        .changes(
            f.shop.id,
            &ChangeFilter {
                state: Some("conflict".into()),
                ..Default::default()
            },
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(conflict[0].product_id, ids[5].0);
    assert_eq!(conflict[0].fields["price"]["current"], "1.00");
    for (i, (p, _)) in ids.iter().enumerate() {
        let sp = sim_product(&f, *p);
        let want = if i == 5 { "1.00" } else { "55.55" };
        assert_eq!(sp.variants[1].price, want, "product {i}");
    }
    assert_eq!(sim_product(&f, ids[0].0).vendor, "Bulk Vendor");
    let kinds: Vec<&str> = f
        .sim
        .shop
        .lock()
        .bulk
        .values()
        .map(|op| op.kind)
        .collect::<Vec<_>>()
        .into_iter()
        .collect();
    assert!(
        kinds.iter().filter(|k| **k == "MUTATION").count() == 2,
        "one bulk mutation per mutation type: {kinds:?}"
    );
    assert_eq!(
        f.requests_to("productVariantsBulkUpdate"),
        0,
        "no aliased writes on the bulk path"
    );
    assert_eq!(f.requests_to("nodes"), 0, "read through a bulk export");
    let reads = f.bulk_queries();
    assert!(
        reads.last().unwrap().contains("id:>="),
        "the push exported its range of products: {reads:?}"
    );
    // The catalog follows.
    let (_, vs) = f.catalog.product(f.shop.id, ids[9].0).await.unwrap();
    assert_eq!(vs[1].price, "55.55");
}

#[tokio::test]
async fn a_push_through_throttles_errors_and_resets_ends_with_every_change_pushed() {
    let f = fixture(40, 1).await;
    let w = f.worker(&[("COWANS__CATALOG__PUSH_BATCH", "20")]);
    f.pull(PullKind::Full).await;
    let ids = catalog_ids(&f).await;
    let edits: Vec<Edit> = ids
        .iter()
        .flat_map(|(p, vs)| {
            [
                product_edit(*p, json!({"title": format!("Faulted {p}")})),
                variant_edit(*p, vs[0], json!({"price": "3.33"})),
            ]
        })
        .collect();
    stage(&f.catalog, &actor(), f.shop.id, &edits).await;
    f.sim.shop.lock().faults = cowans_shopsim::Faults {
        latency_ms: 5,
        throttles: 2,
        internal_errors: 1,
        unavailable: 1,
        resets: 1,
        ..cowans_shopsim::Faults::default()
    };
    f.approve_all(80).await;
    f.pushed().await;
    let counts = f.catalog.change_counts(f.shop.id).await.unwrap();
    assert_eq!(counts, vec![("pushed".to_owned(), 80)], "{counts:?}");
    {
        let x = &f.sim.shop.lock().faults;
        assert_eq!(
            (x.throttles, x.internal_errors, x.unavailable, x.resets),
            (0, 0, 0, 0)
        );
    }
    for (p, _) in &ids {
        let sp = sim_product(&f, *p);
        assert_eq!(
            (sp.title, sp.variants[0].price.as_str()),
            (format!("Faulted {p}"), "3.33")
        );
    }
    // The worker's metrics tell the same story as the simulator's log: every request by
    // outcome (the faults among them), the points the answered ones cost, the changes pushed.
    let log = f.sim.shop.lock().log.clone();
    let outcome = |o: &str| log.iter().filter(|r| r.outcome == o).count() as f64;
    let points: f64 = log
        .iter()
        .filter(|r| r.outcome == "ok")
        .map(|r| r.actual_cost.or(r.requested_cost).unwrap_or(0.0).round())
        .sum();
    let metrics =
        cowans_tests::get_text(&reqwest::Client::new(), &format!("{}/metrics", w.ops)).await;
    let shop = format!("shop=\"{}\"", f.shop.domain);
    let value = |name: &str, label: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| {
                l.starts_with(&format!("{name}{{")) && l.contains(&shop) && l.contains(label)
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    let requests = "cowans_shopify_requests_total";
    assert_eq!(value(requests, "outcome=\"throttled\""), 2.0, "{metrics}");
    assert_eq!(
        value(requests, "outcome=\"ok\""),
        outcome("ok"),
        "{metrics}"
    );
    assert_eq!(
        value(requests, "outcome=\"error\""),
        log.len() as f64 - outcome("ok") - outcome("throttled"),
        "{metrics}"
    );
    assert!(
        value(requests, "outcome=\"error\"") >= 3.0,
        "internal, unavailable, reset"
    );
    assert_eq!(
        value("cowans_shopify_points_used_total", ""),
        points,
        "{metrics}"
    );
    let pushed = "cowans_sync_changes_pushed_total";
    assert_eq!(value(pushed, "outcome=\"pushed\""), 80.0, "{metrics}");
    assert_eq!(value(pushed, "outcome=\"conflict\""), 0.0, "{metrics}");
    assert!(
        value("cowans_sync_products_pulled_total", "kind=\"full\"") >= 40.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn a_token_refused_mid_push_stops_the_push_until_it_is_replaced_and_nothing_is_lost() {
    let f = fixture(5, 1).await;
    let _w = f.worker(&[]);
    f.pull(PullKind::Full).await;
    let ids = catalog_ids(&f).await;
    let edits: Vec<Edit> = ids
        .iter()
        .map(|(p, _)| product_edit(*p, json!({"vendor": "After the new token"})))
        .collect();
    stage(&f.catalog, &actor(), f.shop.id, &edits).await;
    // The merchant revokes the app's token: Shopify answers 401.
    f.catalog
        .update_shop(
            &actor(),
            f.shop.id,
            cowans_catalog::ShopUpdate {
                access_token: Some(secrecy::SecretString::from("shpat_revoked_by_the_merchant")),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    f.approve_all(5).await;
    wait_for(
        "the shop to be marked unauthorized",
        Duration::from_secs(60),
        || async {
            (f.catalog.shop(f.shop.id).await.unwrap().status == "unauthorized").then_some(())
        },
    )
    .await;
    let counts = f.catalog.change_counts(f.shop.id).await.unwrap();
    assert!(
        !counts.iter().any(|(s, _)| s == "pushed" || s == "failed"),
        "nothing pushed, nothing failed: {counts:?}"
    );
    // A new token, a new push: every change arrives.
    f.catalog
        .update_shop(
            &actor(),
            f.shop.id,
            cowans_catalog::ShopUpdate {
                access_token: Some(secrecy::SecretString::from(crate::support::catalog::TOKEN)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    f.catalog.start_push(&actor(), f.shop.id).await.unwrap();
    f.pushed().await;
    assert_eq!(
        f.catalog.change_counts(f.shop.id).await.unwrap(),
        vec![("pushed".to_owned(), 5)]
    );
    assert!(
        ids.iter()
            .all(|(p, _)| sim_product(&f, *p).vendor == "After the new token")
    );
}

#[tokio::test]
async fn a_conflict_is_settled_over_http_by_keeping_shopifys_value() {
    let f = fixture(2, 1).await;
    let _w = f.worker(&[]);
    f.pull(PullKind::Full).await;
    let base = f.api().await;
    let (token, _) = f
        .catalog
        .front()
        .create_api_key(&actor(), "reviewer", cowans_core::Role::Operator)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{base}/api/v1/shops/sim{path}");
    let p = catalog_ids(&f).await[0].0;
    let post =
        |path: String, body: Value| http.post(url(&path)).bearer_auth(&token).json(&body).send();
    let (_, staged) = request(
        &http,
        Method::PATCH,
        &url(&format!("/products/{p}")),
        Some(&token),
        Some(json!({"title": "Ours", "vendor": "Our Vendor"})),
    )
    .await;
    let id = staged["changes"][0]["id"].as_i64().unwrap();
    reqwest::Client::new()
        .post(format!("{}/__sim/products/{p}/edit", f.sim.base_url()))
        .json(&json!({"title": "Theirs"}))
        .send()
        .await
        .unwrap();
    let r = post("/changes/approve".into(), json!({"ids": [id]}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    f.pushed().await;
    assert_eq!(change(&f, id).await.state, "conflict");

    // Every conflicting field must be settled.
    let r = post(format!("/changes/{id}/resolve"), json!({"fields": {}}))
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["details"]["field"], "fields.title", "{e}");
    // Keeping Shopify's title: the change goes back to review without it.
    let r = post(
        format!("/changes/{id}/resolve"),
        json!({"fields": {"title": "current"}, "reason": "the merchant knows best"}),
    )
    .await
    .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["state"], "pending");
    let c = change(&f, id).await;
    assert!(c.fields.get("title").is_none(), "{c:?}");
    assert_eq!(c.fields["vendor"]["proposed"], "Our Vendor");
    // Approved again; asking for a push as well reuses the one approval started.
    post("/changes/approve".into(), json!({"ids": [id]}))
        .await
        .unwrap();
    let r = post("/push".into(), json!({})).await.unwrap();
    assert_eq!(r.status(), 202);
    f.pushed().await;
    let c = change(&f, id).await;
    assert_eq!(c.state, "pushed");
    assert_eq!(
        c.fields["vendor"]["outcome"], "already",
        "written by the first push"
    );
    let sp = sim_product(&f, p);
    assert_eq!(
        (sp.title.as_str(), sp.vendor.as_str()),
        ("Theirs", "Our Vendor")
    );
}
