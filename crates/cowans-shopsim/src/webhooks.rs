//! Webhook delivery: `products/create|update|delete` (and `bulk_operations/finish`) POSTed to
//! subscribed URIs with Shopify's headers (`X-Shopify-Topic`, `-Hmac-Sha256` of the exact body,
//! `-Shop-Domain`, `-API-Version`, `-Webhook-Id`, `-Event-Id`, `-Triggered-At`, `-Name`) and
//! REST-shaped payloads trimmed by the subscription's `includeFields`, retried on non-2xx with
//! backoff; knobs for duplicates, reordering, drops and wrong signatures.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::{model::Product, shop::Shop};

#[derive(Debug, Clone, Serialize)]
pub struct Subscription {
    pub id: u64,
    /// `products/create`, ...
    pub topic: String,
    /// Where deliveries go (`uri`; `callbackUrl` before 2025-10).
    pub uri: String,
    /// Only these payload fields (`variants.price` reaches into each variant); empty: all.
    pub include_fields: Vec<String>,
    /// Search syntax over the resource: only matching events are delivered.
    pub filter: Option<String>,
    pub metafield_namespaces: Vec<String>,
    /// Sent as `X-Shopify-Name`.
    pub name: Option<String>,
    /// The version payloads are serialized with (`X-Shopify-API-Version`): the one the
    /// subscription was created with.
    pub api_version: String,
    pub created_at: DateTime<Utc>,
}

/// One delivery (retries resend the same body, id and signature inputs).
#[derive(Debug, Clone)]
pub struct Delivery {
    pub url: String,
    pub topic: String,
    pub body: String,
    pub webhook_id: String,
    pub event_id: String,
    pub triggered_at: DateTime<Utc>,
    pub api_version: String,
    pub name: Option<String>,
    /// Sign with a wrong secret (fault knob).
    pub bad_signature: bool,
}

/// What happened to a delivery, for `/__sim/webhooks`.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryLog {
    pub topic: String,
    pub webhook_id: String,
    pub url: String,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub delivered: bool,
    pub dropped: bool,
}

fn ts(d: DateTime<Utc>) -> String {
    d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The REST-shaped product payload of `products/create` and `products/update` (snake_case,
/// numeric ids, lower-case status, tags as one comma-separated string, prices as strings),
/// with its variants and options.
pub fn product_payload(p: &Product) -> Value {
    let option = |i: usize, v: &crate::model::Variant| v.option_values.get(i).cloned();
    json!({
        "id": p.id,
        "admin_graphql_api_id": format!("gid://shopify/Product/{}", p.id),
        "title": p.title,
        "handle": p.handle,
        "body_html": p.description_html,
        "vendor": p.vendor,
        "product_type": p.product_type,
        "status": p.status.to_lowercase(),
        "tags": p.tags.join(", "),
        "created_at": ts(p.created_at),
        "updated_at": ts(p.updated_at),
        "published_at": Value::Null,
        "published_scope": "web",
        "template_suffix": Value::Null,
        "variants": p.variants.iter().enumerate().map(|(i, v)| json!({
            "id": v.id,
            "product_id": p.id,
            "admin_graphql_api_id": format!("gid://shopify/ProductVariant/{}", v.id),
            "title": v.title,
            "price": v.price,
            "compare_at_price": v.compare_at_price,
            "sku": v.sku.clone().unwrap_or_default(),
            "barcode": v.barcode,
            "position": i + 1,
            "inventory_policy": v.inventory_policy.to_lowercase(),
            "option1": option(0, v),
            "option2": option(1, v),
            "option3": option(2, v),
            "taxable": v.taxable,
            "inventory_item_id": v.inventory_item_id,
            "inventory_quantity": v.inventory_quantity(),
            "old_inventory_quantity": v.inventory_quantity(),
            "image_id": Value::Null,
            "created_at": ts(v.created_at),
            "updated_at": ts(v.updated_at),
        })).collect::<Vec<_>>(),
        "options": p.options.iter().enumerate().map(|(i, o)| json!({
            "id": o.id,
            "product_id": p.id,
            "name": o.name,
            "position": i + 1,
            "values": o.values.iter().map(|(_, n)| n.clone()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "images": [],
        "image": Value::Null,
        "media": [],
        "category": Value::Null,
        "has_variants_that_requires_components": false,
    })
}

/// Keeps only `fields` of a payload (`variants.price` keeps `price` of each variant); no fields
/// keeps everything.
pub fn include_fields(payload: &Value, fields: &[String]) -> Value {
    if fields.is_empty() {
        return payload.clone();
    }
    let Value::Object(o) = payload else {
        return payload.clone();
    };
    let mut out = serde_json::Map::new();
    for (k, v) in o {
        let prefix = format!("{k}.");
        let nested: Vec<String> = fields
            .iter()
            .filter_map(|f| f.strip_prefix(&prefix).map(str::to_owned))
            .collect();
        if fields.iter().any(|f| f == k) {
            out.insert(k.clone(), v.clone());
        } else if !nested.is_empty() {
            let inner = match v {
                Value::Array(items) => {
                    Value::Array(items.iter().map(|x| include_fields(x, &nested)).collect())
                }
                other => include_fields(other, &nested),
            };
            out.insert(k.clone(), inner);
        }
    }
    Value::Object(out)
}

/// Delivers queued webhooks until the simulator stops.
pub async fn run(shop: Shop, mut rx: mpsc::UnboundedReceiver<Delivery>) {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    while let Some(d) = rx.recv().await {
        let (shop, http) = (shop.clone(), http.clone());
        tokio::spawn(deliver(shop, http, d));
    }
}

async fn deliver(shop: Shop, http: reqwest::Client, d: Delivery) {
    let (secret, domain, schedule) = {
        let s = shop.lock();
        (
            s.secret.clone(),
            s.shop_domain.clone(),
            s.webhook_retry_ms.clone(),
        )
    };
    let index = {
        let mut s = shop.lock();
        s.webhook_log.push(DeliveryLog {
            topic: d.topic.clone(),
            webhook_id: d.webhook_id.clone(),
            url: d.url.clone(),
            attempts: 0,
            last_status: None,
            delivered: false,
            dropped: false,
        });
        s.webhook_log.len() - 1
    };
    let mut bad = d.bad_signature;
    for attempt in 0..=schedule.len() {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(schedule[attempt - 1])).await;
        }
        let key = if bad {
            format!("{secret}-wrong")
        } else {
            secret.clone()
        };
        // Only the first attempt carries a wrong signature: Shopify's retries are signed right.
        bad = false;
        let sig = cowans_shopify::webhook::sign(key.as_bytes(), d.body.as_bytes());
        let request = http
            .post(&d.url)
            .header("content-type", "application/json")
            .header("x-shopify-topic", &d.topic)
            .header("x-shopify-hmac-sha256", sig)
            .header("x-shopify-shop-domain", &domain)
            .header("x-shopify-api-version", &d.api_version)
            .header("x-shopify-webhook-id", &d.webhook_id)
            .header("x-shopify-event-id", &d.event_id)
            .header(
                "x-shopify-triggered-at",
                d.triggered_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            );
        let request = match &d.name {
            Some(n) => request.header("x-shopify-name", n),
            None => request,
        };
        let result = request.body(d.body.clone()).send().await;
        let status = result.as_ref().ok().map(|r| r.status().as_u16());
        let ok = status.is_some_and(|s| (200..300).contains(&s));
        {
            let mut s = shop.lock();
            if let Some(l) = s.webhook_log.get_mut(index) {
                l.attempts += 1;
                l.last_status = status;
                l.delivered = ok;
            }
        }
        if ok {
            return;
        }
    }
}
