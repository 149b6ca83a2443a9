//! Staged changes and their review: propose edits of products and variants (operator), list and
//! read changes (viewer), approve or reject them one, many or all matching a filter (operator),
//! resolve conflicts (operator), and start a push (operator).

use std::collections::BTreeMap;

use axum::{
    Json,
    extract::{Query, State},
    http::StatusCode,
};
use cowans_catalog::{
    Catalog, ChangeFilter, ChangeView, Decision, Edit, Resolution, Selection, Source,
};
use cowans_core::Role;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::shops::{catalog, shop};
use crate::{
    ApiState,
    auth::Principal,
    error::{ApiError, ApiResult, ErrorBody},
};

/// A numeric Shopify id, or its GID of `kind`; errors name `field`.
pub(crate) fn shopify_id(v: &str, kind: &str, field: &str) -> ApiResult<i64> {
    cowans_catalog::snapshot::shopify_id(v, kind)
        .ok_or_else(|| ApiError::invalid(field, format!("{v:?} is not a {kind} id")))
}

/// An id given as a JSON string (exact above 2^53) or an integer.
fn id_value(v: &Value, kind: &str, field: &str) -> ApiResult<i64> {
    match v {
        Value::String(s) => shopify_id(s, kind, field),
        Value::Number(n) => n
            .as_i64()
            .filter(|n| *n > 0)
            .ok_or_else(|| ApiError::invalid(field, format!("{n} is not a {kind} id"))),
        _ => Err(ApiError::invalid(
            field,
            format!("must be the {kind} id as a string"),
        )),
    }
}

/// The changes staged by a request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StagedChanges {
    pub changes: Vec<ChangeView>,
    /// Edits that proposed nothing new (every value already the catalog's).
    pub unchanged: usize,
}

/// `PATCH /api/v1/shops/{shop}/products/{id}` (operator): proposes new values for the product's
/// fields and its variants' (`"variants": [{"id": "…", "price": "…"}]`), staged for review (all
/// or none). Product fields: title, handle, description_html, vendor, product_type, status,
/// tags. Variant fields: price, compare_at_price, sku, barcode, inventory (`{"<location id>": n}`:
/// the available quantity at each location named).
#[utoipa::path(patch, path = "/api/v1/shops/{shop}/products/{id}", tag = "changes",
    params(("shop" = String, Path), ("id" = String, Path, description = "Shopify's product id, numeric or its GID")),
    request_body(content = Object, description = "Fields to change, and `variants`: a list of objects with `id` and variant fields"),
    responses((status = 201, body = StagedChanges), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])), description = "Role: operator")]
pub async fn edit_product(
    State(state): State<ApiState>,
    who: Principal,
    super::ApiPath((key, id)): super::ApiPath<(String, String)>,
    body: crate::input::ApiJson<Map<String, Value>>,
) -> ApiResult<(StatusCode, Json<StagedChanges>)> {
    who.require(Role::Operator)?;
    let cat = catalog(&state)?;
    let crate::input::ApiJson(mut body) = body;
    let product_id = shopify_id(&id, "Product", "id")?;
    let mut edits = Vec::new();
    let mut names = Vec::new();
    let variants = body.remove("variants");
    if !body.is_empty() {
        edits.push(Edit {
            product_id,
            variant_id: None,
            fields: body,
        });
        names.push(String::new());
    }
    match variants {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            if list.len() > 2048 {
                return Err(ApiError::invalid("variants", "at most 2048 variants"));
            }
            for (i, v) in list.into_iter().enumerate() {
                let at = format!("variants[{i}]");
                let Value::Object(mut fields) = v else {
                    return Err(ApiError::invalid(
                        at,
                        "must be an object with id and fields",
                    ));
                };
                let vid = fields
                    .remove("id")
                    .ok_or_else(|| ApiError::invalid(format!("{at}.id"), "is required"))?;
                let variant_id = id_value(&vid, "ProductVariant", &format!("{at}.id"))?;
                edits.push(Edit {
                    product_id,
                    variant_id: Some(variant_id),
                    fields,
                });
                names.push(at);
            }
        }
        Some(_) => return Err(ApiError::invalid("variants", "must be a list")),
    }
    if edits.is_empty() {
        return Err(ApiError::invalid("body", "proposes no field"));
    }
    let s = shop(cat, &key).await?;
    let staged = cat
        .stage(&who.actor, s.id, &edits, Source::Edit, |i| names[i].clone())
        .await?;
    let mut changes = Vec::with_capacity(staged.ids.len());
    for id in staged.ids {
        changes.push(cat.change(s.id, id).await?.into());
    }
    Ok((
        StatusCode::CREATED,
        Json(StagedChanges {
            changes,
            unchanged: staged.unchanged,
        }),
    ))
}

/// Which changes: the filters of the listing and of decisions by filter.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeQuery {
    /// pending, approved, rejected, pushing, pushed, conflict, failed, superseded.
    pub state: Option<String>,
    /// edit, bulk_edit or import.
    pub source: Option<String>,
    /// The bulk edit or import.
    pub source_id: Option<i64>,
    pub author: Option<String>,
    /// The product's vendor.
    pub vendor: Option<String>,
    /// Changes proposing this field.
    pub field: Option<String>,
    /// Changes of this product (numeric id or GID).
    pub product: Option<String>,
}

impl ChangeQuery {
    pub(crate) fn filter(self) -> ApiResult<ChangeFilter> {
        Ok(ChangeFilter {
            ids: None,
            state: self.state,
            source: self.source,
            source_id: self.source_id,
            author: self.author,
            vendor: self.vendor,
            field: self.field,
            product_id: self
                .product
                .map(|p| shopify_id(&p, "Product", "product"))
                .transpose()?,
        })
    }
}

/// The listing's query: [`ChangeQuery`] and the page.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub state: Option<String>,
    pub source: Option<String>,
    pub source_id: Option<i64>,
    pub author: Option<String>,
    pub vendor: Option<String>,
    pub field: Option<String>,
    pub product: Option<String>,
    pub before: Option<i64>,
    pub limit: Option<i64>,
    /// Only for exports: csv or jsonl.
    pub format: Option<String>,
}

impl ListQuery {
    pub(crate) fn split(self) -> (ChangeQuery, Option<i64>, Option<i64>) {
        (
            ChangeQuery {
                state: self.state,
                source: self.source,
                source_id: self.source_id,
                author: self.author,
                vendor: self.vendor,
                field: self.field,
                product: self.product,
            },
            self.before,
            self.limit,
        )
    }
}

/// A page of changes, newest first; ask for the next with `before=next_before`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChangePage {
    pub changes: Vec<ChangeView>,
    pub next_before: Option<i64>,
    /// How many of the shop's changes are in each state.
    pub counts: BTreeMap<String, i64>,
}

/// `GET /api/v1/shops/{shop}/changes?state&source&source_id&author&vendor&field&product&before&limit`
/// (viewer): each with base, current and proposed per field.
#[utoipa::path(get, path = "/api/v1/shops/{shop}/changes", tag = "changes",
    params(("shop" = String, Path), ("state" = Option<String>, Query), ("source" = Option<String>, Query), ("source_id" = Option<i64>, Query),
        ("author" = Option<String>, Query), ("vendor" = Option<String>, Query), ("field" = Option<String>, Query), ("product" = Option<String>, Query),
        ("before" = Option<i64>, Query), ("limit" = Option<i64>, Query, description = "1..1000, default 100")),
    responses((status = 200, body = ChangePage), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])), description = "Role: viewer")]
pub async fn list(
    State(state): State<ApiState>,
    who: Principal,
    super::ApiPath(key): super::ApiPath<String>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<ChangePage>> {
    who.require(Role::Viewer)?;
    let cat = catalog(&state)?;
    let Query(q) = query.map_err(super::query_error)?;
    if q.format.is_some() {
        return Err(ApiError::invalid(
            "format",
            "belongs to /changes/export, not to the listing",
        ));
    }
    let (filter, before, limit) = q.split();
    let limit = super::page_limit(limit)?;
    let filter = filter.filter()?;
    let s = shop(cat, &key).await?;
    let rows = cat.changes(s.id, &filter, before, limit).await?;
    let next_before = super::next_key(&rows, limit, |c| c.id);
    Ok(Json(ChangePage {
        changes: rows.into_iter().map(Into::into).collect(),
        next_before,
        counts: cat.change_counts(s.id).await?.into_iter().collect(),
    }))
}

/// `GET /api/v1/shops/{shop}/changes/{id}` (viewer).
#[utoipa::path(get, path = "/api/v1/shops/{shop}/changes/{id}", tag = "changes", params(("shop" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = ChangeView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])), description = "Role: viewer")]
pub async fn get(
    State(state): State<ApiState>,
    who: Principal,
    super::ApiPath((key, id)): super::ApiPath<(String, i64)>,
) -> ApiResult<Json<ChangeView>> {
    who.require(Role::Viewer)?;
    let cat = catalog(&state)?;
    let s = shop(cat, &key).await?;
    Ok(Json(cat.change(s.id, id).await?.into()))
}

/// A decision: on `ids`, or on every change matching `filter` (with the `expected` count).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideBody {
    /// These changes (1 to 10,000); each must be pending (or, to reject, in conflict).
    pub ids: Option<Vec<i64>>,
    /// Every pending change matching this filter (`{}`: all of the shop's).
    pub filter: Option<ChangeQuery>,
    /// With `filter`: how many changes the caller saw match; refused (409, details.actual) if
    /// it is not the count now.
    pub expected: Option<i64>,
    /// Why (kept with each change and in the audit log).
    pub reason: Option<String>,
}

/// What a decision did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Decided {
    pub count: usize,
    pub ids: Vec<i64>,
}

async fn decide(
    cat: &Catalog,
    who: &Principal,
    key: &str,
    body: DecideBody,
    decision: Decision,
) -> ApiResult<Json<Decided>> {
    who.require(Role::Operator)?;
    if let Some(r) = &body.reason
        && r.chars().count() > 1000
    {
        return Err(ApiError::invalid(
            "reason",
            "must be at most 1000 characters",
        ));
    }
    let selection = match (body.ids, body.filter, body.expected) {
        (Some(ids), None, None) => Selection::Ids(ids),
        (None, Some(filter), Some(expected)) => Selection::Matching {
            filter: filter.filter()?,
            expected,
        },
        (None, Some(_), None) => {
            return Err(ApiError::invalid(
                "expected",
                "is required with filter: the count of matching changes you saw",
            ));
        }
        _ => {
            return Err(ApiError::invalid(
                "ids",
                "give either ids, or filter with expected",
            ));
        }
    };
    let s = shop(cat, key).await?;
    let ids = cat
        .decide(
            &who.actor,
            s.id,
            &selection,
            decision,
            body.reason.as_deref(),
        )
        .await?;
    Ok(Json(Decided {
        count: ids.len(),
        ids,
    }))
}

/// `POST /api/v1/shops/{shop}/changes/approve` (operator): approves pending changes by ids or by
/// filter; their shop's push starts (unless `catalog.push_on_approve` is off). With
/// `catalog.four_eyes`, nobody approves their own change.
#[utoipa::path(post, path = "/api/v1/shops/{shop}/changes/approve", tag = "changes", params(("shop" = String, Path)), request_body = DecideBody,
    responses((status = 200, body = Decided), (status = 404, body = ErrorBody), (status = 409, description = "A change is not pending, is the caller's own (four eyes), or the count is not the expected one (details.actual)", body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])), description = "Role: operator")]
pub async fn approve(
    State(state): State<ApiState>,
    who: Principal,
    super::ApiPath(key): super::ApiPath<String>,
    body: crate::input::ApiJson<DecideBody>,
) -> ApiResult<Json<Decided>> {
    let crate::input::ApiJson(b) = body;
    decide(catalog(&state)?, &who, &key, b, Decision::Approve).await
}

/// `POST /api/v1/shops/{shop}/changes/reject` (operator): rejects pending (or conflicting)
/// changes by ids or by filter.
#[utoipa::path(post, path = "/api/v1/shops/{shop}/changes/reject", tag = "changes", params(("shop" = String, Path)), request_body = DecideBody,
    responses((status = 200, body = Decided), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])), description = "Role: operator")]
pub async fn reject(
    State(state): State<ApiState>,
    who: Principal,
    super::ApiPath(key): super::ApiPath<String>,
    body: crate::input::ApiJson<DecideBody>,
) -> ApiResult<Json<Decided>> {
    let crate::input::ApiJson(b) = body;
    decide(catalog(&state)?, &who, &key, b, Decision::Reject).await
}

/// How to settle each conflicting field: `"proposed"` (push it over Shopify's value),
/// `"current"` (keep Shopify's) or `{"value": …}` (push this instead).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    #[schema(value_type = Object)]
    pub fields: BTreeMap<String, Value>,
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Resolved {
    /// `pending` (review it again), or `rejected` when every field kept Shopify's value.
    pub state: String,
}

/// `POST /api/v1/shops/{shop}/changes/{id}/resolve` (operator): settles a change in conflict.
#[utoipa::path(post, path = "/api/v1/shops/{shop}/changes/{id}/resolve", tag = "changes", params(("shop" = String, Path), ("id" = i64, Path)), request_body = ResolveBody,
    responses((status = 200, body = Resolved), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])), description = "Role: operator")]
pub async fn resolve(
    State(state): State<ApiState>,
    who: Principal,
    super::ApiPath((key, id)): super::ApiPath<(String, i64)>,
    body: crate::input::ApiJson<ResolveBody>,
) -> ApiResult<Json<Resolved>> {
    who.require(Role::Operator)?;
    let cat = catalog(&state)?;
    let crate::input::ApiJson(b) = body;
    let mut choices = BTreeMap::new();
    for (name, v) in b.fields {
        let choice = match &v {
            Value::String(s) if s == "proposed" => Resolution::Proposed,
            Value::String(s) if s == "current" => Resolution::Current,
            Value::Object(o) if o.len() == 1 && o.contains_key("value") => {
                Resolution::Value(o["value"].clone())
            }
            _ => {
                return Err(ApiError::invalid(
                    format!("fields.{name}"),
                    "must be \"proposed\", \"current\" or {\"value\": …}",
                ));
            }
        };
        choices.insert(name, choice);
    }
    let s = shop(cat, &key).await?;
    let to = cat
        .resolve(&who.actor, s.id, id, &choices, b.reason.as_deref())
        .await?;
    Ok(Json(Resolved {
        state: to.to_string(),
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PushStarted {
    /// The push job (follow it at `/api/v1/jobs/{job_id}`, or `push.progress` events).
    pub job_id: i64,
}

/// `POST /api/v1/shops/{shop}/push` (operator): pushes the shop's approved changes now.
#[utoipa::path(post, path = "/api/v1/shops/{shop}/push", tag = "changes", params(("shop" = String, Path)),
    responses((status = 202, body = PushStarted), (status = 404, body = ErrorBody)),
    security(("api_key" = [])), description = "Role: operator")]
pub async fn push(
    State(state): State<ApiState>,
    who: Principal,
    super::ApiPath(key): super::ApiPath<String>,
) -> ApiResult<(StatusCode, Json<PushStarted>)> {
    who.require(Role::Operator)?;
    let cat = catalog(&state)?;
    let s = shop(cat, &key).await?;
    let job_id = cat.start_push(&who.actor, s.id).await?;
    Ok((StatusCode::ACCEPTED, Json(PushStarted { job_id })))
}
