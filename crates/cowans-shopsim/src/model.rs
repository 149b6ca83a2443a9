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
    /// The first of `barcodes` (what the deprecated single `barcode` field reads).
    pub barcode: Option<String>,
    /// Every barcode (2026-10: up to 20 per variant), `(type, value)`.
    pub barcodes: Vec<(Option<String>, String)>,
    /// Derived from the option values (`"M / Red"`), or `"Default Title"`.
    pub title: String,
    /// One value per option of the product, in option order.
    pub option_values: Vec<String>,
    pub taxable: bool,
    /// `DENY` or `CONTINUE`.
    pub inventory_policy: String,
    pub inventory_item_id: u64,
    /// `inventoryItem.tracked` and `inventoryItem.requiresShipping`.
    pub tracked: bool,
    pub requires_shipping: bool,
    /// Available quantity by location id: one entry per location that stocks the item (its
    /// inventory levels). New items are stocked at the shop's first location.
    pub levels: BTreeMap<u64, i64>,
    /// `(unit, value)`: `inventoryItem.measurement.weight` (GRAMS, KILOGRAMS, OUNCES, POUNDS).
    pub weight: Option<(String, f64)>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
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
            barcodes: Vec::new(),
            title: variant_title(&option_values),
            option_values,
            taxable: true,
            inventory_policy: "DENY".into(),
            inventory_item_id,
            tracked: true,
            requires_shipping: true,
            levels: BTreeMap::from([(crate::shop::LOCATION_ID, 0)]),
            weight: None,
            created_at: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
        }
    }

    /// The variant's `inventoryQuantity`: available at every location stocking it.
    pub fn inventory_quantity(&self) -> i64 {
        self.levels.values().sum()
    }

    /// Replaces the barcodes; `barcode` follows the first.
    pub fn set_barcodes(&mut self, barcodes: Vec<(Option<String>, String)>) {
        self.barcode = barcodes.first().map(|(_, v)| v.clone());
        self.barcodes = barcodes;
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

/// A metafield on a product (`namespace`, `key`, `value`, `type`); custom ids are metafields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metafield {
    pub namespace: String,
    pub key: String,
    pub value: String,
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Product {
    pub id: u64,
    pub title: String,
    pub handle: String,
    /// ACTIVE, DRAFT, ARCHIVED or UNLISTED.
    pub status: String,
    pub vendor: String,
    pub product_type: String,
    pub tags: Vec<String>,
    pub description_html: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub options: Vec<ProductOption>,
    pub variants: Vec<Variant>,
    pub metafields: Vec<Metafield>,
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
        self.variants.push(Variant {
            created_at: self.updated_at,
            updated_at: self.updated_at,
            ..Variant::new(id, item, values)
        });
    }

    /// The value of metafield `namespace.key`.
    pub fn metafield(&self, namespace: &str, key: &str) -> Option<&str> {
        self.metafields
            .iter()
            .find(|m| m.namespace == namespace && m.key == key)
            .map(|m| m.value.as_str())
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
                    let barcode = format!("{:013}", 4_006_381_000_000u64 + (i * 16 + v) as u64);
                    Variant {
                        sku: Some(format!("SKU-{i}-{v}")),
                        price: format!("{}.{:02}", 10 + i % 90, v % 100),
                        compare_at_price: (i % 3 == 0).then(|| format!("{}.00", 20 + i % 90)),
                        barcode: Some(barcode.clone()),
                        barcodes: vec![(Some("EAN".to_owned()), barcode)],
                        levels: BTreeMap::from([(crate::shop::LOCATION_ID, 10)]),
                        weight: Some(("KILOGRAMS".into(), 0.25 * (v as f64 + 1.0))),
                        created_at: at,
                        updated_at: at,
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
                    metafields: vec![],
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

    /// The product whose metafield `namespace.key` holds `value` (a custom id).
    pub fn by_custom_id(&self, namespace: &str, key: &str, value: &str) -> Option<u64> {
        self.products
            .values()
            .find(|p| p.metafield(namespace, key) == Some(value))
            .map(|p| p.id)
    }

    /// (product id, variant index) of this variant.
    pub fn by_variant(&self, variant: u64) -> Option<(u64, usize)> {
        self.products.values().find_map(|p| {
            p.variants
                .iter()
                .position(|v| v.id == variant)
                .map(|i| (p.id, i))
        })
    }

    /// A handle not yet in use: `base`, else `base-1`, `base-2`, ... (as Shopify derives one).
    pub fn free_handle(&self, base: &str) -> String {
        if self.by_handle(base).is_none() {
            return base.to_owned();
        }
        (1..)
            .map(|n| format!("{base}-{n}"))
            .find(|h| self.by_handle(h).is_none())
            .unwrap_or_else(|| base.to_owned())
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

pub use crate::search::Search;

/// Sort keys of `products(sortKey:)` (`ProductSortKeys`). `Relevance` sorts as `Id` (the
/// simulator does not rank).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Id,
    UpdatedAt,
    Title,
    CreatedAt,
    ProductType,
    Vendor,
    InventoryTotal,
    PublishedAt,
    Relevance,
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
    let ts = |d: DateTime<Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    match sort {
        SortKey::Id | SortKey::Relevance => format!("{:020}", p.id),
        SortKey::UpdatedAt => ts(p.updated_at),
        SortKey::CreatedAt => ts(p.created_at),
        SortKey::Title => p.title.to_lowercase(),
        SortKey::ProductType => p.product_type.to_lowercase(),
        SortKey::Vendor => p.vendor.to_lowercase(),
        SortKey::InventoryTotal => {
            let total: i64 = p.variants.iter().map(Variant::inventory_quantity).sum();
            format!("{:020}", i128::from(total) + (1i128 << 62))
        }
        // No product of the simulator is published to a channel: `publishedAt` is null.
        SortKey::PublishedAt => String::new(),
    }
}
