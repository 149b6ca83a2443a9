//! Shops and sync: each shop's catalog size, last pull and push, what waits for review, running
//! pulls with live progress (`sync.progress` on the event stream; at `sync.finished` the
//! shop's card is fetched again); an operator starts a pull.

use axum::{
    extract::FromRequestParts,
    http::StatusCode,
    http::request::Parts,
    response::{IntoResponse, Response},
};
use cowans_catalog::{Catalog, ChangeFilter, PullKind};
use cowans_core::Role;
use maud::{Markup, html};

use super::{
    form::FormFields,
    layout::{Refusal, csrf, operator_action, page, problem, store_problem, when},
    session::Session,
};
use crate::{ApiState, routes::ApiPath};

/// The catalog application, for a handler; the page saying it is not enabled here otherwise.
pub struct CatalogApp(pub Catalog);

impl FromRequestParts<ApiState> for CatalogApp {
    type Rejection = Refusal;

    async fn from_request_parts(_: &mut Parts, state: &ApiState) -> Result<Self, Refusal> {
        state.catalog.clone().map(CatalogApp).ok_or_else(|| {
            Refusal::new(
                StatusCode::NOT_FOUND,
                "The catalog application is not enabled on this server (apps = [\"catalog\"]).",
            )
        })
    }
}

/// What one shop's row shows.
struct ShopLine {
    shop: cowans_catalog::ShopRow,
    products: i64,
    variants: i64,
    pulls: Vec<cowans_catalog::PullRow>,
    last_push: Option<chrono::DateTime<chrono::Utc>>,
    pending: i64,
    conflicts: i64,
}

async fn line(cat: &Catalog, shop: cowans_catalog::ShopRow) -> cowans_queue::StoreResult<ShopLine> {
    let (products, variants) = cat.counts(shop.id).await?;
    let pulls = cat.pulls(shop.id, 3).await?;
    let pushed = ChangeFilter {
        state: Some("pushed".into()),
        ..Default::default()
    };
    let last_push = cat
        .changes(shop.id, &pushed, None, 1)
        .await?
        .into_iter()
        .next()
        .and_then(|c| c.pushed_at);
    let counts = cat.change_counts(shop.id).await?;
    let count = |s: &str| counts.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
    Ok(ShopLine {
        pending: count("pending"),
        conflicts: count("conflict"),
        shop,
        products,
        variants,
        pulls,
        last_push,
    })
}

fn pull_text(p: &cowans_catalog::PullRow) -> String {
    match p.state.as_str() {
        "running" => format!(
            "{}: {} products, {} variants so far",
            p.kind, p.products, p.variants
        ),
        _ => format!(
            "{} {}: {} products, {} variants",
            p.kind, p.state, p.products, p.variants
        ),
    }
}

fn shop_card(session: &Session, l: &ShopLine) -> Markup {
    let operator = session.user.role >= Role::Operator;
    let s = &l.shop;
    html! {
        section.shop data-shop=(s.id) {
            h2 { (s.name) " " span.muted { (s.domain) } }
            @if s.status != "active" {
                p.error role="alert" { "Shopify refused this shop's token: " (s.status_reason.as_deref().unwrap_or("replace it")) }
            }
            dl.job {
                dt { "catalog" } dd data-catalog=(s.id) { (l.products) " products, " (l.variants) " variants" }
                @if l.pulls.is_empty() { dt { "pulls" } dd { "never pulled" } }
                @for (i, p) in l.pulls.iter().enumerate() {
                    dt { @if p.state == "running" { "running" } @else if i == 0 { "last pull" } @else { "earlier" } }
                    dd {
                        span data-pull=(p.id) { (pull_text(p)) }
                        ", " (when(p.finished_at.as_ref().unwrap_or(&p.started_at)))
                        @if let Some(e) = &p.error { " — " span.error { (e) } }
                    }
                }
                dt { "last push" } dd { @match &l.last_push { Some(t) => (when(t)), None => "never" } }
                dt { "review" }
                dd {
                    a href={ "/console/shops/" (s.id) "/changes" } { (l.pending) " pending" }
                    @if l.conflicts > 0 {
                        ", " a.conflict href={ "/console/shops/" (s.id) "/changes?state=conflict" } { (l.conflicts) " in conflict" }
                    }
                    " · " a href={ "/console/shops/" (s.id) "/bulk-edit" } { "bulk edit" }
                }
            }
            @if operator {
                form.inline method="post" action={ "/console/shops/" (s.id) "/pull" } {
                    (csrf(session))
                    label { "pull "
                        select name="kind" {
                            option value="full" { "full" }
                            option value="incremental" { "incremental" }
                            option value="reconcile" { "reconcile" }
                        }
                    }
                    " "
                    button type="submit" { "Start pull" }
                }
            }
        }
    }
}

pub async fn list(session: Session, CatalogApp(cat): CatalogApp) -> Response {
    let shops = match cat.shops().await {
        Ok(s) => s,
        Err(e) => return store_problem(e),
    };
    let mut lines = Vec::with_capacity(shops.len());
    for s in shops {
        match line(&cat, s).await {
            Ok(l) => lines.push(l),
            Err(e) => return store_problem(e),
        }
    }
    let body = html! {
        div.shops data-events="" {
            @for l in &lines { (shop_card(&session, l)) }
        }
        @if lines.is_empty() { p { "No shop yet: add one with " code { "POST /api/v1/shops" } "." } }
    };
    page("Shops and sync", Some(&session), body).into_response()
}

/// One shop's card (the page's script fetches it again when a pull of the shop ends).
pub async fn card(
    session: Session,
    CatalogApp(cat): CatalogApp,
    ApiPath(id): ApiPath<i64>,
) -> Response {
    let found = async { line(&cat, cat.shop(id).await?).await }.await;
    match found {
        Ok(l) => shop_card(&session, &l).into_response(),
        Err(e) => store_problem(e),
    }
}

pub async fn start_pull(
    session: Session,
    CatalogApp(cat): CatalogApp,
    ApiPath(id): ApiPath<i64>,
    form: FormFields,
) -> Response {
    let kind = match form.get("kind").unwrap_or("full") {
        "full" => PullKind::Full,
        "incremental" => PullKind::Incremental,
        "reconcile" => PullKind::Reconcile,
        other => {
            return problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("kind: {other:?} is not full, incremental or reconcile."),
            );
        }
    };
    let action = cat.start_pull(&session.actor, id, kind);
    operator_action(&session, form.csrf(), "/console/shops", action).await
}
