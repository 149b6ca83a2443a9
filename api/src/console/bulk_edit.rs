//! The bulk edit form: which products (by status, vendor, type, tag or words), one operation,
//! a preview of what it would change (nothing staged), then staging its changes for review.

use axum::response::{IntoResponse, Response};
use cowans_catalog::{BulkEditSpec, BulkPreview, BulkSelection, Operation};
use cowans_core::Role;
use maud::{Markup, html};
use serde_json::Value;

use super::{
    form::FormFields,
    layout::{Refusal, csrf, page, store_problem, value_text},
    session::Session,
    shops::CatalogApp,
};
use crate::routes::ApiPath;

/// Diffs a preview shows.
const SAMPLE: usize = 50;
const FIELDS: [&str; 6] = [
    "price",
    "compare_at_price",
    "tags",
    "status",
    "vendor",
    "product_type",
];
const OPS: [(&str, &str); 5] = [
    ("set", "set to"),
    ("add", "add (amount or tags)"),
    ("percent", "change by percent"),
    ("remove", "remove tags"),
    ("clear", "clear"),
];

const SELECTION: [(&str, &str); 5] = [
    ("status", "status"),
    ("vendor", "vendor"),
    ("product_type", "product type"),
    ("tag", "tag"),
    ("q", "title or handle words"),
];

/// The spec the form describes.
fn spec(form: &FormFields) -> Result<BulkEditSpec, Refusal> {
    let get = |n: &str| form.get(n).map(str::to_owned);
    let Some(field) = get("field") else {
        return Err(Refusal::invalid("field: choose the field to change."));
    };
    let op = get("op").unwrap_or_else(|| "set".to_owned());
    let value = match (field.as_str(), op.as_str()) {
        (_, "clear") => None,
        ("tags", _) => Some(Value::Array(
            form.get("value")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| Value::String(t.to_owned()))
                .collect(),
        )),
        _ => get("value").map(Value::String),
    };
    Ok(BulkEditSpec {
        selection: BulkSelection {
            ids: None,
            status: get("status"),
            vendor: get("vendor"),
            product_type: get("product_type"),
            tag: get("tag"),
            sku: None,
            q: get("q"),
        },
        operations: vec![Operation {
            field,
            op,
            value,
            rounding: get("rounding"),
        }],
        push: false,
    })
}

fn edit_form(session: &Session, shop: i64, form: &FormFields) -> Markup {
    let chosen = |n: &str, v: &str| form.get(n) == Some(v);
    html! {
        form.bulk-edit method="post" action={ "/console/shops/" (shop) "/bulk-edit/preview" } {
            (csrf(session))
            fieldset {
                legend { "Products" }
                @for (name, label) in SELECTION {
                    label { (label) " " input name=(name) value=[form.get(name)]; }
                }
            }
            fieldset {
                legend { "Change" }
                label { "field "
                    select name="field" { @for f in FIELDS { option value=(f) selected[chosen("field", f)] { (f) } } }
                }
                label { "operation "
                    select name="op" { @for (op, label) in OPS { option value=(op) selected[chosen("op", op)] { (label) } } }
                }
                label { "value " input name="value" value=[form.get("value")] placeholder="e.g. -10, 19.99, sale, ACTIVE"; }
                label { "rounding "
                    select name="rounding" {
                        option value="cents" selected[chosen("rounding", "cents")] { "to the cent" }
                        option value="99" selected[chosen("rounding", "99")] { "to .99" }
                    }
                }
            }
            button type="submit" { "Preview" }
        }
    }
}

/// The empty form.
pub async fn form(
    session: Session,
    CatalogApp(cat): CatalogApp,
    ApiPath(shop): ApiPath<i64>,
) -> Response {
    if let Err(r) = session.require(Role::Operator) {
        return r.into_response();
    }
    let s = match cat.shop(shop).await {
        Ok(s) => s,
        Err(e) => return store_problem(e),
    };
    let body = edit_form(&session, shop, &FormFields::default());
    page(&format!("Bulk edit · {}", s.name), Some(&session), body).into_response()
}

fn preview_markup(p: &BulkPreview) -> Markup {
    html! {
        p.count data-preview-changes=(p.changes) {
            (p.products) " products selected; " strong { (p.products_changed) } " would change ("
            (p.changes) " changes to review)"
            @if p.skipped > 0 { "; " (p.skipped) " skipped" }
            "."
        }
        @if !p.errors.is_empty() {
            ul.error { @for e in &p.errors { li { (e["product_id"].as_str().unwrap_or("")) ": " (e["error"].as_str().unwrap_or("")) } } }
        }
        @if !p.diffs.is_empty() {
            table.diffs {
                thead { tr { th { "product" } th { "variant" } th { "field" } th { "from" } th { "to" } } }
                tbody {
                    @for d in &p.diffs {
                        tr {
                            td { (d.title) " " span.muted { (d.product_id) } }
                            td { (d.variant_id.as_deref().unwrap_or("")) }
                            td { (d.field) }
                            td { (value_text(&d.from)) }
                            td { (value_text(&d.to)) }
                        }
                    }
                }
            }
            @if p.diffs.len() == SAMPLE { p.muted { "The first " (SAMPLE) " shown." } }
        }
    }
}

/// What the bulk edit would do; stages nothing.
pub async fn preview(
    session: Session,
    CatalogApp(cat): CatalogApp,
    ApiPath(shop): ApiPath<i64>,
    form: FormFields,
) -> Response {
    if let Err(r) = session.authorize(form.csrf(), Role::Operator) {
        return r.into_response();
    }
    let spec = match spec(&form) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let (s, preview) = match async {
        Ok::<_, cowans_queue::StoreError>((
            cat.shop(shop).await?,
            cat.preview_bulk_edit(shop, &spec, SAMPLE).await?,
        ))
    }
    .await
    {
        Ok(r) => r,
        Err(e) => return store_problem(e),
    };
    let body = html! {
        (edit_form(&session, shop, &form))
        h2 { "Preview" }
        (preview_markup(&preview))
        @if preview.changes > 0 {
            form.inline method="post" action={ "/console/shops/" (shop) "/bulk-edit" } {
                (csrf(&session))
                @for name in ["status", "vendor", "product_type", "tag", "q", "field", "op", "value", "rounding"] {
                    @if let Some(v) = form.get(name) { input type="hidden" name=(name) value=(v); }
                }
                button type="submit" { "Stage " (preview.changes) " changes for review" }
            }
        }
    };
    page(&format!("Bulk edit · {}", s.name), Some(&session), body).into_response()
}

/// Starts the bulk edit; its changes arrive in the review as its jobs run.
pub async fn start(
    session: Session,
    CatalogApp(cat): CatalogApp,
    ApiPath(shop): ApiPath<i64>,
    form: FormFields,
) -> Response {
    let spec = match spec(&form) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    if let Err(r) = session.authorize(form.csrf(), Role::Operator) {
        return r.into_response();
    }
    match cat.start_bulk_edit(&session.actor, shop, &spec).await {
        Ok(row) => {
            let then = format!(
                "/console/shops/{shop}/changes?source=bulk_edit&source_id={}",
                row.id
            );
            axum::response::Redirect::to(&then).into_response()
        }
        Err(e) => store_problem(e),
    }
}
