//! Imports over HTTP: a CSV in the export's columns stages a change per good row and reports
//! each row (staged, unchanged, error naming the field); a dry run only reports; JSON Lines
//! likewise; an unknown column or a file over the row limit is refused whole, staging nothing.

use cowans_catalog::PullKind;
use cowans_core::Role;
use serde_json::Value;

use crate::support::catalog::{actor, fixture};

#[tokio::test]
async fn an_import_stages_good_rows_reports_every_row_and_a_dry_run_stages_nothing() {
    let f = fixture(4, 2).await;
    let _w = f.worker(&[]);
    f.pull(PullKind::Full).await;
    let base = f.api().await;
    let (token, _) = f
        .catalog
        .front()
        .create_api_key(&actor(), "importer", Role::Operator)
        .await
        .unwrap();
    let page = f
        .catalog
        .products(f.shop.id, &Default::default(), None, 10)
        .await
        .unwrap();
    let (p0, v0) = (&page[0].0, &page[0].1);
    let (p1, v1) = (&page[1].0, &page[1].1);
    let csv = format!(
        "Handle,Title,Vendor,Variant Price,Variant Compare At Price,Product ID,Variant ID\n\
         {h0},Imported title,{vendor0},{price0},,{id0},{v00}\n\
         {h0},,,not-a-price,,{id0},{v01}\n\
         {h1},,,{price1},,{id1},{v10}\n\
         x,,,1.00,,999,\n",
        h0 = p0.handle,
        vendor0 = p0.vendor,
        price0 = "42",
        id0 = p0.id,
        v00 = v0[0].id,
        v01 = v0[1].id,
        h1 = p1.handle,
        price1 = v1[0].price,
        id1 = p1.id,
        v10 = v1[0].id,
    );
    let http = reqwest::Client::new();
    let url = |q: &str| format!("{base}/api/v1/shops/sim/imports{q}");
    let post = |q: &'static str, body: String| {
        http.post(url(q))
            .bearer_auth(&token)
            .header("content-type", "text/csv")
            .body(body)
            .send()
    };

    let dry: Value = post("?dry_run=true", csv.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            &dry["rows"],
            &dry["staged"],
            &dry["unchanged"],
            &dry["errors"]
        ),
        (&4.into(), &1.into(), &1.into(), &2.into()),
        "{dry}"
    );
    assert!(
        f.catalog.change_counts(f.shop.id).await.unwrap().is_empty(),
        "a dry run stages nothing"
    );

    let r = post("", csv).await.unwrap();
    assert_eq!(r.status(), 201);
    let done: Value = r.json().await.unwrap();
    assert_eq!(done["staged"], 1, "{done}");
    let errors = done["first_errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0]["row"], 2);
    assert!(
        errors[0]["error"].as_str().unwrap().starts_with("price:"),
        "{done}"
    );
    assert_eq!(errors[1]["row"], 4);
    assert!(
        errors[1]["error"].as_str().unwrap().contains("999"),
        "{done}"
    );
    // The first row's product title and its variant's price are one row's two changes.
    let report: Value = http
        .get(format!("{}/{}", url(""), done["id"]))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let statuses: Vec<&str> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["staged", "error", "unchanged", "error"]);
    let changes = f
        .catalog
        .changes(
            f.shop.id,
            &cowans_catalog::ChangeFilter {
                source: Some("import".into()),
                ..Default::default()
            },
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(changes.len(), 2, "title and price of the first row");
    assert!(changes.iter().all(|c| c.source_id == done["id"].as_i64()));
    let title = changes.iter().find(|c| c.variant_id.is_none()).unwrap();
    assert_eq!(
        (title.product_id, &title.fields["title"]["proposed"]),
        (p0.id, &serde_json::json!("Imported title"))
    );
    let price = changes.iter().find(|c| c.variant_id.is_some()).unwrap();
    assert_eq!(
        (price.variant_id, &price.fields["price"]["proposed"]),
        (Some(v0[0].id), &serde_json::json!("42.00"))
    );

    // JSON Lines, with an unknown key named.
    let jsonl = format!(
        "{{\"id\": \"{}\", \"vendor\": \"From JSON\"}}\n{{\"id\": \"{}\", \"colour\": \"red\"}}\n",
        p1.id, page[2].0.id
    );
    let r = post("?format=jsonl", jsonl).await.unwrap();
    let done: Value = r.json().await.unwrap();
    assert_eq!(
        (&done["staged"], &done["errors"]),
        (&1.into(), &1.into()),
        "{done}"
    );
    assert!(
        done["first_errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("colour")
    );

    // Refused whole, though each file starts with a row that could be staged: an unknown
    // column, more rows than the limit.
    let good = format!("{},Refused title,", page[3].0.id);
    for (body, status) in [
        (format!("Product ID,Title,Colour\n{good}red\n"), 422),
        (
            format!(
                "Product ID,Title,Variant ID\n{good}\n{}",
                format!("{},,{}\n", p0.id, v0[0].id).repeat(200_000)
            ),
            422,
        ),
    ] {
        let before = f.catalog.change_counts(f.shop.id).await.unwrap();
        let r = post("", body).await.unwrap();
        assert_eq!(r.status(), status);
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["details"]["field"], "file", "{e}");
        assert_eq!(f.catalog.change_counts(f.shop.id).await.unwrap(), before);
    }
}
