//! Inventory as quantities at locations, end to end against a simulated shop with two
//! locations and real worker processes: a full pull reads every variant's levels; a change
//! proposes quantities at the locations it names (its base is the catalog's quantity there; a
//! location not stocking the variant, a negative quantity are refused; a newer change to other
//! locations keeps the older one's); the push checks three ways, writes with
//! `inventorySetQuantities` compare-and-swapped from what it read, and stock sold between the
//! push's read and its write is a conflict, never an overwrite; a stock-only change in Shopify
//! is no conflict for a price; bulk edits set or shift quantities.

use cowans_catalog::{
    BulkEditSpec, BulkSelection, CatalogSettings, ChangeFilter, Decision, Edit, Operation,
    PullKind, Selection, Source,
};
use cowans_shopsim::shop::StockMove;
use serde_json::{Value, json};

use crate::support::catalog::{Fixture, actor, catalog_with, fixture, settings};

fn edit(product: i64, variant: i64, v: Value) -> Edit {
    Edit {
        product_id: product,
        variant_id: Some(variant),
        fields: v.as_object().unwrap().clone(),
    }
}

/// Opens a second location in the simulated shop; its id.
async fn open_location(f: &Fixture, name: &str) -> u64 {
    let r: Value = reqwest::Client::new()
        .post(format!("{}/__sim/locations", f.sim.base_url()))
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["id"].as_u64().unwrap()
}

/// Sets the simulated shop's stock of an item at a location (as an order or a count would).
async fn set_stock(f: &Fixture, item: u64, location: u64, quantity: i64) {
    let r = reqwest::Client::new()
        .post(format!("{}/__sim/inventory", f.sim.base_url()))
        .json(&json!({ "inventory_item_id": item, "location_id": location, "quantity": quantity }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

/// The simulated shop's levels of the variant `v` of product `p`.
fn sim_levels(f: &Fixture, p: i64, v: usize) -> std::collections::BTreeMap<u64, i64> {
    f.sim.shop.lock().catalog.products[&(p as u64)].variants[v]
        .levels
        .clone()
}

fn sim_item(f: &Fixture, p: i64, v: usize) -> u64 {
    f.sim.shop.lock().catalog.products[&(p as u64)].variants[v].inventory_item_id
}

/// The scenario, with the push's aliased path or (`bulk`) its bulk-export path.
async fn stock_is_staged_and_pushed_with_compare_and_swap(bulk: bool) {
    let f = fixture(4, 2).await;
    let _w = f.worker(if bulk {
        &[("COWANS__CATALOG__PUSH_BULK_MIN", "2")]
    } else {
        &[]
    });
    let first = cowans_shopsim::shop::LOCATION_ID;
    let warehouse = open_location(&f, "Warehouse").await;
    let ids: Vec<(i64, Vec<i64>)> = {
        let shop = f.sim.shop.lock();
        shop.catalog
            .products
            .values()
            .map(|p| {
                (
                    p.id as i64,
                    p.variants.iter().map(|v| v.id as i64).collect(),
                )
            })
            .collect()
    };
    let (p, vs) = &ids[0];
    set_stock(&f, sim_item(&f, *p, 0), warehouse, 7).await;
    f.pull(PullKind::Full).await;

    // The pull read every level.
    let (_, variants) = f.catalog.product(f.shop.id, *p).await.unwrap();
    let (a, b) = (first.to_string(), warehouse.to_string());
    assert_eq!(variants[0].inventory, Some(json!({ &a: 10, &b: 7 })));
    assert_eq!(variants[1].inventory, Some(json!({ &a: 10 })));

    // A change names the locations it sets; its base is the catalog's quantity there. Pushes
    // start when asked (so that changes approved apart reach one push).
    let who = actor();
    let cat = catalog_with(
        &f.db,
        &CatalogSettings {
            push_on_approve: false,
            ..settings()
        },
    );
    let stage = |edits: Vec<Edit>| {
        let (cat, who, shop) = (&cat, &who, f.shop.id);
        async move {
            cat.stage(who, shop, &edits, Source::Edit, |i| format!("edits[{i}]"))
                .await
        }
    };
    let one = stage(vec![edit(*p, vs[0], json!({ "inventory": { &a: 4 } }))])
        .await
        .unwrap()
        .ids[0];
    let c = f.catalog.change(f.shop.id, one).await.unwrap();
    assert_eq!(
        c.fields["inventory"],
        json!({"base": { &a: 10 }, "proposed": { &a: 4 }})
    );
    // A newer change to another location leaves the first one's pending; one to the same
    // location takes that location over.
    let other = stage(vec![edit(
        *p,
        vs[0],
        json!({ "inventory": { format!("gid://shopify/Location/{warehouse}"): 9, &a: 5 } }),
    )])
    .await
    .unwrap()
    .ids[0];
    let c = f.catalog.change(f.shop.id, one).await.unwrap();
    assert_eq!(c.state, "superseded", "{c:?}");
    let c = f.catalog.change(f.shop.id, other).await.unwrap();
    assert_eq!(
        c.fields["inventory"],
        json!({"base": { &a: 10, &b: 7 }, "proposed": { &a: 5, &b: 9 }})
    );
    let over = stage(vec![edit(*p, vs[0], json!({ "inventory": { &a: 6 } }))])
        .await
        .unwrap()
        .ids[0];
    let c = f.catalog.change(f.shop.id, other).await.unwrap();
    assert_eq!(c.state, "pending", "keeps the warehouse: {c:?}");
    assert_eq!(
        c.fields["inventory"],
        json!({"base": { &b: 7 }, "proposed": { &b: 9 }})
    );
    // Approved, then outdone by a later change to the same location: both reach the push,
    // the later quantity goes.
    cat.decide(
        &who,
        f.shop.id,
        &Selection::Ids(vec![over]),
        Decision::Approve,
        None,
    )
    .await
    .unwrap();
    let later = stage(vec![edit(*p, vs[0], json!({ "inventory": { &a: 4 } }))])
        .await
        .unwrap()
        .ids[0];
    assert_eq!(
        f.catalog.change(f.shop.id, over).await.unwrap().state,
        "approved"
    );

    // Refused, naming the field: a location not stocking the variant, a negative quantity.
    for (bad, says) in [
        (json!({ &b: 3 }), "not stocked at location"),
        (json!({ &a: -1 }), "from 0 to"),
        (json!({ "gid://shopify/Product/1": 1 }), "not a location id"),
    ] {
        let e = stage(vec![edit(*p, vs[1], json!({ "inventory": bad }))])
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("edits[0].inventory") && text.contains(says),
            "{text}"
        );
    }

    // Product 1: stock sold between the push's read and its write (compare-and-swap refuses
    // it). Product 2: only its stock changes in Shopify, its price change is pushed anyway.
    let (q, qs) = &ids[1];
    let (r, rs) = &ids[2];
    let raced = stage(vec![edit(*q, qs[0], json!({ "inventory": { &a: 20 } }))])
        .await
        .unwrap()
        .ids[0];
    let priced = stage(vec![edit(*r, rs[1], json!({ "price": "77.00" }))])
        .await
        .unwrap()
        .ids[0];
    set_stock(&f, sim_item(&f, *r, 1), first, 3).await;
    f.sim.shop.lock().faults.stock_moves = vec![StockMove {
        inventory_item_id: sim_item(&f, *q, 0),
        location_id: None,
        delta: -1,
    }];
    let approved = cat
        .decide(
            &who,
            f.shop.id,
            &Selection::Matching {
                filter: ChangeFilter {
                    state: Some("pending".into()),
                    ..Default::default()
                },
                expected: 4,
            },
            Decision::Approve,
            None,
        )
        .await
        .unwrap();
    assert_eq!(approved.len(), 4);
    cat.start_push(&who, f.shop.id).await.unwrap();
    f.pushed().await;
    // The path asked for: a range export read the stock, or aliased level reads did.
    let range_exports = f
        .bulk_queries()
        .iter()
        .filter(|q| q.contains("id:>=") && q.contains("inventoryLevels"))
        .count();
    assert_eq!(range_exports > 0, bulk, "{:?}", f.bulk_queries());

    for (id, outcome) in [(other, "written"), (over, "superseded"), (later, "written")] {
        let c = f.catalog.change(f.shop.id, id).await.unwrap();
        assert_eq!(c.state, "pushed", "{c:?}");
        assert_eq!(c.fields["inventory"]["outcome"], outcome, "{c:?}");
    }
    assert_eq!(
        sim_levels(&f, *p, 0),
        [(first, 4), (warehouse, 9)].into_iter().collect()
    );
    // The catalog follows what was written, the variant's total too.
    let (_, variants) = f.catalog.product(f.shop.id, *p).await.unwrap();
    assert_eq!(variants[0].inventory, Some(json!({ &a: 4, &b: 9 })));
    assert_eq!(variants[0].inventory_quantity, Some(13));

    let c = f.catalog.change(f.shop.id, raced).await.unwrap();
    assert_eq!(c.state, "conflict", "{c:?}");
    assert_eq!(c.fields["inventory"]["outcome"], "conflict");
    assert_eq!(
        sim_levels(&f, *q, 0)[&first],
        9,
        "the sale stands: nothing overwrote it"
    );

    let c = f.catalog.change(f.shop.id, priced).await.unwrap();
    assert_eq!(c.state, "pushed", "{c:?}");
    assert_eq!(
        f.sim.shop.lock().catalog.products[&(*r as u64)].variants[1].price,
        "77.00"
    );

    // The conflict settled with a new quantity from what Shopify has now, then pushed.
    let mut choice = std::collections::BTreeMap::new();
    choice.insert(
        "inventory".to_owned(),
        cowans_catalog::Resolution::Value(json!({ &a: 15 })),
    );
    cat.resolve(&who, f.shop.id, raced, &choice, Some("recount"))
        .await
        .unwrap();
    let c = f.catalog.change(f.shop.id, raced).await.unwrap();
    assert_eq!(
        c.fields["inventory"],
        json!({"base": { &a: 9 }, "proposed": { &a: 15 }})
    );
    cat.decide(
        &who,
        f.shop.id,
        &Selection::Ids(vec![raced]),
        Decision::Approve,
        None,
    )
    .await
    .unwrap();
    cat.start_push(&who, f.shop.id).await.unwrap();
    f.pushed().await;
    assert_eq!(
        f.catalog.change(f.shop.id, raced).await.unwrap().state,
        "pushed"
    );
    assert_eq!(sim_levels(&f, *q, 0)[&first], 15);
}

#[tokio::test]
async fn stock_at_two_locations_is_pulled_staged_and_pushed_with_compare_and_swap() {
    stock_is_staged_and_pushed_with_compare_and_swap(false).await;
}

#[tokio::test]
async fn the_bulk_push_path_checks_and_writes_stock_the_same_way() {
    stock_is_staged_and_pushed_with_compare_and_swap(true).await;
}

#[tokio::test]
async fn a_bulk_edit_sets_or_shifts_stock_where_it_is_kept() {
    let f = fixture(3, 2).await;
    let _w = f.worker(&[]);
    let first = cowans_shopsim::shop::LOCATION_ID.to_string();
    let warehouse = open_location(&f, "Warehouse").await;
    let p0 = {
        let shop = f.sim.shop.lock();
        *shop.catalog.products.keys().next().unwrap() as i64
    };
    set_stock(&f, sim_item(&f, p0, 0), warehouse, 1).await;
    f.pull(PullKind::Full).await;
    let op = |op: &str, value: Value| BulkEditSpec {
        selection: BulkSelection::default(),
        operations: vec![Operation {
            field: "inventory".into(),
            op: op.into(),
            value: Some(value),
            rounding: None,
        }],
        push: false,
    };

    // Set at the warehouse: only the one variant kept there changes.
    let preview = f
        .catalog
        .preview_bulk_edit(
            f.shop.id,
            &op("set", json!({ warehouse.to_string(): 5 })),
            10,
        )
        .await
        .unwrap();
    assert_eq!((preview.changes, preview.skipped), (1, 0), "{preview:?}");
    assert_eq!(preview.diffs[0].to, json!({ warehouse.to_string(): 5 }));

    // −2 everywhere named: every variant at the first location goes 10 → 8; the warehouse's
    // 1 would go negative, so that product is skipped with the reason.
    let shift = op("add", json!({ &first: -2, warehouse.to_string(): -2 }));
    let preview = f
        .catalog
        .preview_bulk_edit(f.shop.id, &shift, 10)
        .await
        .unwrap();
    assert_eq!((preview.changes, preview.skipped), (4, 1), "{preview:?}");
    assert!(
        preview.errors[0]["error"]
            .as_str()
            .unwrap()
            .contains("would be -1"),
        "{:?}",
        preview.errors
    );
    assert!(
        preview
            .diffs
            .iter()
            .all(|d| d.from == json!({ &first: 10 }) && d.to == json!({ &first: 8 })),
        "{:?}",
        preview.diffs
    );
    // Not a quantity: refused naming the part.
    let e = f
        .catalog
        .preview_bulk_edit(f.shop.id, &op("add", json!({ &first: "x" })), 10)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("operations[0].value"), "{e}");
}
