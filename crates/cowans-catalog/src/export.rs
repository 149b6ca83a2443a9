//! A shop's catalog as CSV (one row per variant, Shopify's product-CSV column names where
//! Shopify has one) or JSON Lines (one product per line, shaped like the API's product), streamed
//! a page of products at a time.
//!
//! CSV follows Shopify's convention: the product's own columns (title, body, vendor, type, tags,
//! status, option names) fill its first row only; later rows of the same product carry its
//! handle and their variant's columns. Shopify's export has no ids; ours adds `Product ID` and
//! `Variant ID` (exact decimals) so an import can name what it changes. Weights stay in their
//! own unit (`Variant Weight` + `Variant Weight Unit`) instead of Shopify's `Variant Grams`, so
//! nothing is rounded.

use cowans_queue::{
    ExportStream,
    export::{ExportFormat, ExportRecord, export_pages, next_cursor, time},
};
use cowans_store::catalog::{ProductFilter, ProductRow, VariantRow};
use serde_json::Value;

use crate::{Catalog, ProductView};

/// Products read per page of an export.
const PAGE: i64 = 500;

/// One product and its variants, as an export writes it.
pub struct ProductExport {
    pub product: ProductRow,
    pub variants: Vec<VariantRow>,
}

pub(crate) const HEADER: &[&str] = &[
    "Handle",
    "Title",
    "Body (HTML)",
    "Vendor",
    "Type",
    "Tags",
    "Status",
    "Option1 Name",
    "Option1 Value",
    "Option2 Name",
    "Option2 Value",
    "Option3 Name",
    "Option3 Value",
    "Variant SKU",
    "Variant Barcode",
    "Variant Price",
    "Variant Compare At Price",
    "Variant Inventory Qty",
    "Variant Weight",
    "Variant Weight Unit",
    "Variant Position",
    "Product ID",
    "Variant ID",
    "Updated At",
    "Deleted At",
];

/// Index of the first column that is the variant's own.
const OPTION1_NAME: usize = 7;

impl ExportRecord for ProductExport {
    fn header() -> &'static [&'static str] {
        HEADER
    }

    fn csv_rows(&self, rows: &mut Vec<Vec<String>>) {
        let p = &self.product;
        let option_names: Vec<String> = p
            .options
            .as_array()
            .map(|o| {
                o.iter()
                    .map(|o| o["name"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let product_row = |first: bool| -> Vec<String> {
            let mut row = vec![String::new(); HEADER.len()];
            row[0] = p.handle.clone();
            if first {
                row[1] = p.title.clone();
                row[2] = p.description_html.clone();
                row[3] = p.vendor.clone();
                row[4] = p.product_type.clone();
                row[5] = p.tags.join(", ");
                row[6] = p.status.to_ascii_lowercase();
                for (i, name) in option_names.iter().take(3).enumerate() {
                    row[OPTION1_NAME + 2 * i] = name.clone();
                }
                row[23] = time(&p.shopify_updated_at);
                row[24] = p.deleted_at.as_ref().map(time).unwrap_or_default();
            }
            row[21] = p.id.to_string();
            row
        };
        if self.variants.is_empty() {
            rows.push(product_row(true));
            return;
        }
        for (i, v) in self.variants.iter().enumerate() {
            let mut row = product_row(i == 0);
            // A variant's option values in its product's option order.
            for (k, name) in option_names.iter().take(3).enumerate() {
                row[OPTION1_NAME + 2 * k + 1] = option_value(&v.option_values, name);
            }
            row[13] = v.sku.clone().unwrap_or_default();
            row[14] = v.barcode.clone().unwrap_or_default();
            row[15] = v.price.clone();
            row[16] = v.compare_at_price.clone().unwrap_or_default();
            row[17] = v
                .inventory_quantity
                .map(|q| q.to_string())
                .unwrap_or_default();
            row[18] = v.weight.clone().unwrap_or_default();
            row[19] = v.weight_unit.clone().unwrap_or_default();
            row[20] = v.position.to_string();
            row[22] = v.id.to_string();
            rows.push(row);
        }
    }

    fn json(&self) -> Value {
        serde_json::to_value(ProductView::new(
            self.product.clone(),
            self.variants.clone(),
        ))
        .unwrap_or(Value::Null)
    }
}

/// The value of option `name` in a variant's `[{"name", "value"}]`.
fn option_value(values: &Value, name: &str) -> String {
    values
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["name"].as_str() == Some(name)))
        .and_then(|v| v["value"].as_str())
        .unwrap_or_default()
        .to_owned()
}

impl Catalog {
    /// Every product of `shop_id` matching `filter`, in id order, with its variants; the filter
    /// is checked before the first byte (`Invalid` naming the field).
    pub fn export(
        &self,
        shop_id: i64,
        filter: ProductFilter,
        format: ExportFormat,
    ) -> cowans_queue::StoreResult<ExportStream> {
        let filter = crate::catalog::checked(&filter)?;
        let catalog = self.clone();
        Ok(Box::pin(export_pages(format, move |after| {
            let (catalog, filter) = (catalog.clone(), filter.clone());
            async move {
                let page = catalog.page(shop_id, &filter, after, PAGE).await?;
                let next = next_cursor(&page, PAGE, |(p, _)| p.id);
                let page = page
                    .into_iter()
                    .map(|(product, variants)| ProductExport { product, variants })
                    .collect();
                Ok((page, next))
            }
        })))
    }
}
