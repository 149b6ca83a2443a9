//! The simulated shop's data: products with variants, ids above 2^53, search, cursors.

use std::collections::BTreeMap;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Numeric ids start above 2^53 so a client that parses them as f64 breaks in tests.
pub const FIRST_ID: u64 = (1 << 53) + 1;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Variant {
    pub id: u64,
    /// Shopify keeps the SKU on the inventory item; `ProductVariant.sku` reads it.
    pub sku: Option<String>,
    /// Decimal string, as Shopify's Money scalar.
    pub price: String,
    pub compare_at_price: Option<String>,
    pub barcode: Option<String>,
    /// Derived from the option values (`"M / Red"`), or `"Default Title"`.
    pub title: String,
    /// One value per option of the product, in option order.
    pub option_values: Vec<String>,
    pub taxable: bool,
    pub inventory_item_id: u64,
    pub inventory_quantity: i64,
    /// `(unit, value)`: `inventoryItem.measurement.weight` (GRAMS, KILOGRAMS, OUNCES, POUNDS).
    pub weight: Option<(String, f64)>,
}

impl Variant {
    /// A variant with these option values (its title derived from them) and Shopify's defaults.
    pub fn new(id: u64, inventory_item_id: u64, option_values: Vec<String>) -> Self {
        Variant {
            id,
            sku: None,
            price: "0.00".into(),
            compare_at_price: None,
            barcode: None,
            title: variant_title(&option_values),
            option_values,
            taxable: true,
            inventory_item_id,
            inventory_quantity: 0,
            weight: None,
        }
    }
}

/// A variant's title: its option values joined by `" / "`.
pub fn variant_title(values: &[String]) -> String {
    if values.is_empty() {
        DEFAULT_TITLE.to_owned()
    } else {
        values.join(" / ")
    }
}

/// What Shopify calls the option and the variant of a product that has no options of its own.
pub const DEFAULT_OPTION: &str = "Title";
pub const DEFAULT_TITLE: &str = "Default Title";

/// One of a product's options (at most three) with its values in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProductOption {
    pub id: u64,
    pub name: String,
    /// `(id, name)` of each value.
    pub values: Vec<(u64, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Product {
    pub id: u64,
    pub title: String,
    pub handle: String,
    /// ACTIVE, DRAFT or ARCHIVED.
    pub status: String,
    pub vendor: String,
    pub product_type: String,
    pub tags: Vec<String>,
    pub description_html: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub options: Vec<ProductOption>,
    pub variants: Vec<Variant>,
}

impl Product {
    /// Gives a product without variants Shopify's standalone default: option `Title` with the
    /// value `Default Title`, and one variant of that value.
    pub fn ensure_default_variant(&mut self, ids: &mut impl FnMut() -> u64) {
        if !self.variants.is_empty() {
            return;
        }
        if self.options.is_empty() {
            self.options.push(ProductOption {
                id: ids(),
                name: DEFAULT_OPTION.to_owned(),
                values: vec![(ids(), DEFAULT_TITLE.to_owned())],
            });
        }
        let values = self
            .options
            .iter()
            .filter_map(|o| o.values.first().map(|(_, v)| v.clone()))
            .collect();
        let (id, item) = (ids(), ids());
        self.variants.push(Variant::new(id, item, values));
    }
}

#[derive(Debug, Default)]
pub struct Catalog {
    pub products: BTreeMap<u64, Product>,
    next_id: u64,
}

impl Catalog {
    pub fn new() -> Self {
        Self {
            products: BTreeMap::new(),
            next_id: FIRST_ID,
        }
    }

    pub fn next_id(&mut self) -> u64 {
        let id = self.next_id.max(FIRST_ID);
        self.next_id = id + 1;
        id
    }

    /// `n` products of `m` variants each, updated a second apart (oldest first). With one
    /// variant a product has Shopify's default option and variant; with more, an option `Size`
    /// whose values the variants take in turn.
    pub fn seed(&mut self, n: usize, m: usize, now: DateTime<Utc>) {
        const SIZES: [&str; 8] = ["XS", "S", "M", "L", "XL", "XXL", "3XL", "4XL"];
        for i in 0..n {
            let at = now - chrono::Duration::seconds((n - i) as i64);
            let id = self.next_id();
            let mut options = Vec::new();
            if m > 1 {
                let values = (0..m)
                    .map(|v| {
                        let name = SIZES
                            .get(v)
                            .map_or_else(|| format!("Size {v}"), |s| (*s).to_owned());
                        (self.next_id(), name)
                    })
                    .collect();
                options.push(ProductOption {
                    id: self.next_id(),
                    name: "Size".into(),
                    values,
                });
            }
            let variants = (0..m)
                .map(|v| {
                    let vid = self.next_id();
                    let item = self.next_id();
                    let values = options.first().map_or_else(
                        || vec![DEFAULT_TITLE.to_owned()],
                        |o: &ProductOption| vec![o.values[v].1.clone()],
                    );
                    Variant {
                        sku: Some(format!("SKU-{i}-{v}")),
                        price: format!("{}.{:02}", 10 + i % 90, v % 100),
                        compare_at_price: (i % 3 == 0).then(|| format!("{}.00", 20 + i % 90)),
                        barcode: Some(format!(
                            "{:013}",
                            4_006_381_000_000u64 + (i * 16 + v) as u64
                        )),
                        inventory_quantity: 10,
                        weight: Some(("KILOGRAMS".into(), 0.25 * (v as f64 + 1.0))),
                        ..Variant::new(vid, item, values)
                    }
                })
                .collect();
            if options.is_empty() && m == 1 {
                options.push(ProductOption {
                    id: self.next_id(),
                    name: DEFAULT_OPTION.into(),
                    values: vec![(self.next_id(), DEFAULT_TITLE.into())],
                });
            }
            self.products.insert(
                id,
                Product {
                    id,
                    title: format!("Product {i}"),
                    handle: format!("product-{i}"),
                    status: "ACTIVE".into(),
                    vendor: ["Cowans", "Acme", "Globex"][i % 3].into(),
                    product_type: ["Thing", "Shirt", "Mug"][i % 3].into(),
                    tags: [
                        vec![],
                        vec!["sale".to_owned()],
                        vec!["new".to_owned(), "summer".to_owned()],
                    ][i % 3]
                        .clone(),
                    description_html: format!("<p>Product {i}</p>"),
                    created_at: at,
                    updated_at: at,
                    options,
                    variants,
                },
            );
        }
    }

    pub fn by_handle(&self, handle: &str) -> Option<u64> {
        self.products
            .values()
            .find(|p| p.handle == handle)
            .map(|p| p.id)
    }

    /// (product id, variant index) of the variant with this inventory item.
    pub fn by_inventory_item(&self, item: u64) -> Option<(u64, usize)> {
        self.products.values().find_map(|p| {
            p.variants
                .iter()
                .position(|v| v.inventory_item_id == item)
                .map(|i| (p.id, i))
        })
    }
}

/// One term of a search query: `field:value`, `field:>value`, …, maybe negated.
#[derive(Debug, Clone, PartialEq)]
struct Term {
    field: String,
    op: &'static str,
    value: String,
    negated: bool,
}

/// A parsed `query:` argument. Terms are ANDed; unknown fields are ignored silently (as Shopify
/// does: an unknown field means a full scan, which the client must guard against).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Search {
    terms: Vec<Term>,
}

impl Search {
    pub fn parse(q: &str) -> Self {
        let mut terms = Vec::new();
        for token in tokens(q) {
            if token.eq_ignore_ascii_case("AND") || token.eq_ignore_ascii_case("OR") {
                continue;
            }
            let (negated, token) = match token.strip_prefix('-') {
                Some(t) => (true, t.to_owned()),
                None => (false, token),
            };
            let Some((field, rest)) = token.split_once(':') else {
                continue; // free text: ignored
            };
            let (op, value) = [">=", "<=", ">", "<"]
                .iter()
                .find_map(|op| rest.strip_prefix(op).map(|v| (*op, v)))
                .unwrap_or(("=", rest));
            let field = field.to_ascii_lowercase();
            // Shopify's field list (shared with the client's guard). Unknown fields are dropped;
            // known ones the simulator does not model (barcode, ...) match every product.
            if !cowans_shopify::PRODUCT_SEARCH_FIELDS.contains(&field.as_str()) {
                continue;
            }
            terms.push(Term {
                field,
                op,
                value: value.trim_matches(|c| c == '\'' || c == '"').to_owned(),
                negated,
            });
        }
        Self { terms }
    }

    pub fn matches(&self, p: &Product) -> bool {
        self.terms.iter().all(|t| t.matches(p) != t.negated)
    }
}

impl Term {
    fn matches(&self, p: &Product) -> bool {
        let text = |s: &str| s.eq_ignore_ascii_case(&self.value);
        match self.field.as_str() {
            "updated_at" | "created_at" => {
                let at = if self.field == "updated_at" {
                    p.updated_at
                } else {
                    p.created_at
                };
                let Some(v) = parse_time(&self.value) else {
                    return true;
                };
                match self.op {
                    ">" => at > v,
                    ">=" => at >= v,
                    "<" => at < v,
                    "<=" => at <= v,
                    _ => at == v,
                }
            }
            "id" => {
                let Ok(v) = self.value.parse::<u64>() else {
                    return false;
                };
                match self.op {
                    ">" => p.id > v,
                    ">=" => p.id >= v,
                    "<" => p.id < v,
                    "<=" => p.id <= v,
                    _ => p.id == v,
                }
            }
            "handle" => text(&p.handle),
            "status" => text(&p.status),
            "title" => p.title.to_lowercase().contains(&self.value.to_lowercase()),
            "vendor" => text(&p.vendor),
            "product_type" => text(&p.product_type),
            "tag" => p.tags.iter().any(|t| text(t)),
            "sku" => p
                .variants
                .iter()
                .any(|v| v.sku.as_deref().is_some_and(text)),
            _ => true,
        }
    }
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| d.and_utc())
        })
}

/// Splits on whitespace outside quotes.
fn tokens(q: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in q.chars() {
        match (quote, c) {
            (Some(open), c) if c == open => {
                quote = None;
                cur.push(c);
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                cur.push(c);
            }
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Sort keys the simulator supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Id,
    UpdatedAt,
    Title,
}

/// An opaque cursor: the sort position of the last node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    pub key: String,
    pub id: u64,
}

impl Cursor {
    pub fn of(p: &Product, sort: SortKey) -> Self {
        Self {
            key: sort_value(p, sort),
            id: p.id,
        }
    }

    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(json)
    }

    pub fn decode(s: &str) -> Option<Self> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

pub fn sort_value(p: &Product, sort: SortKey) -> String {
    match sort {
        SortKey::Id => format!("{:020}", p.id),
        SortKey::UpdatedAt => p
            .updated_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        SortKey::Title => p.title.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_filters_known_fields_and_ignores_unknown_ones() {
        let mut c = Catalog::new();
        let now = Utc::now();
        c.seed(3, 1, now);
        let all: Vec<&Product> = c.products.values().collect();
        let s = Search::parse("updated_at:>'2000-01-01T00:00:00Z' AND sku:SKU-1-0");
        assert_eq!(all.iter().filter(|p| s.matches(p)).count(), 1);
        let s = Search::parse("colour:red");
        assert_eq!(
            all.iter().filter(|p| s.matches(p)).count(),
            3,
            "unknown field ignored"
        );
        let s = Search::parse("-handle:product-0 status:active");
        assert_eq!(all.iter().filter(|p| s.matches(p)).count(), 2);
    }
}
