//! HTTP: the Admin GraphQL endpoint (auth, cost, throttling, faults, request log) and the
//! `/__sim` control API.

use std::time::Duration;

use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use cowans_shopify::cost::{self, MAX_QUERY_COST};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    schema::SimSchema,
    shop::{Bucket, Faults, LoggedRequest, Plan, Shop},
};

/// Stable API versions supported on 2026-10-01 (each is supported for 12 months: 2025-10 retired
/// that day); an unknown or retired one falls forward to the oldest.
pub const SUPPORTED_VERSIONS: &[&str] = &["2026-01", "2026-04", "2026-07", "2026-10"];

/// Also served, as on Shopify, though not supported: the release candidate and `unstable`.
pub const PREVIEW_VERSIONS: &[&str] = &["2027-01", "unstable"];

#[derive(Clone)]
pub struct AppState {
    pub shop: Shop,
    pub schema: SimSchema,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/admin/api/{version}/graphql.json", post(graphql))
        .route("/bulk-results/{file}", get(bulk_result))
        .route("/staged-uploads", post(staged_upload))
        .route("/__sim/reset", post(reset))
        .route("/__sim/plan", post(plan))
        .route("/__sim/clock", post(clock))
        .route("/__sim/faults", get(get_faults).put(put_faults))
        .route("/__sim/requests", get(requests).delete(clear_requests))
        .route("/__sim/bucket", get(bucket))
        .route("/__sim/products/{id}/edit", post(merchant_edit))
        .route(
            "/__sim/products/{id}",
            axum::routing::delete(merchant_delete),
        )
        .route(
            "/__sim/variants/{id}",
            axum::routing::delete(merchant_delete_variant),
        )
        .route("/__sim/inventory", post(set_inventory))
        .route("/__sim/locations", post(add_location))
        .route("/__sim/webhooks", get(webhook_log))
        // Staged uploads may be up to 100 MB, as on Shopify.
        .layer(axum::extract::DefaultBodyLimit::max(100 << 20))
        .with_state(state)
}

const UNAUTHORIZED: &str =
    r#"{"errors":"[API] Invalid API key or access token (unrecognized login or wrong password)"}"#;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphqlBody {
    query: String,
    #[serde(default)]
    variables: Option<Value>,
    #[serde(default)]
    operation_name: Option<String>,
}

/// The version a request for `asked` is answered with.
pub fn served_version(asked: &str) -> &'static str {
    SUPPORTED_VERSIONS
        .iter()
        .chain(PREVIEW_VERSIONS)
        .find(|v| **v == asked)
        .copied()
        .unwrap_or(SUPPORTED_VERSIONS[0])
}

fn json_response(status: StatusCode, version: &str, body: Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (
                header::HeaderName::from_static("x-shopify-api-version"),
                version.to_owned(),
            ),
        ],
        body.to_string(),
    )
        .into_response()
}

fn cost_ext(requested: Option<f64>, actual: Option<f64>, b: &mut Bucket, now: f64) -> Value {
    json!({ "cost": {
        "requestedQueryCost": requested,
        "actualQueryCost": actual,
        "throttleStatus": {
            "maximumAvailable": b.max,
            "currentlyAvailable": b.available(now),
            "restoreRate": b.restore,
        }
    }})
}

/// The largest array anywhere in the variables.
fn largest_array(v: &Value) -> usize {
    match v {
        Value::Array(a) => a.len().max(a.iter().map(largest_array).max().unwrap_or(0)),
        Value::Object(o) => o.values().map(largest_array).max().unwrap_or(0),
        _ => 0,
    }
}

async fn graphql(
    State(app): State<AppState>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let version = served_version(&version);
    let token = headers
        .get("x-shopify-access-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let token_ok = app.shop.lock().tokens.contains(&token);
    let log = |status: u16,
               outcome: &str,
               roots: Vec<String>,
               requested: Option<f64>,
               actual: Option<f64>| {
        let mut shop = app.shop.lock();
        let at = shop.clock.now();
        shop.record(LoggedRequest {
            at,
            api_version: version.to_owned(),
            root_fields: roots,
            status,
            outcome: outcome.to_owned(),
            requested_cost: requested,
            actual_cost: actual,
        });
    };
    if !token_ok {
        log(401, "unauthorized", vec![], None, None);
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "application/json")],
            UNAUTHORIZED,
        )
            .into_response();
    }
    let latency = app.shop.lock().faults.latency_ms;
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let Ok(req) = serde_json::from_slice::<GraphqlBody>(&body) else {
        log(400, "invalid", vec![], None, None);
        return json_response(
            StatusCode::BAD_REQUEST,
            version,
            json!({"errors": "Bad Request: the body must be JSON with a \"query\" string"}),
        );
    };
    let variables = req.variables.clone().unwrap_or(Value::Null);
    let roots = root_fields(&req.query);

    // One-shot faults, in a fixed order.
    {
        let mut shop = app.shop.lock();
        if shop.faults.resets > 0 {
            shop.faults.resets -= 1;
            drop(shop);
            log(0, "reset", roots, None, None);
            // Headers go out, then the body fails: the connection is cut mid-answer.
            let stream = futures::stream::once(async {
                Err::<Bytes, _>(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "simulated reset",
                ))
            });
            return Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_LENGTH, "1000")
                .body(Body::from_stream(stream))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
        }
        if shop.faults.unavailable > 0 {
            shop.faults.unavailable -= 1;
            drop(shop);
            log(503, "unavailable", roots, None, None);
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CONTENT_TYPE, "text/html")],
                "<!DOCTYPE html><html><body><h1>503 Service Unavailable</h1></body></html>",
            )
                .into_response();
        }
        if shop.faults.internal_errors > 0 {
            shop.faults.internal_errors -= 1;
            drop(shop);
            log(200, "internal", roots, None, None);
            return json_response(
                StatusCode::OK,
                version,
                json!({"errors": [{
                    "message": "Internal error. Looks like something went wrong on our end.",
                    "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": "sim-request-id"}
                }]}),
            );
        }
    }

    let largest = largest_array(&variables);
    if largest > 250 {
        log(200, "invalid", roots, None, None);
        return json_response(
            StatusCode::OK,
            version,
            json!({"errors": [{
                "message": format!("The input array size of {largest} is greater than the maximum allowed of 250."),
                "extensions": {"code": "MAX_INPUT_SIZE_EXCEEDED"}
            }]}),
        );
    }
    let requested =
        cost::requested_cost(&req.query, &variables, req.operation_name.as_deref()).ok();
    if let Some(c) = requested.filter(|c| *c > MAX_QUERY_COST) {
        log(200, "max_cost", roots, Some(c), None);
        return json_response(
            StatusCode::OK,
            version,
            json!({"errors": [{
                "message": format!("Query cost is {c}, which exceeds the single query max cost limit ({MAX_QUERY_COST}).\n\nSee https://shopify.dev/concepts/about-apis/rate-limits for more information on how the\ncost of a query is calculated.\n\nTo query larger amounts of data with fewer limits, bulk operations should be used instead.\nSee https://shopify.dev/tutorials/perform-bulk-operations-with-admin-api for usage details.\n"),
                "extensions": {"code": "MAX_COST_EXCEEDED", "cost": c, "maxCost": MAX_QUERY_COST, "documentation": "https://shopify.dev/api/usage/rate-limits"}
            }]}),
        );
    }
    let charge = requested.unwrap_or(0.0);
    {
        let mut shop = app.shop.lock();
        let now = shop.clock.secs();
        let forced = shop.faults.throttles > 0;
        if forced {
            shop.faults.throttles -= 1;
        }
        if forced || !shop.bucket_for(&token).try_take(charge, now) {
            let ext = cost_ext(Some(charge), None, shop.bucket_for(&token), now);
            drop(shop);
            log(200, "throttled", roots, Some(charge), None);
            return json_response(
                StatusCode::OK,
                version,
                json!({
                    "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
                    "extensions": ext,
                }),
            );
        }
    }

    let warnings = crate::schema::SearchWarnings::default();
    let mut request = async_graphql::Request::new(req.query.clone())
        .data(crate::schema::ApiVersion(version))
        .data(warnings.clone());
    if let Some(op) = &req.operation_name {
        request = request.operation_name(op);
    }
    if !variables.is_null() {
        request = request.variables(async_graphql::Variables::from_json(variables.clone()));
    }
    let response = app.schema.execute(request).await;
    let data = response.data.clone().into_json().unwrap_or(Value::Null);
    let actual = cost::actual_cost(&req.query, &variables, req.operation_name.as_deref(), &data)
        .ok()
        .map(|a| a.min(charge));
    let mut shop = app.shop.lock();
    let now = shop.clock.secs();
    if let Some(a) = actual {
        shop.bucket_for(&token).refund(charge - a);
    }
    let ext = cost_ext(requested, actual, shop.bucket_for(&token), now);
    drop(shop);
    let mut ext = ext;
    // Search warnings (an ignored field means every result), or every search's parse on
    // request (`Shopify-Search-Query-Debug: 1`).
    let debug = headers
        .get("shopify-search-query-debug")
        .is_some_and(|v| v.as_bytes() == b"1");
    let searches: Vec<Value> = warnings
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|w| debug || w["warnings"].as_array().is_some_and(|a| !a.is_empty()))
        .cloned()
        .collect();
    if !searches.is_empty() {
        ext["search"] = Value::Array(searches);
    }
    let mut body = json!({ "data": data, "extensions": ext });
    if !response.errors.is_empty() {
        body["errors"] = serde_json::to_value(&response.errors).unwrap_or(Value::Null);
        if data.is_null() {
            body.as_object_mut().map(|o| o.remove("data"));
        }
    }
    log(
        200,
        if response.errors.is_empty() {
            "ok"
        } else {
            "graphql_error"
        },
        roots,
        requested,
        actual,
    );
    json_response(StatusCode::OK, version, body)
}

fn root_fields(query: &str) -> Vec<String> {
    use async_graphql::parser::{parse_query, types::Selection};
    let Ok(doc) = parse_query(query) else {
        return vec![];
    };
    doc.operations
        .iter()
        .flat_map(|(_, op)| {
            op.node
                .selection_set
                .node
                .items
                .iter()
                .filter_map(|s| match &s.node {
                    Selection::Field(f) => Some(f.node.name.node.to_string()),
                    _ => None,
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[derive(Deserialize)]
struct ResetBody {
    #[serde(default)]
    products: usize,
    #[serde(default = "one")]
    variants: usize,
}

fn one() -> usize {
    1
}

async fn reset(State(app): State<AppState>, Json(b): Json<ResetBody>) -> Response {
    let mut shop = app.shop.lock();
    let now = shop.clock.now();
    shop.catalog = crate::model::Catalog::new();
    shop.catalog.seed(b.products, b.variants, now);
    let secs = shop.clock.secs();
    let plan = shop.plan;
    shop.reset_buckets(Bucket::new(plan.bucket_size(), plan.restore_rate(), secs));
    shop.faults = Faults::default();
    shop.log.clear();
    Json(json!({"products": shop.catalog.products.len()})).into_response()
}

#[derive(Deserialize)]
struct PlanBody {
    plan: Option<Plan>,
    bucket_size: Option<f64>,
    restore_rate: Option<f64>,
    available: Option<f64>,
}

async fn plan(State(app): State<AppState>, Json(b): Json<PlanBody>) -> Response {
    let mut shop = app.shop.lock();
    if let Some(p) = b.plan {
        shop.plan = p;
    }
    let plan = shop.plan;
    let now = shop.clock.secs();
    let max = b.bucket_size.unwrap_or(plan.bucket_size());
    let restore = b.restore_rate.unwrap_or(plan.restore_rate());
    if max <= 0.0 || restore < 0.0 {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": "bucket_size must be > 0 and restore_rate >= 0"})),
        )
            .into_response();
    }
    let mut template = Bucket::new(max, restore, now);
    if let Some(a) = b.available {
        template.set_available(a, now);
    }
    shop.reset_buckets(template);
    Json(json!({"bucket_size": max, "restore_rate": restore})).into_response()
}

#[derive(Deserialize)]
struct ClockBody {
    advance_ms: i64,
}

async fn clock(State(app): State<AppState>, Json(b): Json<ClockBody>) -> Response {
    let mut shop = app.shop.lock();
    shop.clock.advance(b.advance_ms);
    Json(json!({"now": shop.clock.now()})).into_response()
}

async fn get_faults(State(app): State<AppState>) -> Response {
    Json(app.shop.lock().faults.clone()).into_response()
}

async fn put_faults(State(app): State<AppState>, Json(f): Json<Faults>) -> Response {
    app.shop.lock().faults = f.clone();
    Json(f).into_response()
}

async fn requests(State(app): State<AppState>) -> Response {
    let shop = app.shop.lock();
    Json(shop.log.iter().cloned().collect::<Vec<_>>()).into_response()
}

async fn clear_requests(State(app): State<AppState>) -> Response {
    app.shop.lock().log.clear();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct BucketQuery {
    token: Option<String>,
}

/// One app's bucket (`?token=`; default: the first configured token).
async fn bucket(
    State(app): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<BucketQuery>,
) -> Response {
    let mut shop = app.shop.lock();
    let now = shop.clock.secs();
    let token = q
        .token
        .or_else(|| shop.tokens.first().cloned())
        .unwrap_or_default();
    let b = shop.bucket_for(&token);
    Json(json!({"maximum_available": b.max, "restore_rate": b.restore, "currently_available": b.available(now)})).into_response()
}

/// A merchant edit in the admin between a client's read and write.
#[derive(Deserialize)]
struct EditBody {
    title: Option<String>,
    price: Option<String>,
    status: Option<String>,
}

async fn merchant_edit(
    State(app): State<AppState>,
    Path(id): Path<u64>,
    Json(b): Json<EditBody>,
) -> Response {
    let mut shop = app.shop.lock();
    let now = shop.clock.now();
    let Some(p) = shop.catalog.products.get_mut(&id) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("product {id} does not exist")})),
        )
            .into_response();
    };
    if let Some(t) = b.title {
        p.title = t;
    }
    if let Some(pr) = b.price {
        p.variants.iter_mut().for_each(|v| v.price = pr.clone());
    }
    if let Some(s) = b.status {
        p.status = s.to_uppercase();
    }
    p.updated_at = now;
    shop.emit_product("products/update", id);
    Json(json!({"updated_at": now})).into_response()
}

/// The merchant deletes a product in the admin (`products/delete` is sent).
async fn merchant_delete(State(app): State<AppState>, Path(id): Path<u64>) -> Response {
    let mut shop = app.shop.lock();
    if shop.catalog.products.remove(&id).is_none() {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("product {id} does not exist")})),
        )
            .into_response();
    }
    shop.emit("products/delete", json!({ "id": id }), None);
    Json(json!({"deleted": id})).into_response()
}

/// The merchant deletes one variant of a product in the admin (the product's `updatedAt`
/// moves; `products/update` is sent). A product keeps at least one variant, as on Shopify.
async fn merchant_delete_variant(State(app): State<AppState>, Path(id): Path<u64>) -> Response {
    let mut shop = app.shop.lock();
    let now = shop.clock.now();
    let found = shop
        .catalog
        .products
        .values_mut()
        .find(|p| p.variants.iter().any(|v| v.id == id));
    let Some(p) = found else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("variant {id} does not exist")})),
        )
            .into_response();
    };
    if p.variants.len() == 1 {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": "a product keeps at least one variant"})),
        )
            .into_response();
    }
    p.variants.retain(|v| v.id != id);
    p.updated_at = now;
    let product = p.id;
    shop.emit_product("products/update", product);
    Json(json!({"deleted": id, "product": product})).into_response()
}

/// Stock moved (an order, a count): the quantity at a location (default: the first; an item
/// not stocked there yet is stocked from now on) changes and, as on Shopify, `updatedAt` too.
#[derive(Deserialize)]
struct InventoryBody {
    inventory_item_id: u64,
    quantity: i64,
    location_id: Option<u64>,
}

async fn set_inventory(State(app): State<AppState>, Json(b): Json<InventoryBody>) -> Response {
    let mut shop = app.shop.lock();
    let now = shop.clock.now();
    let bump = shop.inventory_bumps_updated_at;
    let Some((pid, vix)) = shop.catalog.by_inventory_item(b.inventory_item_id) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such inventory item"})),
        )
            .into_response();
    };
    let location = b
        .location_id
        .or_else(|| shop.locations.first().map(|l| l.id));
    let Some(location) = location.filter(|l| shop.locations.iter().any(|x| x.id == *l)) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such location"})),
        )
            .into_response();
    };
    let p = shop.catalog.products.get_mut(&pid).expect("found above");
    p.variants[vix].levels.insert(location, b.quantity);
    if bump {
        p.updated_at = now;
    }
    shop.emit_product("products/update", pid);
    Json(json!({"product_id": pid})).into_response()
}

#[derive(Deserialize)]
struct LocationBody {
    name: String,
}

/// Opens another location (stocking nothing until inventory is set there).
async fn add_location(State(app): State<AppState>, Json(b): Json<LocationBody>) -> Response {
    let mut shop = app.shop.lock();
    let id = shop.catalog.next_id();
    let created_at = shop.clock.now();
    shop.locations.push(crate::shop::SimLocation {
        id,
        name: b.name,
        active: true,
        created_at,
    });
    Json(json!({ "id": id, "gid": format!("gid://shopify/Location/{id}") })).into_response()
}

/// Streams a bulk operation's JSONL from disk, in chunks.
async fn bulk_result(State(app): State<AppState>, Path(file): Path<String>) -> Response {
    let path = {
        let shop = app.shop.lock();
        let id = file
            .strip_suffix(".jsonl")
            .and_then(|i| i.parse::<u64>().ok());
        id.and_then(|i| shop.bulk.get(&i))
            .and_then(|op| op.file.clone())
    };
    let Some(path) = path else {
        return (StatusCode::NOT_FOUND, "no such result").into_response();
    };
    let Ok(file) = tokio::fs::File::open(&path).await else {
        return (StatusCode::NOT_FOUND, "result file is gone").into_response();
    };
    let stream = futures::stream::unfold(Some(file), |file| async move {
        use tokio::io::AsyncReadExt;
        let mut file = file?;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<Bytes, std::io::Error>(Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    (
        [(header::CONTENT_TYPE, "application/jsonl")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn webhook_log(State(app): State<AppState>) -> Response {
    Json(app.shop.lock().webhook_log.clone()).into_response()
}

/// A staged upload: multipart form, the parameters first, the `file` part last (as on Shopify's
/// storage targets); stored under its `key`.
async fn staged_upload(
    State(app): State<AppState>,
    mut form: axum::extract::Multipart,
) -> Response {
    let mut key: Option<String> = None;
    let mut file: Option<Vec<u8>> = None;
    loop {
        match form.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_owned();
                if file.is_some() {
                    return (
                        StatusCode::BAD_REQUEST,
                        "the file part must be the last part of the form",
                    )
                        .into_response();
                }
                let Ok(bytes) = field.bytes().await else {
                    return (StatusCode::BAD_REQUEST, "unreadable form part").into_response();
                };
                match name.as_str() {
                    "key" => key = Some(String::from_utf8_lossy(&bytes).into_owned()),
                    "file" => file = Some(bytes.to_vec()),
                    _ => {}
                }
            }
            Ok(None) => break,
            Err(e) => {
                return (StatusCode::BAD_REQUEST, format!("bad multipart body: {e}"))
                    .into_response();
            }
        }
    }
    match (key, file) {
        (Some(key), Some(file)) => {
            app.shop.lock().staged.insert(key, file);
            StatusCode::CREATED.into_response()
        }
        _ => (StatusCode::BAD_REQUEST, "the form needs a key and a file").into_response(),
    }
}
