//! A staged change as front ends show it (the API, the export, the console): per field its
//! base, the current value and the proposed one.

use chrono::{DateTime, Utc};
use cowans_store::catalog::ChangeRow;
use serde::Serialize;
use serde_json::Value;

use super::Field;

/// One field of a change.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FieldChange {
    pub field: String,
    /// The catalog's value when the change was made.
    #[schema(value_type = Object)]
    pub base: Value,
    /// What Shopify had when a push last checked this field; before any push, the catalog's
    /// latest snapshot.
    #[schema(value_type = Object)]
    pub current: Value,
    #[schema(value_type = Object)]
    pub proposed: Value,
    /// What the last push did: `written`, `already` (Shopify had it), `conflict`, `failed`,
    /// `superseded` (a newer change took it over); `null` before any push.
    pub outcome: Option<String>,
    /// A newer pending change to the same field took it over.
    pub superseded: bool,
}

/// A staged change.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChangeView {
    pub id: i64,
    pub shop_id: i64,
    /// Shopify's numeric product id, as a decimal string.
    pub product_id: String,
    /// The variant's id when the change is to a variant's fields.
    pub variant_id: Option<String>,
    /// The product's title and vendor in the catalog.
    pub product_title: Option<String>,
    pub vendor: Option<String>,
    /// pending, approved, rejected, pushing, pushed, conflict, failed or superseded.
    pub state: String,
    pub fields: Vec<FieldChange>,
    pub author: String,
    /// `edit`, `bulk_edit` or `import`.
    pub source: String,
    pub source_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The latest decision: who, when, why.
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    /// The push job that took it.
    pub push_job: Option<i64>,
    pub pushed_at: Option<DateTime<Utc>>,
    /// Why it failed (Shopify's user errors; the target gone).
    pub error: Option<String>,
}

impl From<ChangeRow> for ChangeView {
    fn from(c: ChangeRow) -> Self {
        let snapshot = c.snapshot.unwrap_or(Value::Null);
        let fields = c
            .fields
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, f)| {
                let current = match f.get("current") {
                    Some(v) => v.clone(),
                    None => Field::named(name)
                        .map(|field| {
                            field.part(&field.lenient(&snapshot[name.as_str()]), &f["proposed"])
                        })
                        .unwrap_or(Value::Null),
                };
                FieldChange {
                    field: name.clone(),
                    base: f["base"].clone(),
                    current,
                    proposed: f["proposed"].clone(),
                    outcome: f["outcome"].as_str().map(str::to_owned),
                    superseded: c.superseded.iter().any(|s| s == name),
                }
            })
            .collect();
        Self {
            id: c.id,
            shop_id: c.shop_id,
            product_id: c.product_id.to_string(),
            variant_id: c.variant_id.map(|v| v.to_string()),
            product_title: c.product_title,
            vendor: c.vendor,
            state: c.state,
            fields,
            author: c.author,
            source: c.source,
            source_id: c.source_id,
            created_at: c.created_at,
            updated_at: c.updated_at,
            decided_by: c.decided_by,
            decided_at: c.decided_at,
            reason: c.reason,
            push_job: c.push_job,
            pushed_at: c.pushed_at,
            error: c.error,
        }
    }
}

/// The CSV columns of a changes export: one row per field of a change.
const HEADER: &[&str] = &[
    "Change ID",
    "State",
    "Product ID",
    "Variant ID",
    "Product Title",
    "Vendor",
    "Field",
    "Base",
    "Current",
    "Proposed",
    "Outcome",
    "Superseded",
    "Author",
    "Source",
    "Source ID",
    "Created At",
    "Decided By",
    "Decided At",
    "Reason",
    "Error",
];

/// A value as a CSV cell: text as it is, none empty, tags joined as Shopify writes them.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

impl cowans_queue::export::ExportRecord for ChangeView {
    fn header() -> &'static [&'static str] {
        HEADER
    }

    fn csv_rows(&self, rows: &mut Vec<Vec<String>>) {
        use cowans_queue::export::time;
        for f in &self.fields {
            rows.push(vec![
                self.id.to_string(),
                self.state.clone(),
                self.product_id.clone(),
                self.variant_id.clone().unwrap_or_default(),
                self.product_title.clone().unwrap_or_default(),
                self.vendor.clone().unwrap_or_default(),
                f.field.clone(),
                cell(&f.base),
                cell(&f.current),
                cell(&f.proposed),
                f.outcome.clone().unwrap_or_default(),
                f.superseded.to_string(),
                self.author.clone(),
                self.source.clone(),
                self.source_id.map(|s| s.to_string()).unwrap_or_default(),
                time(&self.created_at),
                self.decided_by.clone().unwrap_or_default(),
                self.decided_at.as_ref().map(time).unwrap_or_default(),
                self.reason.clone().unwrap_or_default(),
                self.error.clone().unwrap_or_default(),
            ]);
        }
    }

    fn json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}
