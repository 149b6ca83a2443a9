//! The REST-shaped product of a `products/create` or `products/update` webhook, as the catalog
//! stores it. Ids come as JSON integers (read as `u64`, never through a float) or from
//! `admin_graphql_api_id`; the status is lower-case and the tags one comma-separated string;
//! a variant's options are `option1..3`, in the product's option order. Weights are not in the
//! payload: the caller keeps the stored ones.

use cowans_store::catalog::{ProductSnapshot, VariantSnapshot};
use serde_json::{Value, json};

use super::{SnapshotError, bad, decimal, gid_id, opt_text, text, time};

/// A numeric id: the integer `field`, else the GID in `admin_graphql_api_id`.
fn rest_id(v: &Value, field: &str) -> Result<i64, SnapshotError> {
    match v[field].as_u64() {
        Some(id) => i64::try_from(id).map_err(|_| bad(field, format!("{id} is out of range"))),
        None if v["admin_graphql_api_id"].is_string() => gid_id(v, "admin_graphql_api_id"),
        None => Err(bad(field, "missing or not an integer")),
    }
}

/// The product of a webhook payload.
pub fn rest_product(v: &Value) -> Result<ProductSnapshot, SnapshotError> {
    let updated_at = time(v, "updated_at")?.ok_or_else(|| bad("updated_at", "missing"))?;
    let options = v["options"]
        .as_array()
        .map(|options| {
            options
                .iter()
                .map(|o| json!({ "name": o["name"], "position": o["position"], "values": o["values"] }))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let tags = v["tags"]
        .as_str()
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(ProductSnapshot {
        id: rest_id(v, "id")?,
        title: text(v, "title"),
        handle: text(v, "handle"),
        description_html: text(v, "body_html"),
        vendor: text(v, "vendor"),
        product_type: text(v, "product_type"),
        status: v["status"]
            .as_str()
            .map_or_else(|| "ACTIVE".to_owned(), str::to_ascii_uppercase),
        tags,
        options: Value::Array(options),
        created_at: time(v, "created_at")?,
        updated_at,
    })
}

/// The variants of a webhook payload's product `p` (taken at `p.updated_at`).
pub fn rest_variants(
    v: &Value,
    p: &ProductSnapshot,
) -> Result<Vec<VariantSnapshot>, SnapshotError> {
    let names: Vec<Value> = p
        .options
        .as_array()
        .map(|o| o.iter().map(|o| o["name"].clone()).collect())
        .unwrap_or_default();
    let Some(variants) = v["variants"].as_array() else {
        return Ok(Vec::new());
    };
    variants
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let option_values: Vec<Value> = ["option1", "option2", "option3"]
                .iter()
                .zip(&names)
                .filter_map(|(f, name)| {
                    x[*f]
                        .as_str()
                        .map(|value| json!({ "name": name, "value": value }))
                })
                .collect();
            Ok(VariantSnapshot {
                id: rest_id(x, "id")?,
                product_id: p.id,
                product_updated_at: p.updated_at,
                title: text(x, "title"),
                position: x["position"]
                    .as_i64()
                    .and_then(|n| i32::try_from(n).ok())
                    .unwrap_or(i as i32 + 1),
                // The REST shape sends "" for no SKU.
                sku: opt_text(x, "sku").filter(|s| !s.is_empty()),
                barcode: opt_text(x, "barcode"),
                price: decimal(&x["price"]).ok_or_else(|| bad("variants.price", "missing"))?,
                compare_at_price: decimal(&x["compare_at_price"]),
                inventory_quantity: x["inventory_quantity"]
                    .as_i64()
                    .and_then(|q| i32::try_from(q).ok()),
                inventory_item_id: x["inventory_item_id"]
                    .as_u64()
                    .and_then(|i| i64::try_from(i).ok()),
                weight: None,
                weight_unit: None,
                // Webhook payloads carry the total, not the levels.
                inventory: None,
                option_values: Value::Array(option_values),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_product_and_its_variants_become_snapshots() {
        let payload = json!({
            "id": 9_007_199_254_740_993u64,
            "admin_graphql_api_id": "gid://shopify/Product/9007199254740993",
            "title": "Tee", "handle": "tee", "body_html": "<p>Soft</p>", "vendor": "Acme",
            "product_type": "Shirt", "status": "draft", "tags": "summer, sale,",
            "created_at": "2026-01-01T00:00:00-05:00", "updated_at": "2026-02-01T10:00:00-05:00",
            "options": [{"name": "Size", "position": 1, "values": ["S", "M"]},
                        {"name": "Colour", "position": 2, "values": ["Red"]}],
            "variants": [
                {"id": 9_007_199_254_740_995u64, "title": "S / Red", "price": "19.90", "sku": "",
                 "barcode": null, "compare_at_price": "25.00", "position": 1, "option1": "S",
                 "option2": "Red", "option3": null, "inventory_item_id": 9_007_199_254_740_997u64,
                 "inventory_quantity": 3}
            ]
        });
        let p = rest_product(&payload).unwrap();
        assert_eq!(p.id, 9_007_199_254_740_993, "exact above 2^53");
        assert_eq!(
            (p.status.as_str(), p.tags.clone()),
            ("DRAFT", vec!["summer".to_owned(), "sale".to_owned()])
        );
        assert_eq!(p.updated_at.to_rfc3339(), "2026-02-01T15:00:00+00:00");
        assert_eq!(p.options[1]["values"], json!(["Red"]));
        let v = rest_variants(&payload, &p).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].id, 9_007_199_254_740_995);
        assert_eq!(v[0].sku, None, "an empty SKU is no SKU");
        assert_eq!(v[0].compare_at_price.as_deref(), Some("25.00"));
        assert_eq!(v[0].inventory_item_id, Some(9_007_199_254_740_997));
        assert_eq!(
            v[0].option_values,
            json!([{"name": "Size", "value": "S"}, {"name": "Colour", "value": "Red"}])
        );
        assert_eq!(v[0].weight, None, "not in the payload");
    }

    #[test]
    fn a_payload_without_an_id_or_time_is_refused_by_field() {
        let e = rest_product(&json!({"updated_at": "2026-01-01T00:00:00Z"})).unwrap_err();
        assert_eq!(e.field, "id");
        let e = rest_product(&json!({"id": 1})).unwrap_err();
        assert_eq!(e.field, "updated_at");
        let e = rest_product(&json!({"id": -4, "updated_at": "2026-01-01T00:00:00Z"})).unwrap_err();
        assert_eq!(e.field, "id");
    }
}
