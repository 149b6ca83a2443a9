//! What Shopify sends, as the catalog stores it: a product or variant object of the GraphQL
//! Admin API (a bulk export line, or a node of a query) becomes a snapshot. Ids are read from
//! their GIDs as integers (never through a float); money and weights stay decimal strings.

mod rest;

pub use rest::{rest_product, rest_variants};

use chrono::{DateTime, Utc};
use cowans_shopify::Gid;
use cowans_store::catalog::{ProductSnapshot, VariantSnapshot};
use serde_json::{Value, json};

/// Why an object could not be read; names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct SnapshotError {
    pub field: String,
    pub problem: String,
}

fn bad(field: &str, problem: impl Into<String>) -> SnapshotError {
    SnapshotError {
        field: field.to_owned(),
        problem: problem.into(),
    }
}

fn text(v: &Value, field: &str) -> String {
    v[field].as_str().unwrap_or_default().to_owned()
}

fn opt_text(v: &Value, field: &str) -> Option<String> {
    v[field].as_str().map(str::to_owned)
}

fn time(v: &Value, field: &str) -> Result<Option<DateTime<Utc>>, SnapshotError> {
    match v[field].as_str() {
        None => Ok(None),
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| bad(field, format!("{s:?} is not a timestamp ({e})"))),
    }
}

/// The numeric id in a GID field (`gid://shopify/Product/123`).
pub fn gid_id(v: &Value, field: &str) -> Result<i64, SnapshotError> {
    let s = v[field]
        .as_str()
        .ok_or_else(|| bad(field, "missing or not a string"))?;
    let gid: Gid = s
        .parse()
        .map_err(|_| bad(field, format!("{s:?} is not a Shopify id")))?;
    i64::try_from(gid.id).map_err(|_| bad(field, format!("{} is out of range", gid.id)))
}

/// A Shopify id of `kind` as people and files give it: the decimal number, or its GID
/// (`gid://shopify/<kind>/<n>`). `None` for anything else (another kind, zero, not a number,
/// out of range).
pub fn shopify_id(s: &str, kind: &str) -> Option<i64> {
    let s = s.trim();
    let n = match s.parse::<Gid>() {
        Ok(g) if g.kind == kind => g.id,
        Ok(_) => return None,
        Err(_) => s.parse::<u64>().ok()?,
    };
    i64::try_from(n).ok().filter(|n| *n > 0)
}

/// A decimal: Shopify sends money as a string (the `Money` scalar) or, in some shapes, as
/// `{"amount": "...", "currencyCode": ...}`.
fn decimal(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(o) => o.get("amount").and_then(decimal),
        _ => None,
    }
}

/// A product object.
pub fn product(v: &Value) -> Result<ProductSnapshot, SnapshotError> {
    let updated_at = time(v, "updatedAt")?.ok_or_else(|| bad("updatedAt", "missing"))?;
    let options = v["options"]
        .as_array()
        .map(|options| {
            options
                .iter()
                .map(|o| {
                    let values: Vec<Value> = o["optionValues"]
                        .as_array()
                        .map(|vals| vals.iter().map(|x| x["name"].clone()).collect())
                        .or_else(|| o["values"].as_array().cloned())
                        .unwrap_or_default();
                    json!({ "name": o["name"], "position": o["position"], "values": values })
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    Ok(ProductSnapshot {
        id: gid_id(v, "id")?,
        title: text(v, "title"),
        handle: text(v, "handle"),
        description_html: text(v, "descriptionHtml"),
        vendor: text(v, "vendor"),
        product_type: text(v, "productType"),
        status: v["status"].as_str().unwrap_or("ACTIVE").to_owned(),
        tags: v["tags"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        options: Value::Array(options),
        created_at: time(v, "createdAt")?,
        updated_at,
    })
}

/// A variant object of the product `product_id` whose snapshot was taken at
/// `product_updated_at`; `index` is its place in the product's list (the position when Shopify
/// sends none).
pub fn variant(
    v: &Value,
    product_id: i64,
    product_updated_at: DateTime<Utc>,
    index: usize,
) -> Result<VariantSnapshot, SnapshotError> {
    let price = decimal(&v["price"]).ok_or_else(|| bad("price", "missing"))?;
    let item = &v["inventoryItem"];
    let weight = &item["measurement"]["weight"];
    Ok(VariantSnapshot {
        id: gid_id(v, "id")?,
        product_id,
        product_updated_at,
        title: text(v, "title"),
        position: v["position"]
            .as_i64()
            .and_then(|p| i32::try_from(p).ok())
            .unwrap_or(index as i32 + 1),
        sku: opt_text(v, "sku").or_else(|| opt_text(item, "sku")),
        barcode: opt_text(v, "barcode"),
        price,
        compare_at_price: decimal(&v["compareAtPrice"]),
        inventory_quantity: v["inventoryQuantity"]
            .as_i64()
            .and_then(|q| i32::try_from(q).ok()),
        inventory_item_id: item.get("id").and_then(|_| gid_id(item, "id").ok()),
        weight: decimal(&weight["value"]),
        weight_unit: opt_text(weight, "unit"),
        inventory: levels(item),
        option_values: v["selectedOptions"].as_array().map_or_else(
            || json!([]),
            |opts| {
                Value::Array(
                    opts.iter()
                        .map(|o| json!({ "name": o["name"], "value": o["value"] }))
                        .collect(),
                )
            },
        ),
    })
}

/// One inventory level (`{location {id}, quantities(names: ["available"]) {name quantity}}`, a
/// node of `inventoryLevels` or a bulk export's level line): its location's id and available
/// quantity.
pub fn level(v: &Value) -> Option<(i64, i64)> {
    let location = gid_id(&v["location"], "id").ok()?;
    let available = v["quantities"]
        .as_array()?
        .iter()
        .find(|q| q["name"] == "available")?["quantity"]
        .as_i64()?;
    Some((location, available))
}

/// The levels an inventory item object carries inline (`inventoryLevels { nodes | edges }`) as
/// `{"<location id>": available}`; `None` when it carries none (the read did not ask).
pub fn levels(item: &Value) -> Option<Value> {
    let connection = item.get("inventoryLevels")?;
    let nodes: Vec<&Value> = match connection.get("nodes").and_then(Value::as_array) {
        Some(nodes) => nodes.iter().collect(),
        None => connection
            .get("edges")?
            .as_array()?
            .iter()
            .map(|e| &e["node"])
            .collect(),
    };
    Some(Value::Object(
        nodes
            .into_iter()
            .filter_map(level)
            .map(|(l, q)| (l.to_string(), json!(q)))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bulk_product_line_and_its_variant_become_snapshots() {
        let p = json!({
            "id": "gid://shopify/Product/9007199254740993", "title": "Tee", "handle": "tee",
            "descriptionHtml": "<p>Soft</p>", "vendor": "Acme", "productType": "Shirt",
            "status": "DRAFT", "tags": ["a", "b"], "createdAt": "2026-01-01T00:00:00Z",
            "updatedAt": "2026-02-01T10:00:00Z",
            "options": [{"name": "Size", "position": 1, "optionValues": [{"name": "S"}, {"name": "M"}]}]
        });
        let s = product(&p).unwrap();
        assert_eq!(s.id, 9_007_199_254_740_993, "exact above 2^53");
        assert_eq!((s.status.as_str(), s.tags.len()), ("DRAFT", 2));
        assert_eq!(
            s.options,
            json!([{"name": "Size", "position": 1, "values": ["S", "M"]}])
        );
        let v = json!({
            "id": "gid://shopify/ProductVariant/9007199254740995", "title": "S", "sku": "TEE-S",
            "price": "19.90", "compareAtPrice": null, "inventoryQuantity": 4, "position": 1,
            "barcode": "123", "selectedOptions": [{"name": "Size", "value": "S"}],
            "inventoryItem": {"id": "gid://shopify/InventoryItem/9007199254740997",
              "measurement": {"weight": {"unit": "KILOGRAMS", "value": 0.25}}}
        });
        let s = variant(&v, 1, s.updated_at, 0).unwrap();
        assert_eq!(s.id, 9_007_199_254_740_995);
        assert_eq!((s.price.as_str(), s.compare_at_price), ("19.90", None));
        assert_eq!(s.weight.as_deref(), Some("0.25"));
        assert_eq!(s.inventory_item_id, Some(9_007_199_254_740_997));
        assert_eq!(s.option_values, json!([{"name": "Size", "value": "S"}]));
        assert_eq!(s.inventory, None, "no levels asked: none known");
    }

    #[test]
    fn inventory_levels_become_available_by_location() {
        let item = json!({"id": "gid://shopify/InventoryItem/5", "inventoryLevels": {"nodes": [
            {"location": {"id": "gid://shopify/Location/9007199254740993"},
             "quantities": [{"name": "available", "quantity": 7}]},
            {"location": {"id": "gid://shopify/Location/2"},
             "quantities": [{"name": "on_hand", "quantity": 1}, {"name": "available", "quantity": -2}]}
        ]}});
        assert_eq!(levels(&item), Some(json!({"9007199254740993": 7, "2": -2})));
        let edges = json!({"inventoryLevels": {"edges": []}});
        assert_eq!(levels(&edges), Some(json!({})));
    }

    #[test]
    fn ids_are_read_as_decimals_or_gids_of_their_kind() {
        assert_eq!(
            shopify_id("9007199254740993", "Product"),
            Some(9_007_199_254_740_993)
        );
        assert_eq!(shopify_id(" gid://shopify/Product/7 ", "Product"), Some(7));
        assert_eq!(
            shopify_id("gid://shopify/ProductVariant/7", "Product"),
            None
        );
        for bad in ["0", "-3", "x", "", "18446744073709551615"] {
            assert_eq!(shopify_id(bad, "Product"), None, "{bad}");
        }
    }

    #[test]
    fn missing_or_broken_fields_are_named() {
        let e = product(&json!({"id": "gid://shopify/Product/1"})).unwrap_err();
        assert_eq!(e.field, "updatedAt");
        let e = product(&json!({"id": 5, "updatedAt": "2026-01-01T00:00:00Z"})).unwrap_err();
        assert_eq!(e.field, "id");
        let e = variant(
            &json!({"id": "gid://shopify/ProductVariant/2"}),
            1,
            Utc::now(),
            0,
        )
        .unwrap_err();
        assert_eq!(e.field, "price");
    }
}
