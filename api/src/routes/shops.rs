//! Shops and their catalog: add, change and delete shops (admin); start pulls (operator); list
//! shops, follow pulls and read the catalog (viewer). Secrets go in and never come out: a shop shows
//! the last four characters of its token and webhook secret only.

use axum::{
    Json,
    extract::{Path, Query, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use cowans_catalog::{
    Catalog, ProductFilter, ProductView, PullKind, PullRow, ShopRequest, ShopRow, ShopUpdate,
};
use cowans_core::Role;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::{
    ApiState,
    auth::Principal,
    error::{ApiError, ApiResult, ErrorBody},
};

/// The catalog, or 404 when the application is not enabled on this server.
pub(crate) fn catalog(state: &ApiState) -> ApiResult<&Catalog> {
    state.catalog.as_ref().ok_or_else(|| {
        ApiError::NotFound("the catalog application is not enabled (apps = [\"catalog\"])".into())
    })
}

/// A shop by id or name.
pub(crate) async fn shop(cat: &Catalog, key: &str) -> ApiResult<ShopRow> {
    Ok(cat.find_shop(key).await?)
}

/// A shop as the API shows it: never its secrets.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ShopView {
    pub id: i64,
    pub name: String,
    pub domain: String,
    pub api_version: String,
    pub admin_url: Option<String>,
    /// `…` and the token's last four characters.
    pub access_token: String,
    /// `…` and the secret's last four characters, if one is set.
    pub webhook_secret: Option<String>,
    /// `active`, or `unauthorized` (Shopify refused the token: replace it).
    pub status: String,
    pub status_reason: Option<String>,
    /// When its incremental pull runs on its own (cron, UTC); `null`: never.
    pub incremental_schedule: Option<String>,
    /// When its reconciliation runs on its own (cron, UTC); `null`: never.
    pub reconcile_schedule: Option<String>,
    /// Incremental pulls read products Shopify updated since this (its newest one seen).
    pub incremental_from: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ShopView {
    async fn of(cat: &Catalog, s: ShopRow) -> ApiResult<Self> {
        let incremental = cat.schedule(s.id, PullKind::Incremental).await?;
        let reconcile = cat.schedule(s.id, PullKind::Reconcile).await?;
        Ok(Self {
            incremental_schedule: incremental,
            reconcile_schedule: reconcile,
            ..Self::from(s)
        })
    }
}

impl From<ShopRow> for ShopView {
    fn from(s: ShopRow) -> Self {
        Self {
            id: s.id,
            name: s.name,
            domain: s.domain,
            api_version: s.api_version,
            admin_url: s.admin_url,
            access_token: format!("…{}", s.token_last4),
            webhook_secret: s.webhook_last4.map(|l| format!("…{l}")),
            status: s.status,
            status_reason: s.status_reason,
            incremental_schedule: None,
            reconcile_schedule: None,
            incremental_from: s.incremental_from,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ShopList {
    pub shops: Vec<ShopView>,
}

/// A shop to add.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddShop {
    /// A short handle: 1 to 63 of a-z, 0-9, '-', '_'.
    pub name: String,
    /// `<shop>.myshopify.com`.
    pub domain: String,
    /// `YYYY-MM`, e.g. `2026-10`.
    pub api_version: String,
    /// Where the Admin API answers when not at `https://<domain>` (the simulator).
    pub admin_url: Option<String>,
    /// The Admin API access token (stored sealed, never shown again).
    #[schema(value_type = String)]
    pub access_token: SecretString,
    /// The app's webhook signing secret (stored sealed).
    #[schema(value_type = Option<String>)]
    pub webhook_secret: Option<SecretString>,
    /// When its incremental pull runs on its own (cron, UTC; default
    /// `catalog.incremental_schedule`, empty: never).
    pub incremental_schedule: Option<String>,
}

/// `POST /api/v1/shops` (admin).
#[utoipa::path(post, path = "/api/v1/shops", tag = "shops", request_body = AddShop,
    responses((status = 201, body = ShopView), (status = 404, description = "The catalog application is not enabled", body = ErrorBody),
        (status = 409, description = "A shop with that name or domain exists", body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])), description = "Role: admin")]
pub async fn add(
    State(state): State<ApiState>,
    who: Principal,
    body: crate::input::ApiJson<AddShop>,
) -> ApiResult<(StatusCode, Json<ShopView>)> {
    who.require(Role::Admin)?;
    let cat = catalog(&state)?;
    let crate::input::ApiJson(b) = body;
    let row = cat
        .add_shop(
            &who.actor,
            ShopRequest {
                name: b.name,
                domain: b.domain,
                api_version: b.api_version,
                admin_url: b.admin_url,
                access_token: b.access_token,
                webhook_secret: b.webhook_secret,
                incremental_schedule: b.incremental_schedule,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(ShopView::of(cat, row).await?)))
}

/// `GET /api/v1/shops` (viewer).
#[utoipa::path(get, path = "/api/v1/shops", tag = "shops",
    responses((status = 200, body = ShopList), (status = 404, body = ErrorBody)), security(("api_key" = [])), description = "Role: viewer")]
pub async fn list(State(state): State<ApiState>, who: Principal) -> ApiResult<Json<ShopList>> {
    who.require(Role::Viewer)?;
    let cat = catalog(&state)?;
    let mut shops = Vec::new();
    for s in cat.shops().await? {
        shops.push(ShopView::of(cat, s).await?);
    }
    Ok(Json(ShopList { shops }))
}

/// A shop with its catalog's size and latest pulls.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ShopDetail {
    #[serde(flatten)]
    pub shop: ShopView,
    /// Live products and variants in the local catalog.
    pub products: i64,
    pub variants: i64,
    /// The latest pulls, newest first.
    pub pulls: Vec<PullView>,
}

/// `GET /api/v1/shops/{shop}` (viewer): by id or name.
#[utoipa::path(get, path = "/api/v1/shops/{shop}", tag = "shops", params(("shop" = String, Path, description = "Shop id or name")),
    responses((status = 200, body = ShopDetail), (status = 404, body = ErrorBody)), security(("api_key" = [])), description = "Role: viewer")]
pub async fn get(
    State(state): State<ApiState>,
    who: Principal,
    super::ApiPath(key): super::ApiPath<String>,
) -> ApiResult<Json<ShopDetail>> {
    who.require(Role::Viewer)?;
    let cat = catalog(&state)?;
    let s = shop(cat, &key).await?;
    let (products, variants) = cat.counts(s.id).await?;
    let pulls = cat.pulls(s.id, 5).await?;
    Ok(Json(ShopDetail {
        shop: ShopView::of(cat, s).await?,
        products,
        variants,
        pulls: pulls.into_iter().map(Into::into).collect(),
    }))
}

/// What to change about a shop (absent fields stay; `admin_url: null` removes it).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchShop {
    pub api_version: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub admin_url: Option<Option<String>>,
    /// A new token; makes an unauthorized shop active again.
    #[schema(value_type = Option<String>)]
    pub access_token: Option<SecretString>,
    #[schema(value_type = Option<String>)]
    pub webhook_secret: Option<SecretString>,
    /// A new schedule of its incremental pull (cron, UTC); `null` or empty: never.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub incremental_schedule: Option<Option<String>>,
}

/// Tells `"field": null` (remove) from an absent field (leave).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// `PATCH /api/v1/shops/{shop}` (admin).
#[utoipa::path(patch, path = "/api/v1/shops/{shop}", tag = "shops", params(("shop" = String, Path)), request_body = PatchShop,
    responses((status = 200, body = ShopView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("api_key" = [])), description = "Role: admin")]
pub async fn patch(
    State(state): State<ApiState>,
    who: Principal,
    super::ApiPath(key): super::ApiPath<String>,
    body: crate::input::ApiJson<PatchShop>,
) -> ApiResult<Json<ShopView>> {
    who.require(Role::Admin)?;
    let cat = catalog(&state)?;
    let crate::input::ApiJson(b) = body;
    let s = shop(cat, &key).await?;
    let row = cat
        .update_shop(
            &who.actor,
            s.id,
            ShopUpdate {
                api_version: b.api_version,
                admin_url: b.admin_url,
                access_token: b.access_token,
                webhook_secret: b.webhook_secret,
                incremental_schedule: b.incremental_schedule,
            },
        )
        .await?;
    Ok(Json(ShopView::of(cat, row).await?))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ShopDeleted {
    pub id: i64,
    pub deleted: bool,
}

/// `DELETE /api/v1/shops/{shop}` (admin): the shop, its catalog and its pulls.
#[utoipa::path(delete, path = "/api/v1/shops/{shop}", tag = "shops", params(("shop" = String, Path)),
    responses((status = 200, body = ShopDeleted), (status = 404, body = ErrorBody)), security(("api_key" = [])), description = "Role: admin")]
pub async fn delete(
    State(state): State<ApiState>,
    who: Principal,
    super::ApiPath(key): super::ApiPath<String>,
) -> ApiResult<Json<ShopDeleted>> {
    who.require(Role::Admin)?;
    let cat = catalog(&state)?;
    let s = shop(cat, &key).await?;
    cat.delete_shop(&who.actor, s.id).await?;
    Ok(Json(ShopDeleted {
        id: s.id,
        deleted: true,
    }))
}

/// A pull of a shop's catalog.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PullView {
    pub id: i64,
    pub shop_id: i64,
    /// `full` or `incremental`.
    pub kind: String,
    /// `running`, `completed` or `failed`.
    pub state: String,
    /// The job that runs it (follow it at `/api/v1/jobs/{job_id}`).
    pub job_id: Option<i64>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Export lines read, products and variants written, products marked deleted.
    pub lines: i64,
    pub products: i64,
    pub variants: i64,
    pub deleted: i64,
    pub error: Option<String>,
}

impl From<PullRow> for PullView {
    fn from(p: PullRow) -> Self {
        Self {
            id: p.id,
            shop_id: p.shop_id,
            kind: p.kind,
            state: p.state,
            job_id: p.job_id,
            started_at: p.started_at,
            finished_at: p.finished_at,
            lines: p.lines,
            products: p.products,
            variants: p.variants,
            deleted: p.deleted,
            error: p.error,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartPull {
    /// `full` (a bulk export of everything, the default), `incremental` (what changed since the
    /// last pull) or `reconcile` (ids and `updatedAt` compared with Shopify, differences repaired).
    #[serde(default = "full")]
    #[schema(value_type = String, example = "full")]
    pub kind: PullKind,
}

fn full() -> PullKind {
    PullKind::Full
}

/// `POST /api/v1/shops/{shop}/pull` (operator): starts a pull; follow it at
/// `/api/v1/pulls/{id}` or on the live stream (`sync.progress`, `sync.finished`).
#[utoipa::path(post, path = "/api/v1/shops/{shop}/pull", tag = "shops", params(("shop" = String, Path)), request_body = StartPull,
    responses((status = 202, body = PullView), (status = 404, body = ErrorBody), (status = 409, description = "A pull of that kind is running (details: pull_id), or the shop is unauthorized", body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])), description = "Role: operator")]
pub async fn start_pull(
    State(state): State<ApiState>,
    who: Principal,
    super::ApiPath(key): super::ApiPath<String>,
    body: crate::input::ApiJson<StartPull>,
) -> ApiResult<(StatusCode, Json<PullView>)> {
    who.require(Role::Operator)?;
    let cat = catalog(&state)?;
    let crate::input::ApiJson(b) = body;
    let s = shop(cat, &key).await?;
    let pull = cat.start_pull(&who.actor, s.id, b.kind).await?;
    Ok((StatusCode::ACCEPTED, Json(pull.into())))
}

/// The job subscribing a shop's webhooks.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Subscribing {
    pub job_id: i64,
}

/// `POST /api/v1/shops/{shop}/webhooks` (admin): subscribes the shop's product webhooks (again)
/// to `catalog.webhook_url` — after that URL changed, say. Subscriptions already there stay.
#[utoipa::path(post, path = "/api/v1/shops/{shop}/webhooks", tag = "shops", params(("shop" = String, Path)),
    responses((status = 202, body = Subscribing), (status = 404, body = ErrorBody), (status = 409, description = "catalog.webhook_url is not set", body = ErrorBody)),
    security(("api_key" = [])), description = "Role: admin")]
pub async fn subscribe(
    State(state): State<ApiState>,
    who: Principal,
    super::ApiPath(key): super::ApiPath<String>,
) -> ApiResult<(StatusCode, Json<Subscribing>)> {
    who.require(Role::Admin)?;
    let cat = catalog(&state)?;
    let s = shop(cat, &key).await?;
    let job = cat.subscribe_webhooks(&who.actor, s.id).await?;
    Ok((StatusCode::ACCEPTED, Json(Subscribing { job_id: job.0 })))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PullList {
    pub pulls: Vec<PullView>,
}

/// `GET /api/v1/shops/{shop}/pulls?limit` (viewer): the latest pulls (default 50), newest first.
#[utoipa::path(get, path = "/api/v1/shops/{shop}/pulls", tag = "shops", params(("shop" = String, Path), super::LatestQuery),
    responses((status = 200, body = PullList), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("api_key" = [])), description = "Role: viewer")]
pub async fn pulls(
    State(state): State<ApiState>,
    who: Principal,
    super::ApiPath(key): super::ApiPath<String>,
    query: Result<Query<super::LatestQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<PullList>> {
    who.require(Role::Viewer)?;
    let limit = super::LatestQuery::limit(query)?;
    let cat = catalog(&state)?;
    let s = shop(cat, &key).await?;
    let pulls = cat.pulls(s.id, limit).await?;
    Ok(Json(PullList {
        pulls: pulls.into_iter().map(Into::into).collect(),
    }))
}

/// `GET /api/v1/pulls/{id}` (viewer).
#[utoipa::path(get, path = "/api/v1/pulls/{id}", tag = "shops", params(("id" = i64, Path)),
    responses((status = 200, body = PullView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("api_key" = [])), description = "Role: viewer")]
pub async fn pull(
    State(state): State<ApiState>,
    who: Principal,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> ApiResult<Json<PullView>> {
    who.require(Role::Viewer)?;
    let id = super::path_id(id)?;
    Ok(Json(catalog(&state)?.pull(id).await?.into()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductQuery {
    pub status: Option<String>,
    pub vendor: Option<String>,
    pub product_type: Option<String>,
    pub tag: Option<String>,
    pub sku: Option<String>,
    /// Words in the title or handle.
    pub q: Option<String>,
    #[serde(default)]
    pub include_deleted: bool,
    pub after: Option<i64>,
    pub limit: Option<i64>,
    /// Only for exports: csv or jsonl.
    pub format: Option<String>,
}

/// The catalog's filter of a query (the catalog checks it).
pub(crate) fn product_filter(q: ProductQuery) -> ProductFilter {
    ProductFilter {
        status: q.status,
        vendor: q.vendor,
        product_type: q.product_type,
        tag: q.tag,
        sku: q.sku,
        text: q.q,
        include_deleted: q.include_deleted,
    }
}

/// A page of products; ask for the next with `after=next_after`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProductPage {
    pub products: Vec<ProductView>,
    /// The last product's id when more may follow.
    pub next_after: Option<String>,
}

/// `GET /api/v1/shops/{shop}/products?status&vendor&product_type&tag&sku&q&include_deleted&after&limit`
/// (viewer), id order, each with its variants.
#[utoipa::path(get, path = "/api/v1/shops/{shop}/products", tag = "catalog",
    params(("shop" = String, Path), ("status" = Option<String>, Query), ("vendor" = Option<String>, Query), ("product_type" = Option<String>, Query),
        ("tag" = Option<String>, Query), ("sku" = Option<String>, Query), ("q" = Option<String>, Query, description = "Words in the title or handle"),
        ("include_deleted" = Option<bool>, Query), ("after" = Option<i64>, Query), ("limit" = Option<i64>, Query, description = "1..1000, default 100")),
    responses((status = 200, body = ProductPage), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("api_key" = [])), description = "Role: viewer")]
pub async fn products(
    State(state): State<ApiState>,
    who: Principal,
    super::ApiPath(key): super::ApiPath<String>,
    query: Result<Query<ProductQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<ProductPage>> {
    who.require(Role::Viewer)?;
    let cat = catalog(&state)?;
    let Query(q) = query.map_err(super::query_error)?;
    if q.format.is_some() {
        return Err(ApiError::invalid(
            "format",
            "belongs to /products/export, not to the listing",
        ));
    }
    let (after, limit) = (q.after, super::page_limit(q.limit)?);
    let filter = product_filter(q);
    let s = shop(cat, &key).await?;
    let rows = cat.products(s.id, &filter, after, limit).await?;
    let next_after = super::next_key(&rows, limit, |(p, _)| p.id).map(|id| id.to_string());
    Ok(Json(ProductPage {
        products: rows
            .into_iter()
            .map(|(p, v)| ProductView::new(p, v))
            .collect(),
        next_after,
    }))
}

/// `GET /api/v1/shops/{shop}/products/{id}` (viewer).
#[utoipa::path(get, path = "/api/v1/shops/{shop}/products/{id}", tag = "catalog", params(("shop" = String, Path), ("id" = String, Path, description = "Shopify's product id, numeric or gid://shopify/Product/<id>")),
    responses((status = 200, body = ProductView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("api_key" = [])), description = "Role: viewer")]
pub async fn product(
    State(state): State<ApiState>,
    who: Principal,
    super::ApiPath((key, id)): super::ApiPath<(String, String)>,
) -> ApiResult<Json<ProductView>> {
    who.require(Role::Viewer)?;
    let cat = catalog(&state)?;
    let id = super::changes::shopify_id(&id, "Product", "id")?;
    let s = shop(cat, &key).await?;
    let (p, v) = cat.product(s.id, id).await?;
    Ok(Json(ProductView::new(p, v)))
}
