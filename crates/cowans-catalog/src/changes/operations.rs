//! The operations of a bulk edit and what they do to one product: decimal money arithmetic
//! (millionths, rounded half away from zero to cents, or to the nearest .99), tags as a set,
//! plain sets of status, vendor and product type.

use cowans_queue::{StoreError, StoreResult as Result};
use cowans_store::catalog::{ProductRow, VariantRow};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{
    Edit, Field,
    fields::{by_location, money},
    product_fields, variant_fields,
};

/// One operation: `{"field": "price", "op": "percent", "value": "-10", "rounding": "99"}`.
///
/// - `price`, `compare_at_price`: `set` (a decimal), `add` (± amount), `percent` (± percent);
///   `compare_at_price` also `clear`. `rounding` of add/percent results: `cents` (default) or
///   `99` (the nearest price ending in .99).
/// - `tags`: `add` or `remove` a list of tags.
/// - `status`, `vendor`, `product_type`: `set`.
/// - `inventory`: `set` quantities (`{"<location id>": n}`) or `add` signed amounts to them, at
///   the locations named that stock the variant (the others are left alone).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Operation {
    pub field: String,
    pub op: String,
    #[schema(value_type = Object)]
    pub value: Option<Value>,
    pub rounding: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rounding {
    Cents,
    NinetyNine,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum MoneyOp {
    Set(Value),
    /// In millionths.
    Add(i128),
    /// In millionths of a percent.
    Percent(i128),
    Clear,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Op {
    Money(Field, MoneyOp, Rounding),
    TagsAdd(Vec<String>),
    TagsRemove(Vec<String>),
    Set(Field, Value),
    /// Quantities by location set (`add: false`) or changed by signed amounts.
    Inventory {
        add: bool,
        by: Vec<(String, i64)>,
    },
}

/// Millionths of a decimal string (`"-12.5"` → -12,500,000); `None` past six decimals.
fn micros(s: &str) -> Option<i128> {
    let s = s.trim();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 6
        || int.len() > 15
    {
        return None;
    }
    let int: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let frac: i128 = format!("{frac:0<6}").parse().ok()?;
    let v = int * 1_000_000 + frac;
    Some(if neg { -v } else { v })
}

/// A decimal text of millionths rounded to cents (half away from zero) by `rounding`.
fn to_money(m: i128, rounding: Rounding) -> std::result::Result<Value, String> {
    let cents = (m.abs() + 5_000) / 10_000 * m.signum();
    let cents = match rounding {
        Rounding::Cents => cents,
        // The nearest price ending in .99 (0.99 at least).
        Rounding::NinetyNine => (((cents + 1 + 50) / 100) * 100 - 1).max(99),
    };
    if cents < 0 {
        return Err(format!(
            "the price would be {}.{:02}",
            cents / 100,
            (cents % 100).abs()
        ));
    }
    money(&json!(format!("{}.{:02}", cents / 100, cents % 100)))
}

fn value_text(v: &Option<Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// `ops` checked; errors name `operations[i].<part>`.
pub(super) fn checked_ops(ops: &[Operation]) -> Result<Vec<Op>> {
    if ops.is_empty() || ops.len() > 20 {
        return Err(StoreError::invalid(
            "operations",
            "must list 1 to 20 operations",
        ));
    }
    let mut out = Vec::with_capacity(ops.len());
    for (i, o) in ops.iter().enumerate() {
        let at = |part: &str| format!("operations[{i}].{part}");
        let bad = |part: &str, m: &str| StoreError::invalid(at(part), m);
        let field = Field::named(&o.field)
            .ok_or_else(|| bad("field", "is not a field a change may propose"))?;
        let rounding = match o.rounding.as_deref() {
            None | Some("cents") => Rounding::Cents,
            Some("99") if field.is_money() => Rounding::NinetyNine,
            Some(_) => return Err(bad("rounding", "must be cents or 99 (money only)")),
        };
        let op = match (field.name, o.op.as_str()) {
            ("price" | "compare_at_price", "set") => {
                let v = field
                    .canonical(o.value.as_ref().unwrap_or(&Value::Null))
                    .map_err(|m| bad("value", &m))?;
                Op::Money(field, MoneyOp::Set(v), rounding)
            }
            ("price" | "compare_at_price", "add" | "percent") => {
                let m = value_text(&o.value)
                    .as_deref()
                    .and_then(micros)
                    .ok_or_else(|| bad("value", "must be a signed decimal such as \"-2.50\""))?;
                if o.op == "percent" && m <= -100_000_000 {
                    return Err(bad("value", "a percentage must be above -100"));
                }
                let op = if o.op == "add" {
                    MoneyOp::Add(m)
                } else {
                    MoneyOp::Percent(m)
                };
                Op::Money(field, op, rounding)
            }
            ("compare_at_price", "clear") => Op::Money(field, MoneyOp::Clear, rounding),
            ("tags", "add" | "remove") => {
                let tags = field
                    .canonical(o.value.as_ref().unwrap_or(&Value::Null))
                    .map_err(|m| bad("value", &m))?;
                let tags: Vec<String> = serde_json::from_value(tags).unwrap_or_default();
                if tags.is_empty() {
                    return Err(bad("value", "must name at least one tag"));
                }
                if o.op == "add" {
                    Op::TagsAdd(tags)
                } else {
                    Op::TagsRemove(tags)
                }
            }
            ("inventory", "set") => {
                let v = field
                    .canonical(o.value.as_ref().unwrap_or(&Value::Null))
                    .map_err(|m| bad("value", &m))?;
                Op::Inventory {
                    add: false,
                    by: quantities(&v),
                }
            }
            ("inventory", "add") => {
                let pairs: Vec<(String, Value)> = match &o.value {
                    Some(Value::Object(m)) if !m.is_empty() && m.len() <= 250 => {
                        m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
                    }
                    _ => {
                        return Err(bad(
                            "value",
                            "must be 1 to 250 signed amounts by location, e.g. {\"<location id>\": -2}",
                        ));
                    }
                };
                let by = by_location(&pairs, -1_000_000_000).map_err(|m| bad("value", &m))?;
                Op::Inventory { add: true, by }
            }
            ("status" | "vendor" | "product_type", "set") => {
                let v = field
                    .canonical(o.value.as_ref().unwrap_or(&Value::Null))
                    .map_err(|m| bad("value", &m))?;
                Op::Set(field, v)
            }
            _ => {
                return Err(bad(
                    "op",
                    &format!("{:?} is not an operation on {}", o.op, field.name),
                ));
            }
        };
        out.push(op);
    }
    Ok(out)
}

/// `{"<location>": n}` (canonical) as pairs, in key order.
fn quantities(v: &Value) -> Vec<(String, i64)> {
    v.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, n)| Some((k.clone(), n.as_i64()?)))
        .collect()
}

/// The edits `ops` make to one product and its variants (values equal to the catalog's are
/// left for staging to drop), or why they cannot apply.
pub(super) fn apply(
    ops: &[Op],
    p: &ProductRow,
    variants: &[VariantRow],
) -> std::result::Result<Vec<Edit>, String> {
    let snapshot = product_fields(p);
    let mut product = Map::new();
    let mut by_variant: Vec<(i64, Value, Map<String, Value>)> = variants
        .iter()
        .map(|v| (v.id, variant_fields(v), Map::new()))
        .collect();
    for op in ops {
        match op {
            Op::Set(f, v) => {
                product.insert(f.name.into(), v.clone());
            }
            Op::TagsAdd(_) | Op::TagsRemove(_) => {
                let field = Field::named("tags").expect("a field");
                let now = product
                    .get("tags")
                    .cloned()
                    .unwrap_or_else(|| field.lenient(&snapshot["tags"]));
                let mut tags: Vec<String> = serde_json::from_value(now).unwrap_or_default();
                match op {
                    Op::TagsAdd(add) => tags.extend(add.iter().cloned()),
                    Op::TagsRemove(remove) => {
                        tags.retain(|t| !remove.iter().any(|r| r.eq_ignore_ascii_case(t)))
                    }
                    _ => {}
                }
                let v = field.canonical(&json!(tags))?;
                product.insert("tags".into(), v);
            }
            Op::Inventory { add, by } => {
                let field = Field::named("inventory").expect("a field");
                for (id, snap, edit) in by_variant.iter_mut() {
                    let stocked = snap["inventory"].as_object();
                    let mut now = edit
                        .get("inventory")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default();
                    for (location, n) in by {
                        let Some(have) = stocked.and_then(|s| s.get(location)) else {
                            // Not stocked there: left alone.
                            continue;
                        };
                        let base = now
                            .get(location)
                            .and_then(Value::as_i64)
                            .or_else(|| have.as_i64())
                            .unwrap_or(0);
                        let q = if *add { base + n } else { *n };
                        if q < 0 {
                            return Err(format!(
                                "variant {id}: the quantity at location {location} would be {q}"
                            ));
                        }
                        now.insert(location.clone(), json!(q));
                    }
                    if !now.is_empty() {
                        let v = field.canonical(&Value::Object(now))?;
                        edit.insert("inventory".into(), v);
                    }
                }
            }
            Op::Money(f, m, rounding) => {
                for (id, snap, edit) in by_variant.iter_mut() {
                    let now = edit
                        .get(f.name)
                        .cloned()
                        .unwrap_or_else(|| f.lenient(&snap[f.name]));
                    let new = match m {
                        MoneyOp::Set(v) => v.clone(),
                        MoneyOp::Clear => Value::Null,
                        MoneyOp::Add(_) | MoneyOp::Percent(_) => {
                            let Some(cur) = now.as_str().and_then(micros) else {
                                // No compare-at price to change.
                                continue;
                            };
                            let next = match m {
                                MoneyOp::Add(d) => cur + d,
                                MoneyOp::Percent(pct) => cur * (100_000_000 + pct) / 100_000_000,
                                _ => cur,
                            };
                            to_money(next, *rounding).map_err(|e| format!("variant {id}: {e}"))?
                        }
                    };
                    edit.insert(f.name.into(), new);
                }
            }
        }
    }
    let mut edits = Vec::new();
    if !product.is_empty() {
        edits.push(Edit {
            product_id: p.id,
            variant_id: None,
            fields: product,
        });
    }
    for (id, _, fields) in by_variant {
        if !fields.is_empty() {
            edits.push(Edit {
                product_id: p.id,
                variant_id: Some(id),
                fields,
            });
        }
    }
    Ok(edits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(field: &str, op: &str, value: Value, rounding: Option<&str>) -> Operation {
        Operation {
            field: field.into(),
            op: op.into(),
            value: Some(value),
            rounding: rounding.map(Into::into),
        }
    }

    fn product(tags: &[&str]) -> ProductRow {
        ProductRow {
            shop_id: 1,
            id: 7,
            title: "Tee".into(),
            handle: "tee".into(),
            description_html: String::new(),
            vendor: "Acme".into(),
            product_type: "Shirt".into(),
            status: "ACTIVE".into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            options: json!([]),
            shopify_created_at: None,
            shopify_updated_at: chrono::Utc::now(),
            deleted_at: None,
            synced_at: chrono::Utc::now(),
        }
    }

    fn variant(id: i64, price: &str, compare: Option<&str>) -> VariantRow {
        VariantRow {
            id,
            product_id: 7,
            title: String::new(),
            position: 1,
            sku: None,
            barcode: None,
            price: price.into(),
            compare_at_price: compare.map(Into::into),
            inventory_quantity: None,
            inventory_item_id: None,
            weight: None,
            weight_unit: None,
            option_values: json!([]),
            inventory: None,
        }
    }

    fn run(ops: &[Operation], vs: &[VariantRow]) -> std::result::Result<Vec<Edit>, String> {
        apply(&checked_ops(ops).unwrap(), &product(&["a"]), vs)
    }

    #[test]
    fn price_arithmetic_is_decimal_with_its_rounding_rule() {
        let vs = [
            variant(1, "19.99", Some("25.00")),
            variant(2, "10.00", None),
        ];
        let e = run(&[op("price", "percent", json!("-10"), None)], &vs).unwrap();
        assert_eq!(e[0].fields["price"], json!("17.99"), "19.99 × 0.9 = 17.991");
        assert_eq!(e[1].fields["price"], json!("9.00"));
        let e = run(&[op("price", "percent", json!("15"), Some("99"))], &vs).unwrap();
        assert_eq!(
            e[0].fields["price"],
            json!("22.99"),
            "22.9885 → nearest .99"
        );
        assert_eq!(e[1].fields["price"], json!("11.99"), "11.50 → 11.99");
        let e = run(&[op("price", "add", json!("-0.1"), None)], &vs).unwrap();
        assert_eq!(e[1].fields["price"], json!("9.90"));
        // Compare-at moves only where there is one.
        let e = run(&[op("compare_at_price", "add", json!(5), None)], &vs).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].fields["compare_at_price"], json!("30.00"));
        // A price below zero is refused for the whole product.
        let err = run(&[op("price", "add", json!("-15"), None)], &vs).unwrap_err();
        assert!(err.contains("-5.00"), "{err}");
    }

    #[test]
    fn tags_are_added_and_removed_as_a_set() {
        let e = apply(
            &checked_ops(&[
                op("tags", "add", json!(["Sale", "summer"]), None),
                op("tags", "remove", json!("A"), None),
            ])
            .unwrap(),
            &product(&["a", "summer"]),
            &[],
        )
        .unwrap();
        assert_eq!(e[0].fields["tags"], json!(["Sale", "summer"]));
    }

    #[test]
    fn bad_operations_name_their_part() {
        for (o, part) in [
            (op("price", "double", json!(1), None), "operations[0].op"),
            (op("price", "add", json!("x"), None), "operations[0].value"),
            (
                op("price", "percent", json!("-100"), None),
                "operations[0].value",
            ),
            (
                op("vendor", "set", json!("x"), Some("99")),
                "operations[0].rounding",
            ),
            (op("colour", "set", json!("x"), None), "operations[0].field"),
            (
                op("status", "set", json!("gone"), None),
                "operations[0].value",
            ),
            (op("tags", "add", json!([]), None), "operations[0].value"),
        ] {
            match checked_ops(&[o]).unwrap_err() {
                StoreError::Invalid { field, .. } => assert_eq!(field, part),
                other => panic!("{other:?}"),
            }
        }
        assert!(checked_ops(&[]).is_err());
        assert_eq!(micros("-12.5"), Some(-12_500_000));
        assert_eq!(micros("1.1234567"), None);
    }

    #[test]
    fn stock_shifts_keep_each_locations_sign_whatever_the_key_form() {
        let op = |v: Value| Operation {
            field: "inventory".into(),
            op: "add".into(),
            value: Some(v),
            rounding: None,
        };
        let mut v = variant(1, "1.00", None);
        v.inventory = Some(json!({"9": 10, "10": 10, "7": 10}));
        // Keys sort differently as given and as ids: each amount stays with its location.
        let edits = run(
            &[op(
                json!({"9": -2, "gid://shopify/Location/10": 5, "07": 1}),
            )],
            &[v.clone()],
        )
        .unwrap();
        assert_eq!(
            edits[0].fields["inventory"],
            json!({"9": 8, "10": 15, "7": 11})
        );
        // Below zero: the product is skipped with the reason; not a number or out of range:
        // the operation is refused.
        let e = run(&[op(json!({"9": -11}))], &[v]).unwrap_err();
        assert!(e.contains("would be -1"), "{e}");
        for bad in [
            json!({"9": "x"}),
            json!({"9": i64::MIN}),
            json!({}),
            json!(3),
        ] {
            assert!(checked_ops(&[op(bad.clone())]).is_err(), "{bad}");
        }
    }
}
