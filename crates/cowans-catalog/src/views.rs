//! The catalog as front ends show it: one shape for the API's answers and the JSON Lines export.
//! Shopify's ids are decimal strings (they exceed what a JSON number holds exactly in most
//! clients) with their GIDs alongside.

use chrono::{DateTime, Utc};
use cowans_store::catalog::{ProductRow, VariantRow};
use serde::Serialize;
use serde_json::Value;

/// A product in the catalog: the last snapshot synced from Shopify.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProductView {
    /// Shopify's numeric id, as a decimal string (exact in every client).
    pub id: String,
    /// `gid://shopify/Product/<id>`.
    pub gid: String,
    pub title: String,
    pub handle: String,
    pub description_html: String,
    pub vendor: String,
    pub product_type: String,
    /// ACTIVE, ARCHIVED, DRAFT or UNLISTED.
    pub status: String,
    pub tags: Vec<String>,
    /// `[{"name", "position", "values"}]`.
    #[schema(value_type = Vec<Object>)]
    pub options: Value,
    /// Shopify's `updatedAt` of this snapshot.
    pub shopify_updated_at: DateTime<Utc>,
    pub shopify_created_at: Option<DateTime<Utc>>,
    /// When Cowans last wrote this snapshot.
    pub synced_at: DateTime<Utc>,
    /// Set when Shopify no longer has the product.
    pub deleted_at: Option<DateTime<Utc>>,
    pub variants: Vec<VariantView>,
}

impl ProductView {
    pub fn new(p: ProductRow, variants: Vec<VariantRow>) -> Self {
        Self {
            id: p.id.to_string(),
            gid: format!("gid://shopify/Product/{}", p.id),
            title: p.title,
            handle: p.handle,
            description_html: p.description_html,
            vendor: p.vendor,
            product_type: p.product_type,
            status: p.status,
            tags: p.tags,
            options: p.options,
            shopify_updated_at: p.shopify_updated_at,
            shopify_created_at: p.shopify_created_at,
            synced_at: p.synced_at,
            deleted_at: p.deleted_at,
            variants: variants.into_iter().map(Into::into).collect(),
        }
    }
}

/// A variant in the catalog (decimals exactly as Shopify sent them; Shopify's ids as decimal
/// strings, since they exceed what a JSON number holds exactly in most clients).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VariantView {
    pub id: String,
    /// `gid://shopify/ProductVariant/<id>`.
    pub gid: String,
    pub title: String,
    pub position: i32,
    pub sku: Option<String>,
    pub barcode: Option<String>,
    pub price: String,
    pub compare_at_price: Option<String>,
    pub inventory_quantity: Option<i32>,
    pub inventory_item_id: Option<String>,
    /// Available quantity by location (`{"<location id>": n}`): what an inventory change
    /// proposes. `null` until a pull has read the levels.
    #[schema(value_type = Option<Object>)]
    pub inventory: Option<Value>,
    pub weight: Option<String>,
    pub weight_unit: Option<String>,
    /// `[{"name", "value"}]`.
    #[schema(value_type = Vec<Object>)]
    pub options: Value,
}

impl From<VariantRow> for VariantView {
    fn from(v: VariantRow) -> Self {
        Self {
            id: v.id.to_string(),
            gid: format!("gid://shopify/ProductVariant/{}", v.id),
            title: v.title,
            position: v.position,
            sku: v.sku,
            barcode: v.barcode,
            price: v.price,
            compare_at_price: v.compare_at_price,
            inventory_quantity: v.inventory_quantity,
            inventory_item_id: v.inventory_item_id.map(|i| i.to_string()),
            inventory: v.inventory,
            weight: v.weight,
            weight_unit: v.weight_unit,
            options: v.option_values,
        }
    }
}
