//! The staged-change review of a shop: changes grouped by product with base, current and
//! proposed per field (a field Shopify changed since the change was made, and a push's
//! conflict, stand out); an operator approves or rejects one, the selected ones, or all that
//! match the filter (the count shown first and checked again when deciding), with a reason;
//! settles a conflict by keeping Shopify's values or pushing the proposed ones.

use std::collections::BTreeMap;

use axum::{
    extract::Query,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use cowans_catalog::{
    ChangeFilter, ChangeView, Decision, FIELDS, FieldChange, Resolution, Selection,
};
use cowans_core::Role;
use maud::{Markup, html};
use serde::Deserialize;

use super::{
    form::FormFields,
    layout::{
        Refusal, csrf, nonempty, number, operator_action, page, problem, store_problem, urlencode,
        value_text, when,
    },
    session::Session,
    shops::CatalogApp,
};
use crate::routes::ApiPath;

/// Changes a page shows unless asked for more (at most [`MAX_PAGE`]).
const PAGE: i64 = 200;
const MAX_PAGE: i64 = 1000;
const STATES: [&str; 8] = [
    "pending",
    "approved",
    "pushing",
    "pushed",
    "conflict",
    "rejected",
    "failed",
    "superseded",
];

/// The review's filter, as the page's query and as the hidden fields of its forms.
#[derive(Debug, Default, Deserialize)]
pub struct ReviewQuery {
    state: Option<String>,
    vendor: Option<String>,
    field: Option<String>,
    product: Option<String>,
    source: Option<String>,
    source_id: Option<String>,
    author: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

impl ReviewQuery {
    fn from_form(f: &FormFields) -> Self {
        let get = |n: &str| f.get(n).map(str::to_owned);
        Self {
            state: get("state"),
            vendor: get("vendor"),
            field: get("field"),
            product: get("product"),
            source: get("source"),
            source_id: get("source_id"),
            author: get("author"),
            before: None,
            limit: None,
        }
    }

    /// The state shown: pending unless another is asked for.
    fn state(&self) -> String {
        nonempty(&self.state).unwrap_or_else(|| "pending".to_owned())
    }

    fn filter(&self) -> Result<ChangeFilter, Refusal> {
        let invalid =
            |field: &str, v: &str| Refusal::invalid(format!("{field}: {v:?} is not an id."));
        let product = match nonempty(&self.product) {
            None => None,
            Some(p) => Some(
                cowans_catalog::snapshot::shopify_id(&p, "Product")
                    .ok_or_else(|| invalid("product", &p))?,
            ),
        };
        let source_id = match nonempty(&self.source_id) {
            None => None,
            Some(s) => Some(s.parse().map_err(|_| invalid("source_id", &s))?),
        };
        Ok(ChangeFilter {
            ids: None,
            state: Some(self.state()),
            source: nonempty(&self.source),
            source_id,
            author: nonempty(&self.author),
            vendor: nonempty(&self.vendor),
            field: nonempty(&self.field),
            product_id: product,
        })
    }

    /// The filter as `name=value` pairs (for links and hidden fields).
    fn pairs(&self) -> Vec<(&'static str, String)> {
        [
            ("state", Some(self.state())),
            ("vendor", nonempty(&self.vendor)),
            ("field", nonempty(&self.field)),
            ("product", nonempty(&self.product)),
            ("source", nonempty(&self.source)),
            ("source_id", nonempty(&self.source_id)),
            ("author", nonempty(&self.author)),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }

    fn url(&self, shop: i64) -> String {
        let q: Vec<String> = self
            .pairs()
            .into_iter()
            .map(|(k, v)| format!("{k}={}", urlencode(&v)))
            .collect();
        format!("/console/shops/{shop}/changes?{}", q.join("&"))
    }

    fn hidden(&self) -> Markup {
        html! { @for (k, v) in self.pairs() { input type="hidden" name=(k) value=(v); } }
    }
}

fn field_rows(f: &FieldChange) -> Markup {
    let conflict = f.outcome.as_deref() == Some("conflict");
    let drift = f.current != f.base;
    html! {
        tr.conflict[conflict] data-field=(f.field) {
            th scope="row" { (f.field) }
            td.base { (value_text(&f.base)) }
            td.current.drift[drift] title=[drift.then_some("Shopify's value differs from the base")] { (value_text(&f.current)) }
            td.proposed { (value_text(&f.proposed)) }
            td.outcome {
                @if let Some(o) = &f.outcome { (o) }
                @if f.superseded { " superseded" }
            }
        }
    }
}

fn change_block(session: &Session, shop: i64, c: &ChangeView) -> Markup {
    let operator = session.user.role >= Role::Operator;
    let approvable = c.state == "pending";
    let rejectable = approvable || c.state == "conflict";
    html! {
        div.change data-change=(c.id) {
            div.change-head {
                @if operator && rejectable {
                    input type="checkbox" name="id" value=(c.id) form="selection" aria-label={ "select change " (c.id) };
                }
                span.id { "#" (c.id) }
                span class={ "state " (c.state) } { (c.state) }
                @if let Some(v) = &c.variant_id { span.muted { "variant " (v) } }
                span.muted { "by " (c.author) " · " (c.source) " · " (when(&c.created_at)) }
                @if operator {
                    span.actions {
                        @if approvable {
                            button type="submit" form="selection" name="approve_one" value=(c.id) { "Approve" }
                        }
                        @if rejectable {
                            button.secondary type="submit" form="selection" name="reject_one" value=(c.id) { "Reject" }
                        }
                    }
                }
            }
            table.fields {
                thead { tr { th { "field" } th { "base" } th { "current (Shopify)" } th { "proposed" } th { "push" } } }
                tbody { @for f in &c.fields { (field_rows(f)) } }
            }
            @if let Some(e) = &c.error { p.error { (e) } }
            @if let Some(r) = &c.reason { p.muted { "reason: " (r) @if let Some(by) = &c.decided_by { " (" (by) ")" } } }
            @if operator && c.state == "conflict" {
                form.inline method="post" action={ "/console/shops/" (shop) "/changes/" (c.id) "/resolve" } {
                    (csrf(session))
                    button.secondary type="submit" name="choice" value="current" { "Keep Shopify's values" }
                    " "
                    button type="submit" name="choice" value="proposed" { "Push the proposed values over them" }
                }
            }
        }
    }
}

/// Changes in first-seen order of their product: `(product id, title, vendor, changes)`.
fn by_product(changes: Vec<ChangeView>) -> Vec<(String, String, String, Vec<ChangeView>)> {
    let mut groups: Vec<(String, String, String, Vec<ChangeView>)> = Vec::new();
    let mut at: BTreeMap<String, usize> = BTreeMap::new();
    for c in changes {
        match at.get(&c.product_id) {
            Some(&i) => groups[i].3.push(c),
            None => {
                at.insert(c.product_id.clone(), groups.len());
                let title = c.product_title.clone().unwrap_or_default();
                let vendor = c.vendor.clone().unwrap_or_default();
                groups.push((c.product_id.clone(), title, vendor, vec![c]));
            }
        }
    }
    groups
}

pub async fn list(
    session: Session,
    CatalogApp(cat): CatalogApp,
    ApiPath(shop): ApiPath<i64>,
    Query(q): Query<ReviewQuery>,
) -> Response {
    let filter = match q.filter() {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let (before, limit) = match (number("before", &q.before), number("limit", &q.limit)) {
        (Ok(b), Ok(l)) => (b, l.unwrap_or(PAGE).clamp(1, MAX_PAGE)),
        (Err(r), _) | (_, Err(r)) => return r.into_response(),
    };
    let s = match cat.shop(shop).await {
        Ok(s) => s,
        Err(e) => return store_problem(e),
    };
    let who = &session.actor;
    let (rows, counts, matching, approvable) = match async {
        Ok::<_, cowans_queue::StoreError>((
            cat.changes(shop, &filter, before, limit).await?,
            cat.change_counts(shop).await?,
            cat.count_changes(shop, &filter).await?,
            // What "approve all" would move: with four eyes, not the reviewer's own changes.
            cat.count_decidable(who, shop, &filter, Decision::Approve)
                .await?,
        ))
    }
    .await
    {
        Ok(r) => r,
        Err(e) => return store_problem(e),
    };
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|c| c.id))
        .flatten();
    let shown_state = q.state();
    let operator = session.user.role >= Role::Operator;
    let decidable = matches!(shown_state.as_str(), "pending" | "conflict");
    let groups = by_product(rows.into_iter().map(ChangeView::from).collect());
    let count_of = |st: &str| counts.iter().find(|(k, _)| k == st).map_or(0, |(_, n)| *n);
    let body = html! {
        nav.states {
            @for st in STATES {
                a.current[st == shown_state] href={ "/console/shops/" (shop) "/changes?state=" (st) } {
                    (st) " " span.num { (count_of(st)) }
                }
            }
        }
        form.filters method="get" action={ "/console/shops/" (shop) "/changes" } {
            input type="hidden" name="state" value=(shown_state);
            label { "vendor " input name="vendor" value=[nonempty(&q.vendor)]; }
            label { "field "
                select name="field" {
                    option value="" { "any" }
                    @for f in FIELDS {
                        option value=(f.name) selected[q.field.as_deref() == Some(f.name)] { (f.name) }
                    }
                }
            }
            label { "product " input name="product" value=[nonempty(&q.product)] size="14"; }
            label { "source "
                select name="source" {
                    option value="" { "any" }
                    @for src in ["edit", "bulk_edit", "import"] {
                        option value=(src) selected[q.source.as_deref() == Some(src)] { (src) }
                    }
                }
            }
            @if let Some(id) = nonempty(&q.source_id) { input type="hidden" name="source_id" value=(id); }
            label { "author " input name="author" value=[nonempty(&q.author)]; }
            button type="submit" { "Filter" }
        }
        p.count { strong data-matching=(matching) { (matching) } " " (shown_state) " changes match" @if next.is_some() { ", " (limit) " shown" } "." }
        @if operator && decidable && matching > 0 {
            form.decide-all method="post" action={ "/console/shops/" (shop) "/changes/decide-matching" } {
                (csrf(&session))
                (q.hidden())
                // Each decision's own count: approving may leave the reviewer's own changes.
                input type="hidden" name="expected_approve" value=(approvable);
                input type="hidden" name="expected_reject" value=(matching);
                label { "reason " input name="reason" maxlength="1000" size="30"; }
                @if shown_state == "pending" && approvable > 0 {
                    button type="submit" name="decision" value="approve" {
                        "Approve all " (approvable) " matching"
                        @if approvable < matching { " (not your own " (matching - approvable) ")" }
                    }
                }
                " "
                button.secondary type="submit" name="decision" value="reject" { "Reject all " (matching) " matching" }
            }
        }
        @if operator && decidable {
            form.selection id="selection" method="post" action={ "/console/shops/" (shop) "/changes/decide" } {
                (csrf(&session))
                (q.hidden())
                label { "reason " input name="reason" maxlength="1000" size="30"; }
                @if shown_state == "pending" {
                    button type="submit" name="decision" value="approve" { "Approve selected" }
                }
                " "
                button.secondary type="submit" name="decision" value="reject" { "Reject selected" }
            }
        }
        p.legend.muted { span.drift { "Highlighted" } " current values differ from the base: Shopify changed the field since the change was made." }
        @for (product, title, vendor, changes) in &groups {
            section.product data-product=(product) {
                h2 { (title) " " span.muted { (product) @if !vendor.is_empty() { " · " (vendor) } } }
                @for c in changes { (change_block(&session, shop, c)) }
            }
        }
        @if groups.is_empty() { p { "No change matches." } }
        @if let Some(before) = next {
            p { a href={ (q.url(shop)) "&limit=" (limit) "&before=" (before) } { "Next " (limit) } }
        }
    };
    page(&format!("Review · {}", s.name), Some(&session), body).into_response()
}

fn reason(form: &FormFields) -> Result<Option<&str>, Refusal> {
    match form.get("reason") {
        Some(r) if r.chars().count() > 1000 => {
            Err(Refusal::invalid("reason: at most 1000 characters."))
        }
        r => Ok(r),
    }
}

fn decision(v: Option<&str>) -> Result<Decision, Refusal> {
    match v {
        Some("approve") => Ok(Decision::Approve),
        Some("reject") => Ok(Decision::Reject),
        _ => Err(Refusal::invalid("decision: approve or reject.")),
    }
}

/// Approves or rejects one change (`approve_one` / `reject_one`) or the selected ones (`id`,
/// repeated, with `decision`).
pub async fn decide(
    session: Session,
    CatalogApp(cat): CatalogApp,
    ApiPath(shop): ApiPath<i64>,
    form: FormFields,
) -> Response {
    let parsed = (|| {
        let one =
            |name: &str| -> Result<Option<i64>, Refusal> { Ok(form.ids(name)?.first().copied()) };
        let (decision, ids) = if let Some(id) = one("approve_one")? {
            (Decision::Approve, vec![id])
        } else if let Some(id) = one("reject_one")? {
            (Decision::Reject, vec![id])
        } else {
            (decision(form.get("decision"))?, form.ids("id")?)
        };
        if ids.is_empty() {
            return Err(Refusal::invalid("Select at least one change."));
        }
        Ok((decision, ids, reason(&form)?))
    })();
    let (decision, ids, reason) = match parsed {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let then = ReviewQuery::from_form(&form).url(shop);
    let selection = Selection::Ids(ids);
    let action = cat.decide(&session.actor, shop, &selection, decision, reason);
    operator_action(&session, form.csrf(), &then, action).await
}

/// Approves or rejects every change matching the form's filter, if there are still `expected`
/// of them.
pub async fn decide_matching(
    session: Session,
    CatalogApp(cat): CatalogApp,
    ApiPath(shop): ApiPath<i64>,
    form: FormFields,
) -> Response {
    let q = ReviewQuery::from_form(&form);
    let parsed = (|| -> Result<_, Refusal> {
        let decision = decision(form.get("decision"))?;
        let name = match decision {
            Decision::Approve => "expected_approve",
            Decision::Reject => "expected_reject",
        };
        let expected = form
            .get(name)
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(|| Refusal::invalid(format!("{name}: the count you saw is missing.")))?;
        Ok((decision, q.filter()?, expected, reason(&form)?))
    })();
    let (decision, filter, expected, reason) = match parsed {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let then = q.url(shop);
    let selection = Selection::Matching { filter, expected };
    let action = cat.decide(&session.actor, shop, &selection, decision, reason);
    operator_action(&session, form.csrf(), &then, action).await
}

/// Settles a change in conflict: every conflicting field kept at Shopify's value
/// (`choice=current`) or pushed as proposed (`choice=proposed`).
pub async fn resolve(
    session: Session,
    CatalogApp(cat): CatalogApp,
    ApiPath((shop, id)): ApiPath<(i64, i64)>,
    form: FormFields,
) -> Response {
    let choice = match form.get("choice") {
        Some("current") => Resolution::Current,
        Some("proposed") => Resolution::Proposed,
        _ => {
            return problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "choice: current or proposed.",
            );
        }
    };
    if let Err(r) = session.authorize(form.csrf(), Role::Operator) {
        return r.into_response();
    }
    let change = match cat.change(shop, id).await {
        Ok(c) => ChangeView::from(c),
        Err(e) => return store_problem(e),
    };
    let choices: BTreeMap<String, Resolution> = change
        .fields
        .iter()
        .filter(|f| f.outcome.as_deref() == Some("conflict"))
        .map(|f| (f.field.clone(), choice.clone()))
        .collect();
    let then = format!("/console/shops/{shop}/changes?state=conflict");
    let action = cat.resolve(&session.actor, shop, id, &choices, None);
    operator_action(&session, form.csrf(), &then, action).await
}
