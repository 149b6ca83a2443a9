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
                        .map(|field| field.lenient(&snapshot[name.as_str()]))
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
