//! The fields a change may propose, their rules, and their one canonical form. Every value —
//! what a person proposes, what the catalog's snapshot holds, what Shopify answers — goes
//! through [`canonical`] before it is stored or compared, so the three-way check is plain
//! equality: money as decimals (`"10.0"` = `"10.00"`), tags as a set, empty SKUs as none.

use serde_json::{Value, json};

/// What a field belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Product,
    Variant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Text, trimmed, `nonempty` or not, at most `max` characters.
    Text { nonempty: bool, max: usize },
    /// Lower-case letters, digits and dashes.
    Handle,
    /// HTML kept as given, at most 512 KiB.
    Html,
    /// One of Shopify's product statuses.
    Status,
    /// A set of tags.
    Tags,
    /// A decimal amount ≥ 0.
    Money,
    /// A decimal amount ≥ 0, or none.
    OptMoney,
    /// Text or none (empty is none), at most 255 characters.
    OptText,
    /// Available quantities by location: `{"<location id>": n}` (a location's GID or number
    /// as key; or text `"<location>=<n>, ..."`), n from 0 to 1,000,000,000. A change names the
    /// locations it sets; the others are not part of it.
    Levels,
}

/// A field a change may propose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Its name in changes, filters and imports (the catalog's column).
    pub name: &'static str,
    pub level: Level,
    kind: Kind,
}

/// Every field a change may propose.
pub const FIELDS: &[Field] = &[
    Field::product(
        "title",
        Kind::Text {
            nonempty: true,
            max: 255,
        },
    ),
    Field::product("handle", Kind::Handle),
    Field::product("description_html", Kind::Html),
    Field::product(
        "vendor",
        Kind::Text {
            nonempty: false,
            max: 255,
        },
    ),
    Field::product(
        "product_type",
        Kind::Text {
            nonempty: false,
            max: 255,
        },
    ),
    Field::product("status", Kind::Status),
    Field::product("tags", Kind::Tags),
    Field::variant("price", Kind::Money),
    Field::variant("compare_at_price", Kind::OptMoney),
    Field::variant("sku", Kind::OptText),
    Field::variant("barcode", Kind::OptText),
    Field::variant("inventory", Kind::Levels),
];

/// Shopify's product statuses.
pub const STATUSES: [&str; 4] = ["ACTIVE", "ARCHIVED", "DRAFT", "UNLISTED"];
const MAX_TAGS: usize = 250;
const MAX_TAG: usize = 255;
const MAX_HTML: usize = 512 * 1024;
/// Shopify's largest price.
const MAX_MONEY: f64 = 1e15;
/// Shopify's largest quantity.
const MAX_QUANTITY: i64 = 1_000_000_000;
/// Most locations one change sets.
const MAX_LEVELS: usize = 250;

impl Field {
    const fn product(name: &'static str, kind: Kind) -> Self {
        Self {
            name,
            level: Level::Product,
            kind,
        }
    }

    const fn variant(name: &'static str, kind: Kind) -> Self {
        Self {
            name,
            level: Level::Variant,
            kind,
        }
    }

    /// The field named `name`.
    pub fn named(name: &str) -> Option<Field> {
        FIELDS.iter().copied().find(|f| f.name == name)
    }

    /// Whether it is money (bulk price edits apply to these).
    pub fn is_money(self) -> bool {
        matches!(self.kind, Kind::Money | Kind::OptMoney)
    }

    /// `v` in canonical form, or why it cannot be this field's value.
    pub fn canonical(self, v: &Value) -> Result<Value, String> {
        match self.kind {
            Kind::Text { nonempty, max } => {
                let s = string(v)?.trim().to_owned();
                if nonempty && s.is_empty() {
                    return Err("must not be empty".into());
                }
                if s.chars().count() > max {
                    return Err(format!("must be at most {max} characters"));
                }
                Ok(Value::String(s))
            }
            Kind::Handle => {
                let s = string(v)?.trim().to_owned();
                if s.is_empty()
                    || s.len() > 255
                    || !s
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                {
                    return Err("must be 1 to 255 of a-z, 0-9 and '-'".into());
                }
                Ok(Value::String(s))
            }
            Kind::Html => {
                let s = string(v)?;
                if s.len() > MAX_HTML {
                    return Err(format!("must be at most {MAX_HTML} bytes"));
                }
                Ok(Value::String(s.to_owned()))
            }
            Kind::Status => {
                let s = string(v)?.trim().to_ascii_uppercase();
                if !STATUSES.contains(&s.as_str()) {
                    return Err("must be one of active, archived, draft, unlisted".into());
                }
                Ok(Value::String(s))
            }
            Kind::Tags => tags(v),
            Kind::Levels => levels(v),
            Kind::Money => money(v),
            Kind::OptMoney => match v {
                Value::Null => Ok(Value::Null),
                Value::String(s) if s.trim().is_empty() => Ok(Value::Null),
                v => money(v),
            },
            Kind::OptText => match v {
                Value::Null => Ok(Value::Null),
                v => {
                    let s = string(v)?.trim().to_owned();
                    if s.chars().count() > 255 {
                        return Err("must be at most 255 characters".into());
                    }
                    Ok(if s.is_empty() {
                        Value::Null
                    } else {
                        Value::String(s)
                    })
                }
            },
        }
    }

    /// A stored or answered value in canonical form; what does not parse is kept as it is (it
    /// then differs from every proposal, which is the safe reading).
    pub fn lenient(self, v: &Value) -> Value {
        self.canonical(v).unwrap_or_else(|_| v.clone())
    }

    /// Whether it is inventory (written with `inventorySetQuantities`, not with the variant).
    pub fn is_inventory(self) -> bool {
        self.kind == Kind::Levels
    }

    /// The part of `v` (a value of this field) a change proposing `proposed` is about: for
    /// inventory, the locations `proposed` names (`null` where `v` has none of them); for
    /// every other field all of it.
    pub fn part(self, v: &Value, proposed: &Value) -> Value {
        match (self.kind, proposed.as_object()) {
            (Kind::Levels, Some(wanted)) => Value::Object(
                wanted
                    .keys()
                    .map(|k| (k.clone(), v.get(k).cloned().unwrap_or(Value::Null)))
                    .collect(),
            ),
            _ => v.clone(),
        }
    }

    /// Shopify's name of the field in `Product` / `ProductVariant` objects and inputs.
    pub fn shopify_name(self) -> &'static str {
        match self.name {
            "description_html" => "descriptionHtml",
            "product_type" => "productType",
            "compare_at_price" => "compareAtPrice",
            other => other,
        }
    }

    /// The field's value in a Shopify object (`sku` of a variant is read from either place it
    /// may be).
    pub fn read(self, object: &Value) -> Value {
        let v = match self.name {
            "inventory" => crate::snapshot::levels(&object["inventoryItem"]).unwrap_or(Value::Null),
            "sku" => object
                .get("sku")
                .filter(|v| !v.is_null())
                .or_else(|| object.pointer("/inventoryItem/sku"))
                .cloned()
                .unwrap_or(Value::Null),
            _ => object
                .get(self.shopify_name())
                .cloned()
                .unwrap_or(Value::Null),
        };
        self.lenient(&v)
    }
}

fn string(v: &Value) -> Result<&str, String> {
    let s = v.as_str().ok_or_else(|| "must be a string".to_owned())?;
    if s.contains('\0') {
        return Err("must not contain NUL characters".into());
    }
    Ok(s)
}

/// Tags from a list of strings or Shopify's comma-separated text: trimmed, empty ones dropped,
/// duplicates (ignoring case) dropped, sorted ignoring case.
fn tags(v: &Value) -> Result<Value, String> {
    let raw: Vec<String> = match v {
        Value::String(s) if s.contains('\0') => {
            return Err("must not contain NUL characters".into());
        }
        Value::String(s) => s.split(',').map(str::to_owned).collect(),
        Value::Array(items) => items
            .iter()
            .map(|t| {
                t.as_str()
                    .filter(|t| !t.contains('\0'))
                    .map(str::to_owned)
                    .ok_or_else(|| "must be a list of strings without NUL characters".to_owned())
            })
            .collect::<Result<_, _>>()?,
        _ => return Err("must be a list of strings or comma-separated text".into()),
    };
    let mut out: Vec<String> = Vec::new();
    for t in raw {
        let t = t.trim();
        if t.is_empty() || out.iter().any(|o| o.eq_ignore_ascii_case(t)) {
            continue;
        }
        if t.chars().count() > MAX_TAG {
            return Err(format!("a tag must be at most {MAX_TAG} characters"));
        }
        out.push(t.to_owned());
    }
    if out.len() > MAX_TAGS {
        return Err(format!("at most {MAX_TAGS} tags"));
    }
    out.sort_by_key(|t| t.to_lowercase());
    Ok(json!(out))
}

/// Quantities by location, keys as decimal location ids.
fn levels(v: &Value) -> Result<Value, String> {
    const SHAPE: &str =
        "must be quantities by location, e.g. {\"<location id>\": 5} or \"<location id>=5\"";
    let pairs: Vec<(String, Value)> = match v {
        Value::Object(o) => o.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        Value::String(s) => s
            .split([',', ';'])
            .filter(|p| !p.trim().is_empty())
            .map(|p| {
                // The last separator: a GID's own `:` comes before it.
                let (k, n) = p.rsplit_once(['=', ':']).ok_or_else(|| SHAPE.to_owned())?;
                let n: i64 = n.trim().parse().map_err(|_| SHAPE.to_owned())?;
                Ok((k.trim().to_owned(), json!(n)))
            })
            .collect::<Result<_, String>>()?,
        _ => return Err(SHAPE.into()),
    };
    if pairs.is_empty() {
        return Err("must name at least one location".into());
    }
    if pairs.len() > MAX_LEVELS {
        return Err(format!("at most {MAX_LEVELS} locations"));
    }
    let out = by_location(&pairs, 0)?;
    Ok(Value::Object(
        out.into_iter().map(|(l, n)| (l, json!(n))).collect(),
    ))
}

/// Whole numbers by location (keys: a location's GID or number) as `(decimal id, n)` in id
/// order, each from `min` to 1,000,000,000; a location named twice is an error.
pub(super) fn by_location(
    pairs: &[(String, Value)],
    min: i64,
) -> Result<Vec<(String, i64)>, String> {
    let mut out: Vec<(String, i64)> = Vec::with_capacity(pairs.len());
    for (k, n) in pairs {
        let location = crate::snapshot::shopify_id(k, "Location")
            .ok_or_else(|| format!("{k:?} is not a location id"))?;
        let n = n
            .as_i64()
            .ok_or_else(|| format!("the quantity at location {location} must be a whole number"))?;
        if !(min..=MAX_QUANTITY).contains(&n) {
            return Err(format!(
                "the quantity at location {location} must be from {min} to {MAX_QUANTITY}"
            ));
        }
        let key = location.to_string();
        if out.iter().any(|(l, _)| *l == key) {
            return Err(format!("location {location} is named twice"));
        }
        out.push((key, n));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// A decimal amount ≥ 0 as text with at least two decimals (`"10"`, `"10.0"` → `"10.00"`,
/// `"1.2350"` → `"1.235"`), from a string or a JSON number.
pub fn money(v: &Value) -> Result<Value, String> {
    let s = match v {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return Err("must be a decimal amount such as \"19.90\"".into()),
    };
    let bad = || format!("{s:?} is not a decimal amount ≥ 0 such as \"19.90\"");
    let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || (s.contains('.') && frac.is_empty())
    {
        return Err(bad());
    }
    if s.parse::<f64>().map_err(|_| bad())? >= MAX_MONEY {
        return Err(format!("{s:?} is too large"));
    }
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let mut frac = frac.trim_end_matches('0').to_owned();
    while frac.len() < 2 {
        frac.push('0');
    }
    Ok(Value::String(format!("{int}.{frac}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str) -> Field {
        Field::named(name).unwrap()
    }

    #[test]
    fn money_is_compared_as_a_decimal() {
        for (a, b) in [
            ("10", "10.00"),
            ("10.0", "10.00"),
            ("010.50", "10.50"),
            ("1.2350", "1.235"),
            ("0", "0.00"),
        ] {
            assert_eq!(money(&json!(a)).unwrap(), json!(b), "{a}");
        }
        assert_eq!(money(&json!(19.9)).unwrap(), json!("19.90"));
        for bad in ["-1", "1e3", "abc", "", "1.", ".5", "1,5", "NaN", "1e20"] {
            assert!(money(&json!(bad)).is_err(), "{bad}");
        }
        assert!(money(&json!(true)).is_err());
        assert_eq!(
            f("compare_at_price").canonical(&json!("")).unwrap(),
            Value::Null
        );
    }

    #[test]
    fn tags_are_a_set_ignoring_case_order_and_blanks() {
        let a = f("tags")
            .canonical(&json!("summer, Cotton ,, cotton"))
            .unwrap();
        let b = f("tags").canonical(&json!(["cotton", "summer"])).unwrap();
        assert_eq!(a, json!(["Cotton", "summer"]));
        assert_eq!(a.as_array().unwrap().len(), b.as_array().unwrap().len());
        assert!(f("tags").canonical(&json!([1])).is_err());
        assert!(f("tags").canonical(&json!(["x".repeat(256)])).is_err());
    }

    #[test]
    fn each_kind_refuses_what_shopify_would() {
        assert!(f("title").canonical(&json!("  ")).is_err());
        assert_eq!(f("title").canonical(&json!(" Tee ")).unwrap(), json!("Tee"));
        assert!(f("handle").canonical(&json!("Bad Handle")).is_err());
        assert_eq!(
            f("status").canonical(&json!("draft")).unwrap(),
            json!("DRAFT")
        );
        assert!(f("status").canonical(&json!("gone")).is_err());
        assert_eq!(f("sku").canonical(&json!("")).unwrap(), Value::Null);
        assert!(f("price").canonical(&Value::Null).is_err());
        assert!(Field::named("inventory_quantity").is_none());
        for f in ["title", "vendor", "sku", "tags", "description_html"] {
            assert!(
                Field::named(f)
                    .unwrap()
                    .canonical(&json!("a\u{0}b"))
                    .is_err(),
                "{f}"
            );
        }
    }

    #[test]
    fn shopify_objects_are_read_in_canonical_form() {
        let v = json!({"price": "19.9", "compareAtPrice": null, "inventoryItem": {"sku": "A-1"}});
        assert_eq!(f("price").read(&v), json!("19.90"));
        assert_eq!(f("compare_at_price").read(&v), Value::Null);
        assert_eq!(f("sku").read(&v), json!("A-1"));
        let p = json!({"tags": ["b", "A"], "productType": "Shirt"});
        assert_eq!(f("tags").read(&p), json!(["A", "b"]));
        assert_eq!(f("product_type").read(&p), json!("Shirt"));
    }

    #[test]
    fn inventory_is_quantities_at_named_locations() {
        let f = f("inventory");
        assert_eq!(
            f.canonical(&json!({"gid://shopify/Location/7": 5, "9007199254740993": 0}))
                .unwrap(),
            json!({"7": 5, "9007199254740993": 0})
        );
        assert_eq!(
            f.canonical(&json!("7=5; 8:2; gid://shopify/Location/9=1"))
                .unwrap(),
            json!({"7": 5, "8": 2, "9": 1})
        );
        let twice = f
            .canonical(&json!("7=1, gid://shopify/Location/7=2"))
            .unwrap_err();
        assert!(twice.contains("named twice"), "{twice}");
        for bad in [
            json!({"7": -1}),
            json!({"7": 1.5}),
            json!({"x": 1}),
            json!({"gid://shopify/Product/7": 1}),
            json!({}),
            json!("7"),
            json!(5),
            json!({"7": 1_000_000_001}),
        ] {
            assert!(f.canonical(&bad).is_err(), "{bad}");
        }
        // A change is about the locations it names only.
        let proposed = json!({"7": 5});
        assert_eq!(f.part(&json!({"7": 3, "8": 1}), &proposed), json!({"7": 3}));
        assert_eq!(f.part(&json!({"8": 1}), &proposed), json!({"7": null}));
        assert_eq!(f.part(&Value::Null, &proposed), json!({"7": null}));
        let node = json!({"inventoryItem": {"inventoryLevels": {"nodes": [
            {"location": {"id": "gid://shopify/Location/7"}, "quantities": [{"name": "available", "quantity": 4}]}
        ]}}});
        assert_eq!(f.read(&node), json!({"7": 4}));
    }
}
