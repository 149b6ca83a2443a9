//! Pulling a shop's catalog from a simulated Shopify with real worker processes: a full pull
//! copies every product and variant exactly (ids above 2^53 included), survives a worker killed
//! mid-way, marks deleted what Shopify no longer has and never lets an older view overwrite a
//! newer one; incremental pulls read only what changed (pages for a few, a filtered export for
//! many) and run on their own per shop; a refused token stops the shop's pulls until replaced.

use std::{collections::BTreeMap, time::Duration};

use cowans_catalog::{ProductFilter, ProductRow, PullKind, ShopUpdate, VariantRow};
use cowans_core::Event;
use cowans_shopsim::model::Product;
use cowans_testkit::wait_for;
use secrecy::SecretString;

use crate::support::catalog::{Fixture, TOKEN, actor, fixture};

/// Every product of the shop in the catalog (deleted ones too), by id.
async fn stored(f: &Fixture) -> BTreeMap<i64, (ProductRow, Vec<VariantRow>)> {
    let filter = ProductFilter {
        include_deleted: true,
        ..ProductFilter::default()
    };
    let mut all = BTreeMap::new();
    let mut after = None;
    loop {
        let page = f
            .catalog
            .products(f.shop.id, &filter, after, 500)
            .await
            .unwrap();
        let Some((last, _)) = page.last() else { break };
        after = Some(last.id);
        for (p, v) in page {
            all.insert(p.id, (p, v));
        }
    }
    all
}

/// The simulator's products, by id.
fn shopify(f: &Fixture) -> BTreeMap<i64, Product> {
    f.sim
        .shop
        .lock()
        .catalog
        .products
        .values()
        .map(|p| (i64::try_from(p.id).unwrap(), p.clone()))
        .collect()
}

/// Asserts the catalog holds exactly Shopify's live products, field by field.
fn assert_same(
    stored: &BTreeMap<i64, (ProductRow, Vec<VariantRow>)>,
    shopify: &BTreeMap<i64, Product>,
) {
    let live: Vec<i64> = stored
        .iter()
        .filter(|(_, (p, _))| p.deleted_at.is_none())
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(
        live,
        shopify.keys().copied().collect::<Vec<_>>(),
        "the same products"
    );
    for (id, s) in shopify {
        let (p, vs) = &stored[id];
        assert_eq!(p.id as u64, s.id, "ids above 2^53 stay exact");
        assert_eq!(
            (
                &p.title,
                &p.handle,
                &p.description_html,
                &p.vendor,
                &p.product_type,
                &p.status
            ),
            (
                &s.title,
                &s.handle,
                &s.description_html,
                &s.vendor,
                &s.product_type,
                &s.status
            ),
            "product {id}"
        );
        assert_eq!(p.tags, s.tags, "product {id} tags");
        assert_eq!(p.shopify_updated_at, s.updated_at, "product {id} updatedAt");
        let options: Vec<(String, Vec<String>)> = p
            .options
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                let values = o["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect();
                (o["name"].as_str().unwrap().to_owned(), values)
            })
            .collect();
        let expected: Vec<(String, Vec<String>)> = s
            .options
            .iter()
            .map(|o| {
                (
                    o.name.clone(),
                    o.values.iter().map(|(_, v)| v.clone()).collect(),
                )
            })
            .collect();
        assert_eq!(options, expected, "product {id} options");
        assert_eq!(vs.len(), s.variants.len(), "product {id} variants");
        for (v, sv) in vs.iter().zip(&s.variants) {
            assert_eq!(v.id as u64, sv.id);
            assert_eq!(v.product_id, *id);
            assert_eq!(
                (&v.title, &v.sku, &v.barcode, &v.price, &v.compare_at_price),
                (
                    &sv.title,
                    &sv.sku,
                    &sv.barcode,
                    &sv.price,
                    &sv.compare_at_price
                ),
                "variant {}",
                sv.id
            );
            assert_eq!(
                v.inventory_quantity.map(i64::from),
                Some(sv.inventory_quantity())
            );
            assert_eq!(
                v.inventory_item_id.map(|i| i as u64),
                Some(sv.inventory_item_id)
            );
            // Levels, where the read carried them (paged reads keep what is stored).
            if let Some(levels) = &v.inventory {
                let want: serde_json::Map<String, serde_json::Value> = sv
                    .levels
                    .iter()
                    .map(|(l, q)| (l.to_string(), serde_json::json!(q)))
                    .collect();
                assert_eq!(
                    levels,
                    &serde_json::Value::Object(want),
                    "variant {} levels",
                    sv.id
                );
            }
            let (unit, weight) = sv.weight.clone().unwrap();
            assert_eq!(v.weight_unit.as_deref(), Some(unit.as_str()));
            assert_eq!(v.weight.as_deref().unwrap().parse::<f64>().unwrap(), weight);
            let values: Vec<&str> = v
                .option_values
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["value"].as_str().unwrap())
                .collect();
            assert_eq!(values, sv.option_values, "variant {} options", sv.id);
        }
    }
}

#[tokio::test]
async fn a_full_pull_copies_every_product_and_variant_exactly_and_reports_progress() {
    let f = fixture(450, 3).await;
    let relay = cowans_queue::FrontDoor::builder(f.db.pool.clone())
        .build()
        .event_relay();
    relay.ready().await;
    let mut events = relay.subscribe();
    let _worker = f.worker(&[]);
    let pull = f.pull(PullKind::Full).await;
    assert_eq!(
        (pull.lines, pull.products, pull.variants, pull.deleted),
        (3150, 450, 1350, 0),
        "every line read (a product, its variants, a level of each), every product and variant written once"
    );
    let stored = stored(&f).await;
    assert!(
        stored
            .values()
            .flat_map(|(_, vs)| vs)
            .all(|v| v.inventory.is_some()),
        "a full pull reads every variant's levels"
    );
    assert_same(&stored, &shopify(&f));
    assert_eq!(f.catalog.counts(f.shop.id).await.unwrap(), (450, 1350));

    let (mut stages, mut finished) = (Vec::new(), None);
    while finished.is_none() {
        let e = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("events within 10 s")
            .expect("the stream stays open");
        match e {
            Event::SyncProgress { pull_id, stage, .. } if pull_id == pull.id => stages.push(stage),
            Event::SyncFinished {
                pull_id,
                state,
                products,
                variants,
                ..
            } if pull_id == pull.id => {
                finished = Some((state, products, variants));
            }
            _ => {}
        }
    }
    assert!(stages.iter().any(|s| s == "writing"), "{stages:?}");
    assert_eq!(finished, Some(("completed".to_owned(), 450, 1350)));
    relay.shutdown().await;
}

#[tokio::test]
async fn a_worker_killed_mid_pull_is_replaced_and_the_catalog_ends_exact() {
    let f = fixture(6000, 3).await;
    let mut first = f.worker(&[]);
    let pull = f.start(PullKind::Full).await;
    // Kill it once it has written part of the catalog.
    let partial = wait_for(
        "the pull to write its first batches",
        Duration::from_secs(60),
        || async {
            let p = f.catalog.pull(pull.id).await.unwrap();
            (p.products > 0).then_some(p)
        },
    )
    .await;
    first.kill9();
    let at_kill = f.catalog.pull(pull.id).await.unwrap();
    assert_eq!(
        at_kill.state, "running",
        "the pull must still be running when its worker dies (it wrote {} products before)",
        partial.products
    );
    assert!(at_kill.products < 6000, "{at_kill:?}");

    let _second = f.worker(&[]);
    let done = f.finished(pull.id, Duration::from_secs(180)).await;
    assert_eq!(done.state, "completed", "{done:?}");
    assert_same(&stored(&f).await, &shopify(&f));
    assert_eq!(f.catalog.counts(f.shop.id).await.unwrap(), (6000, 18000));
    assert_eq!(
        f.bulk_queries().len(),
        1,
        "the retry reuses the export the first attempt started"
    );
    let job = cowans_store::get_job(&f.db.pool, cowans_core::JobId(done.job_id.unwrap()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (job.state, job.attempt),
        (cowans_core::JobState::Completed, 2)
    );
}

#[tokio::test]
async fn products_deleted_in_shopify_are_marked_deleted_and_changes_arrive() {
    let f = fixture(300, 2).await;
    let _worker = f.worker(&[]);
    f.pull(PullKind::Full).await;
    let ids: Vec<u64> = f.sim.shop.lock().catalog.products.keys().copied().collect();
    let http = reqwest::Client::new();
    for id in &ids[..3] {
        let r = http
            .delete(format!("{}/__sim/products/{id}", f.sim.base_url()))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    let r = http
        .post(format!(
            "{}/__sim/products/{}/edit",
            f.sim.base_url(),
            ids[10]
        ))
        .json(&serde_json::json!({"title": "Renamed in the admin", "price": "99.50"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    let second = f.pull(PullKind::Full).await;
    assert_eq!(second.deleted, 3);
    let all = stored(&f).await;
    for id in &ids[..3] {
        let (p, _) = &all[&(*id as i64)];
        assert!(
            p.deleted_at.is_some(),
            "product {id} is marked deleted, not forgotten"
        );
    }
    assert_same(&all, &shopify(&f));
    assert_eq!(all[&(ids[10] as i64)].0.title, "Renamed in the admin");
    assert_eq!(f.catalog.counts(f.shop.id).await.unwrap(), (297, 594));
    // Deleted products are hidden unless asked for.
    let live = f
        .catalog
        .products(f.shop.id, &ProductFilter::default(), None, 1000)
        .await
        .unwrap();
    assert_eq!(live.len(), 297);
}

#[tokio::test]
async fn an_older_view_never_overwrites_a_newer_snapshot() {
    let f = fixture(50, 1).await;
    let _worker = f.worker(&[]);
    f.pull(PullKind::Full).await;
    // A newer snapshot of one product arrives first (as a webhook would bring it).
    let id = *f.sim.shop.lock().catalog.products.keys().next().unwrap() as i64;
    let (before, _) = f.catalog.product(f.shop.id, id).await.unwrap();
    let newer = cowans_store::catalog::ProductSnapshot {
        id,
        title: "Newer than Shopify's export".to_owned(),
        handle: before.handle.clone(),
        description_html: String::new(),
        vendor: before.vendor.clone(),
        product_type: before.product_type.clone(),
        status: before.status.clone(),
        tags: vec![],
        options: before.options.clone(),
        created_at: before.shopify_created_at,
        updated_at: before.shopify_updated_at + chrono::Duration::hours(1),
    };
    let mut conn = f.db.pool.acquire().await.unwrap();
    cowans_store::catalog::upsert_products(&mut conn, f.shop.id, None, None, &[newer])
        .await
        .unwrap();
    drop(conn);
    let second = f.pull(PullKind::Full).await;
    assert_eq!(
        second.products, 49,
        "the older view of that product was not written"
    );
    let (after, variants) = f.catalog.product(f.shop.id, id).await.unwrap();
    assert_eq!(after.title, "Newer than Shopify's export");
    assert!(after.deleted_at.is_none(), "nor swept as unseen");
    assert_eq!(variants.len(), 1, "its variants stay");
}

/// Moves the simulated clock on and edits `n` products (their `updatedAt` moves with it).
async fn edit(f: &Fixture, n: usize, title: &str) -> Vec<u64> {
    let ids: Vec<u64> = f
        .sim
        .shop
        .lock()
        .catalog
        .products
        .keys()
        .copied()
        .take(n)
        .collect();
    let http = reqwest::Client::new();
    for id in &ids {
        let r = http
            .post(format!("{}/__sim/products/{id}/edit", f.sim.base_url()))
            .json(&serde_json::json!({ "title": title }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    ids
}

#[tokio::test]
async fn an_incremental_pull_reads_only_recent_changes_a_few_through_pages() {
    let f = fixture(400, 2).await;
    // No overlap: the window starts at the newest product the full pull saw.
    let _worker = f.worker(&[("COWANS__CATALOG__INCREMENTAL_OVERLAP_SECS", "0")]);
    f.pull(PullKind::Full).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let edited = edit(&f, 6, "Edited for the incremental pull").await;
    // And a variant deleted in the admin: its product changes too.
    let (product, variant) = {
        let shop = f.sim.shop.lock();
        let p = shop.catalog.products.values().nth(200).unwrap();
        (p.id, p.variants[1].id)
    };
    let r = reqwest::Client::new()
        .delete(format!("{}/__sim/variants/{variant}", f.sim.base_url()))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let exports = f.bulk_queries().len();

    let inc = f.pull(PullKind::Incremental).await;
    assert!(
        (7..=8).contains(&inc.products),
        "the 7 changed products (and the newest one the full pull saw), not the catalog: {inc:?}"
    );
    assert_eq!(
        f.bulk_queries().len(),
        exports,
        "a few changes need no export"
    );
    assert!(f.requests_to("productsCount") >= 1);
    let all = stored(&f).await;
    for id in &edited {
        assert_eq!(
            all[&(*id as i64)].0.title,
            "Edited for the incremental pull"
        );
    }
    assert_eq!(
        all[&(product as i64)].1.len(),
        1,
        "the deleted variant is gone"
    );
    assert_same(&all, &shopify(&f));
    // Nothing changed since: the next one reads (almost) nothing.
    let again = f.pull(PullKind::Incremental).await;
    assert!(again.products <= 7, "{again:?}");
}

#[tokio::test]
async fn an_incremental_pull_of_many_changes_uses_a_filtered_export() {
    let f = fixture(200, 2).await;
    let _worker = f.worker(&[
        ("COWANS__CATALOG__INCREMENTAL_OVERLAP_SECS", "0"),
        ("COWANS__CATALOG__INCREMENTAL_PAGE_MAX", "5"),
    ]);
    f.pull(PullKind::Full).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let edited = edit(&f, 19, "Edited in bulk").await;
    let (product, variant) = {
        let shop = f.sim.shop.lock();
        let p = shop.catalog.products.values().nth(100).unwrap();
        (p.id, p.variants[0].id)
    };
    let r = reqwest::Client::new()
        .delete(format!("{}/__sim/variants/{variant}", f.sim.base_url()))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let inc = f.pull(PullKind::Incremental).await;
    assert!((20..=21).contains(&inc.products), "{inc:?}");
    let exports = f.bulk_queries();
    assert_eq!(
        exports.len(),
        2,
        "the full pull's export and the incremental one"
    );
    assert!(exports[1].contains("updated_at:>="), "{}", exports[1]);
    let all = stored(&f).await;
    for id in &edited {
        assert_eq!(all[&(*id as i64)].0.title, "Edited in bulk");
    }
    assert_eq!(
        all[&(product as i64)].1.len(),
        1,
        "the deleted variant is gone"
    );
    assert_same(&all, &shopify(&f));
}

#[tokio::test]
async fn each_shop_pulls_incrementally_on_its_own_schedule() {
    let f = fixture(20, 1).await;
    let _worker = f.worker(&[]);
    // Every second (six fields: seconds first).
    f.catalog
        .update_shop(
            &actor(),
            f.shop.id,
            ShopUpdate {
                incremental_schedule: Some(Some("* * * * * *".to_owned())),
                ..ShopUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        f.catalog
            .schedule(f.shop.id, PullKind::Incremental)
            .await
            .unwrap()
            .as_deref(),
        Some("* * * * * *")
    );
    let pulled = wait_for(
        "a periodic incremental pull to complete",
        Duration::from_secs(60),
        || async {
            let pulls = f.catalog.pulls(f.shop.id, 10).await.unwrap();
            pulls
                .into_iter()
                .find(|p| p.kind == "incremental" && p.state == "completed")
        },
    )
    .await;
    assert_eq!(pulled.products, 20, "the first one reads everything");
    let job = cowans_store::get_job(&f.db.pool, cowans_core::JobId(pulled.job_id.unwrap()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.kind, "catalog.pull_incremental");
    assert_eq!(f.catalog.counts(f.shop.id).await.unwrap(), (20, 20));

    // Turned off, and gone with its shop.
    f.catalog
        .update_shop(
            &actor(),
            f.shop.id,
            ShopUpdate {
                incremental_schedule: Some(None),
                ..ShopUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        f.catalog
            .schedule(f.shop.id, PullKind::Incremental)
            .await
            .unwrap(),
        None
    );
    let other = f
        .catalog
        .add_shop(
            &actor(),
            cowans_catalog::ShopRequest {
                incremental_schedule: Some("*/5 * * * *".to_owned()),
                ..crate::support::catalog::shop_request(&f.sim, "other", TOKEN)
            },
        )
        .await
        .unwrap();
    assert!(
        f.catalog
            .schedule(other.id, PullKind::Incremental)
            .await
            .unwrap()
            .is_some()
    );
    f.catalog.delete_shop(&actor(), other.id).await.unwrap();
    let crons = cowans_store::list_cron(&f.db.pool).await.unwrap();
    let names: Vec<&str> = crons.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["catalog.watch_dead"], "no shop's schedule is left");
}

#[tokio::test]
async fn a_refused_token_marks_the_shop_unauthorized_and_stops_its_pulls_until_replaced() {
    let f = fixture(30, 1).await;
    let _worker = f.worker(&[]);
    let bad = f
        .catalog
        .update_shop(
            &actor(),
            f.shop.id,
            ShopUpdate {
                access_token: Some(SecretString::from("shpat_revoked_by_the_merchant")),
                ..ShopUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(bad.token_last4, "hant");
    let pull = f.start(PullKind::Full).await;
    let failed = f.finished(pull.id, Duration::from_secs(60)).await;
    assert_eq!(failed.state, "failed");
    assert!(
        failed.error.as_deref().unwrap().contains("401"),
        "{failed:?}"
    );
    // The pull row ends before the job's outcome is acknowledged.
    let job_id = cowans_core::JobId(failed.job_id.unwrap());
    crate::support::control_kinds::state_becomes(
        &f.db,
        job_id,
        cowans_core::JobState::Dead,
        Duration::from_secs(30),
    )
    .await;
    let job = cowans_store::get_job(&f.db.pool, job_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.attempt, 1);
    assert!(
        job.errors.last().unwrap().error.contains("unauthorized"),
        "dead-lettered with the reason: {:?}",
        job.errors
    );
    let shop = f.catalog.shop(f.shop.id).await.unwrap();
    assert_eq!(shop.status, "unauthorized");
    let refused = f
        .catalog
        .start_pull(&actor(), f.shop.id, PullKind::Incremental)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, cowans_queue::StoreError::Conflict { .. }),
        "{refused:?}"
    );
    assert!(refused.to_string().contains("unauthorized"), "{refused}");

    // A new token makes it active again.
    let fixed = f
        .catalog
        .update_shop(
            &actor(),
            f.shop.id,
            ShopUpdate {
                access_token: Some(SecretString::from(TOKEN)),
                ..ShopUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(fixed.status, "active");
    f.pull(PullKind::Full).await;
    assert_eq!(f.catalog.counts(f.shop.id).await.unwrap(), (30, 30));
}

/// Every GraphQL fault, armed again: the next requests meet them in turn, five failures in a
/// row (the client makes six attempts).
fn arm_faults(f: &Fixture) {
    f.sim.shop.lock().faults = cowans_shopsim::Faults {
        latency_ms: 5,
        throttles: 2,
        internal_errors: 1,
        unavailable: 1,
        resets: 1,
        bulk_delay_ms: 1500,
        ..cowans_shopsim::Faults::default()
    };
}

/// Whether every armed fault was met.
fn faults_met(f: &Fixture) -> bool {
    let shop = f.sim.shop.lock();
    let x = &shop.faults;
    (x.throttles, x.internal_errors, x.unavailable, x.resets) == (0, 0, 0, 0)
}

#[tokio::test]
async fn throttles_errors_resets_and_slow_exports_end_with_the_exact_catalog() {
    let f = fixture(300, 2).await;
    let _worker = f.worker(&[]);
    // The mutation that starts the export is retried by the client only when throttled (it
    // did not run); other faults would cost the job an attempt, retried by the engine with
    // backoff. So: throttles until the export has started, then every fault for the queries
    // that poll it.
    f.sim.shop.lock().faults = cowans_shopsim::Faults {
        throttles: 2,
        bulk_delay_ms: 1500,
        ..cowans_shopsim::Faults::default()
    };
    let pull = f.start(PullKind::Full).await;
    wait_for("the export to start", Duration::from_secs(60), || async {
        let p = f.catalog.pull(pull.id).await.unwrap();
        p.bulk_operation.is_some().then_some(())
    })
    .await;
    arm_faults(&f);
    let pull = f.finished(pull.id, Duration::from_secs(90)).await;
    assert_eq!(pull.state, "completed", "{pull:?}");
    assert!(faults_met(&f), "the pull met every fault");
    assert_same(&stored(&f).await, &shopify(&f));

    // Changes read through pages, through two of every fault.
    edit(&f, 20, "edited").await;
    arm_faults(&f);
    f.pull(PullKind::Incremental).await;
    assert!(faults_met(&f));
    assert_same(&stored(&f).await, &shopify(&f));
}

#[tokio::test]
async fn a_shop_deleted_while_its_pull_runs_ends_the_pull_and_the_worker_goes_on() {
    let f = fixture(200, 1).await;
    let other = f
        .catalog
        .add_shop(
            &actor(),
            crate::support::catalog::shop_request(&f.sim, "other", TOKEN),
        )
        .await
        .unwrap();
    let _worker = f.worker(&[]);
    f.sim.shop.lock().faults.bulk_delay_ms = 3000;
    let pull = f.start(PullKind::Full).await;
    wait_for("the export to start", Duration::from_secs(30), || async {
        (f.requests_to("bulkOperationRunQuery") > 0).then_some(())
    })
    .await;
    f.catalog.delete_shop(&actor(), f.shop.id).await.unwrap();
    // The job ends without being retried for ever, and writes nothing for the deleted shop.
    let job_id = cowans_core::JobId(pull.job_id.unwrap());
    let job = wait_for("the pull's job to end", Duration::from_secs(60), || async {
        let j = cowans_store::get_job(&f.db.pool, job_id).await.unwrap()?;
        j.state.is_final().then_some(j)
    })
    .await;
    assert_eq!(
        job.state,
        cowans_core::JobState::Completed,
        "nothing left to do is done, not dead-lettered: {:?}",
        job.errors
    );
    assert!(job.attempt <= 2, "not retried for ever: {}", job.attempt);

    // The worker goes on with the other shop.
    f.sim.shop.lock().faults.bulk_delay_ms = 0;
    let p = f
        .catalog
        .start_pull(&actor(), other.id, PullKind::Full)
        .await
        .unwrap();
    let p = f.finished(p.id, Duration::from_secs(60)).await;
    assert_eq!(p.state, "completed", "{p:?}");
    assert_eq!(f.catalog.counts(other.id).await.unwrap(), (200, 200));
}

#[tokio::test]
async fn a_pull_whose_job_was_cancelled_while_queued_does_not_block_the_next() {
    let f = fixture(20, 1).await;
    // No worker yet: the first pull's job waits in the queue and is cancelled there.
    let first = f.start(PullKind::Full).await;
    f.catalog
        .front()
        .cancel(&actor(), cowans_core::JobId(first.job_id.unwrap()))
        .await
        .unwrap();
    let _worker = f.worker(&[]);
    let second = f.pull(PullKind::Full).await;
    assert_ne!(second.id, first.id);
    let first = f.catalog.pull(first.id).await.unwrap();
    assert_eq!(first.state, "failed", "{first:?}");
    assert_eq!(f.catalog.counts(f.shop.id).await.unwrap(), (20, 20));
}
