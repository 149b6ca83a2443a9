//! Search of `products(query:)`, `productsCount(query:)`, bulk exports and
//! `productVariants(query:)`: the query is read with Shopify's syntax (the client's
//! [`cowans_shopify::search`] parser, so client and simulator agree) and evaluated against the
//! simulated catalog.
//!
//! As on Shopify, a term naming a field the resource does not know is ignored (it matches
//! everything) and reported as a warning (`extensions.search`). Fields Shopify knows but the
//! simulator has nothing for (collections, categories, bundles, publications...) answer as a shop
//! without any of them would.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use cowans_shopify::search::{self, Comparator, Query, Term};

use crate::model::{Product, Variant};

/// API versions from which `tracks_inventory` exists.
const TRACKS_INVENTORY_SINCE: &str = "2026-04";

/// A field the query named that the resource does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchWarning {
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Term(Term),
}

/// A parsed, checked search. `matches` every product when empty.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Search {
    root: Option<Node>,
    warnings: Vec<SearchWarning>,
}

/// Which resource a search runs over.
#[derive(Clone, Copy)]
enum Resource<'v> {
    Products(&'v str),
    Variants,
}

fn known_product_field(field: &str, version: &str) -> bool {
    if field == "tracks_inventory" && version < TRACKS_INVENTORY_SINCE {
        return false;
    }
    cowans_shopify::is_product_search_field(field)
}

/// `productVariants(query:)` fields (Admin reference, `productVariants` query).
const VARIANT_FIELDS: &[&str] = &[
    "default",
    "barcode",
    "collection",
    "delivery_profile_id",
    "exclude_composite",
    "exclude_variants_with_components",
    "gift_card",
    "id",
    "inventory_quantity",
    "location_id",
    "managed",
    "managed_by",
    "option1",
    "option2",
    "option3",
    "product_id",
    "product_ids",
    "product_publication_status",
    "product_status",
    "product_type",
    "publishable_status",
    "published_status",
    "requires_components",
    "sku",
    "taxable",
    "title",
    "updated_at",
    "vendor",
];

impl Search {
    /// A product search as the newest API version reads it.
    pub fn parse(q: &str) -> Self {
        Self::products(q, "unstable")
    }

    /// A product search as API `version` reads it (fields added later are unknown before).
    pub fn products(q: &str, version: &str) -> Self {
        Self::build(q, Resource::Products(version))
    }

    /// A `productVariants(query:)` search.
    pub fn variants(q: &str) -> Self {
        Self::build(q, Resource::Variants)
    }

    fn build(q: &str, resource: Resource<'_>) -> Self {
        let mut warnings = Vec::new();
        let root = search::parse(q).and_then(|q| check(q, resource, &mut warnings));
        Self { root, warnings }
    }

    /// Fields the query named that Shopify would ignore.
    pub fn warnings(&self) -> &[SearchWarning] {
        &self.warnings
    }

    pub fn matches(&self, p: &Product) -> bool {
        self.root
            .as_ref()
            .is_none_or(|n| eval(n, &|t| product_term(t, p)))
    }

    pub fn matches_variant(&self, p: &Product, v: &Variant) -> bool {
        self.root
            .as_ref()
            .is_none_or(|n| eval(n, &|t| variant_term(t, p, v)))
    }
}

/// Drops terms on unknown fields (recording a warning); `None` when nothing is left.
fn check(q: Query, resource: Resource<'_>, warnings: &mut Vec<SearchWarning>) -> Option<Node> {
    let list = |items: Vec<Query>, warnings: &mut Vec<SearchWarning>| -> Vec<Node> {
        items
            .into_iter()
            .filter_map(|q| check(q, resource, warnings))
            .collect()
    };
    let group = |nodes: Vec<Node>, and: bool| match nodes.len() {
        0 => None,
        1 => nodes.into_iter().next(),
        _ if and => Some(Node::And(nodes)),
        _ => Some(Node::Or(nodes)),
    };
    match q {
        Query::And(items) => group(list(items, warnings), true),
        Query::Or(items) => group(list(items, warnings), false),
        Query::Not(q) => check(*q, resource, warnings).map(|n| Node::Not(Box::new(n))),
        Query::Term(t) => {
            let known = match (&t.field, resource) {
                (None, _) => true,
                (Some(f), Resource::Products(v)) => known_product_field(f, v),
                (Some(f), Resource::Variants) => {
                    VARIANT_FIELDS.contains(&f.as_str()) || f.starts_with("metafields.")
                }
            };
            let bad_time = matches!(
                t.field.as_deref(),
                Some("created_at" | "updated_at" | "published_at")
            ) && !t.exists
                && time_range(&t.value).is_none();
            if !known {
                warnings.push(SearchWarning {
                    field: t.field.clone().unwrap_or_default(),
                    message: "Invalid search field for this query.".into(),
                });
                None
            } else if bad_time {
                warnings.push(SearchWarning {
                    field: t.field.clone().unwrap_or_default(),
                    message: format!("Invalid date value '{}'.", t.value),
                });
                None
            } else {
                Some(Node::Term(t))
            }
        }
    }
}

fn eval(n: &Node, term: &dyn Fn(&Term) -> bool) -> bool {
    match n {
        Node::And(v) => v.iter().all(|n| eval(n, term)),
        Node::Or(v) => v.iter().any(|n| eval(n, term)),
        Node::Not(n) => !eval(n, term),
        Node::Term(t) => term(t),
    }
}

/// `[start, end)` of a date/time value: a full timestamp (RFC 3339, or without a zone: UTC, the
/// simulated shop's zone) is one second; a date one day; `YYYY-MM` a month; `YYYY` a year;
/// `now` the current second.
fn time_range(value: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let v = value.trim();
    let second = |t: DateTime<Utc>| Some((t, t + chrono::Duration::seconds(1)));
    if v.eq_ignore_ascii_case("now") {
        let now = Utc::now();
        return second(
            chrono::DurationRound::duration_trunc(now, chrono::Duration::seconds(1)).unwrap_or(now),
        );
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return second(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, f) {
            let t = t.and_utc();
            let len = if f.ends_with("%S") { 1 } else { 60 };
            return Some((t, t + chrono::Duration::seconds(len)));
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        let t = d.and_hms_opt(0, 0, 0)?.and_utc();
        return Some((t, t + chrono::Duration::days(1)));
    }
    let month = |y: i32, m: u32| Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single();
    if let Some((y, m)) = v.split_once('-')
        && let (Ok(y), Ok(m)) = (y.parse::<i32>(), m.parse::<u32>())
        && y > 999
    {
        let start = month(y, m)?;
        let end = if m == 12 {
            month(y + 1, 1)
        } else {
            month(y, m + 1)
        }?;
        return Some((start, end));
    }
    if v.len() == 4
        && let Ok(y) = v.parse::<i32>()
    {
        return Some((month(y, 1)?, month(y + 1, 1)?));
    }
    None
}

fn time_term(t: &Term, at: Option<DateTime<Utc>>) -> bool {
    if t.exists {
        return at.is_some();
    }
    let (Some(at), Some((start, end))) = (at, time_range(&t.value)) else {
        return false;
    };
    match t.comparator {
        Comparator::Eq => start <= at && at < end,
        Comparator::Gt => at >= end,
        Comparator::Ge => at >= start,
        Comparator::Lt => at < start,
        Comparator::Le => at < end,
    }
}

fn number_term(t: &Term, n: f64) -> bool {
    let Ok(v) = t.value.trim().parse::<f64>() else {
        return false;
    };
    match t.comparator {
        Comparator::Eq => n == v,
        Comparator::Gt => n > v,
        Comparator::Ge => n >= v,
        Comparator::Lt => n < v,
        Comparator::Le => n <= v,
    }
}

/// An id term: a number or a global id, compared numerically.
fn id_term(t: &Term, id: u64) -> bool {
    let value = t.value.rsplit('/').next().unwrap_or_default();
    let Ok(v) = value.parse::<u64>() else {
        return false;
    };
    match t.comparator {
        Comparator::Eq => id == v,
        Comparator::Gt => id > v,
        Comparator::Ge => id >= v,
        Comparator::Lt => id < v,
        Comparator::Le => id <= v,
    }
}

/// A non-tokenized text field: the whole value (case-insensitive), or its prefix with `*`.
fn exact(t: &Term, s: &str) -> bool {
    if t.exists {
        return !s.is_empty();
    }
    if t.prefix {
        s.to_lowercase().starts_with(&t.value.to_lowercase())
    } else {
        s.eq_ignore_ascii_case(&t.value) || s.to_lowercase() == t.value.to_lowercase()
    }
}

/// A non-tokenized field accepting a comma-separated list of values (`handle`, `status`).
fn exact_any(t: &Term, s: &str) -> bool {
    if t.exists || t.prefix {
        return exact(t, s);
    }
    t.value
        .split(',')
        .map(str::trim)
        .any(|v| !v.is_empty() && s.eq_ignore_ascii_case(v))
}

fn tokens(s: &str) -> Vec<String> {
    s.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A tokenized text field: the value's words appear in order (the last one as a prefix with
/// `*`).
fn tokenized(t: &Term, s: &str) -> bool {
    if t.exists {
        return !s.is_empty();
    }
    let have = tokens(s);
    let want = tokens(&t.value);
    if want.is_empty() {
        return false;
    }
    have.windows(want.len()).any(|w| {
        w.iter().zip(&want).enumerate().all(|(i, (h, x))| {
            if t.prefix && i == want.len() - 1 {
                h.starts_with(x.as_str())
            } else {
                h == x
            }
        })
    })
}

fn boolean(t: &Term, b: bool) -> bool {
    match t.value.to_ascii_lowercase().as_str() {
        "true" => b,
        "false" => !b,
        _ => false,
    }
}

/// Free text: a case-insensitive search of the product's text fields.
fn default_product(t: &Term, p: &Product) -> bool {
    tokenized(t, &p.title)
        || tokenized(t, &p.handle)
        || tokenized(t, &p.vendor)
        || tokenized(t, &p.product_type)
        || p.tags.iter().any(|g| tokenized(t, g))
        || p.variants.iter().any(|v| default_variant_text(t, v))
}

fn default_variant_text(t: &Term, v: &Variant) -> bool {
    v.sku
        .as_deref()
        .is_some_and(|s| exact(t, s) || tokenized(t, s))
        || tokenized(t, &v.title)
        || v.barcodes.iter().any(|(_, b)| exact(t, b))
}

fn metafield_term(t: &Term, field: &str, p: &Product) -> bool {
    let mut parts = field.splitn(3, '.').skip(1);
    let (Some(ns), Some(key)) = (parts.next(), parts.next()) else {
        return false;
    };
    match p.metafield(ns, key) {
        None => false,
        Some(_) if t.exists => true,
        Some(v) => exact(t, v) || number_term(t, v.parse().unwrap_or(f64::NAN)),
    }
}

fn product_term(t: &Term, p: &Product) -> bool {
    let Some(field) = t.field.as_deref() else {
        return default_product(t, p);
    };
    let any_variant = |f: &dyn Fn(&Variant) -> bool| p.variants.iter().any(f);
    match field {
        "default" => default_product(t, p),
        "id" => id_term(t, p.id),
        "created_at" => time_term(t, Some(p.created_at)),
        "updated_at" => time_term(t, Some(p.updated_at)),
        // Nothing in the simulator is published to a channel.
        "published_at" => time_term(t, None),
        "handle" => exact_any(t, &p.handle),
        "status" => exact_any(t, &p.status),
        "title" => tokenized(t, &p.title),
        "vendor" => exact(t, &p.vendor),
        "product_type" => exact(t, &p.product_type),
        "tag" => p.tags.iter().any(|g| exact(t, g)),
        "tag_not" => !p.tags.iter().any(|g| exact(t, g)),
        "sku" => any_variant(&|v| v.sku.as_deref().is_some_and(|s| exact(t, s))),
        // 2026-10: any of a variant's barcodes.
        "barcode" => any_variant(&|v| v.barcodes.iter().any(|(_, b)| exact(t, b))),
        "variant_id" => any_variant(&|v| id_term(t, v.id)),
        "variant_title" => any_variant(&|v| exact(t, &v.title)),
        "price" => any_variant(&|v| number_term(t, v.price.parse().unwrap_or(f64::NAN))),
        "inventory_total" => number_term(
            t,
            p.variants
                .iter()
                .map(|v| v.inventory_quantity())
                .sum::<i64>() as f64,
        ),
        "is_price_reduced" => boolean(
            t,
            p.variants.iter().any(|v| {
                v.compare_at_price
                    .as_deref()
                    .and_then(|c| c.parse::<f64>().ok())
                    .is_some_and(|c| c > v.price.parse().unwrap_or(f64::MAX))
            }),
        ),
        "out_of_stock_somewhere" => boolean(
            t,
            p.variants
                .iter()
                .any(|v| v.tracked && v.inventory_quantity() <= 0),
        ),
        "tracks_inventory" => boolean(t, p.variants.iter().any(|v| v.tracked)),
        "has_only_default_variant" => boolean(
            t,
            p.variants.len() == 1 && p.variants[0].title == crate::model::DEFAULT_TITLE,
        ),
        // The simulator has no gift cards, bundles, composites or combined listings.
        "gift_card" | "bundles" | "has_only_composites" | "has_variant_with_components" => {
            boolean(t, false)
        }
        "combined_listing_role" => exact_any(t, "no_role"),
        // Channels: the simulator publishes nothing anywhere; ACTIVE counts as published to
        // the online store (approximation, see SIMULATED.md).
        "published_status" | "product_publication_status" | "publishable_status" => {
            let published = p.status == "ACTIVE";
            match t.value.to_ascii_lowercase().as_str() {
                "any" => true,
                "published" | "visible" => published,
                "unpublished" | "hidden" => !published,
                _ => false,
            }
        }
        // No collections, categories, delivery profiles, publications, feedback or
        // configuration owners exist in the simulator.
        "collection_id"
        | "category_id"
        | "delivery_profile_id"
        | "publication_ids"
        | "error_feedback"
        | "product_configuration_owner" => false,
        f if f.starts_with("metafields.") => metafield_term(t, f, p),
        _ => true,
    }
}

fn variant_term(t: &Term, p: &Product, v: &Variant) -> bool {
    let Some(field) = t.field.as_deref() else {
        return default_variant_text(t, v) || tokenized(t, &p.title);
    };
    match field {
        "default" => default_variant_text(t, v) || tokenized(t, &p.title),
        "id" => id_term(t, v.id),
        "product_id" => id_term(t, p.id),
        "product_ids" => t
            .value
            .split(',')
            .any(|one| one.trim().rsplit('/').next() == Some(p.id.to_string().as_str())),
        "sku" => v.sku.as_deref().is_some_and(|s| exact(t, s)),
        "barcode" => v.barcodes.iter().any(|(_, b)| exact(t, b)),
        "title" => tokenized(t, &v.title),
        "inventory_quantity" => number_term(t, v.inventory_quantity() as f64),
        "option1" | "option2" | "option3" => {
            let i = usize::from(field.as_bytes()[6] - b'1');
            v.option_values.get(i).is_some_and(|o| exact(t, o))
        }
        "product_status" => exact_any(t, &p.status),
        "product_type" => exact(t, &p.product_type),
        "vendor" => exact(t, &p.vendor),
        "taxable" => boolean(t, v.taxable),
        "managed" => boolean(t, v.tracked),
        "updated_at" => time_term(t, Some(v.updated_at)),
        "gift_card" | "requires_components" => boolean(t, false),
        // One location holds every variant; no collections or delivery profiles.
        "location_id" => true,
        "collection" | "delivery_profile_id" => false,
        f if f.starts_with("metafields.") => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Catalog;

    fn count(c: &Catalog, q: &str) -> usize {
        let s = Search::parse(q);
        c.products.values().filter(|p| s.matches(p)).count()
    }

    #[test]
    fn search_follows_shopifys_syntax() {
        let mut c = Catalog::new();
        let now = Utc::now();
        // Product i: vendor [Cowans, Acme, Globex][i%3], tags [[], [sale], [new, summer]][i%3].
        c.seed(6, 1, now);
        assert_eq!(
            count(&c, "updated_at:>'2000-01-01T00:00:00Z' AND sku:SKU-1-0"),
            1
        );
        assert_eq!(count(&c, "colour:red"), 6, "an unknown field is ignored");
        assert_eq!(count(&c, "-handle:product-0 status:active"), 5);
        assert_eq!(count(&c, "NOT handle:product-0"), 5);
        assert_eq!(count(&c, "vendor:Acme OR vendor:Globex"), 4);
        assert_eq!(count(&c, "tag:sale OR tag:new vendor:Acme"), 2);
        assert_eq!(count(&c, "vendor:Cowans OR (tag:new AND vendor:Globex)"), 4);
        assert_eq!(count(&c, "-(vendor:Cowans OR vendor:Acme)"), 2);
        assert_eq!(count(&c, "handle:product-0,product-1,product-9"), 2);
        assert_eq!(count(&c, "handle:product-*"), 6);
        assert_eq!(count(&c, "tag_not:sale"), 4);
        assert_eq!(count(&c, "title:\"Product 3\""), 1);
        assert_eq!(
            count(&c, "title:product"),
            6,
            "tokenized: a word of the title"
        );
        assert_eq!(count(&c, "Globex"), 2, "free text");
        assert_eq!(count(&c, "updated_at:>=2000"), 6, "a year");
        assert_eq!(count(&c, "updated_at:<'2000-01-01'"), 0);
        assert_eq!(count(&c, "updated_at:<now"), 6);
        assert_eq!(
            count(&c, "updated_at:>'not a date'"),
            6,
            "ignored, with a warning"
        );
        assert_eq!(count(&c, "published_at:*"), 0);
        assert_eq!(count(&c, "-published_at:*"), 6);
        assert_eq!(count(&c, "collection_id:123"), 0, "no collections");
        assert_eq!(count(&c, "inventory_total:>=10 inventory_total:<11"), 6);
        assert_eq!(count(&c, "has_only_default_variant:true"), 6);
        let s = Search::products("tracks_inventory:false", "2026-01");
        assert_eq!(
            s.warnings().len(),
            1,
            "tracks_inventory exists from 2026-04"
        );
        let s = Search::products("tracks_inventory:false", "2026-04");
        assert!(s.warnings().is_empty());
        assert_eq!(c.products.values().filter(|p| s.matches(p)).count(), 0);
    }
}
