//! Webhook delivery: `products/create|update|delete` (and `bulk_operations/finish`) POSTed to
//! subscribed callback URLs with Shopify's headers and an HMAC-SHA256 of the exact body, retried
//! on non-2xx with backoff; knobs for duplicates, reordering, drops and wrong signatures.

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
    pub callback_url: String,
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

/// REST-shaped product payload (snake_case, numeric ids).
pub fn product_payload(p: &Product) -> Value {
    json!({
        "id": p.id,
        "admin_graphql_api_id": format!("gid://shopify/Product/{}", p.id),
        "title": p.title,
        "handle": p.handle,
        "status": p.status.to_lowercase(),
        "vendor": p.vendor,
        "product_type": p.product_type,
        "tags": p.tags.join(", "),
        "created_at": p.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "updated_at": p.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "variants": p.variants.iter().map(|v| json!({
            "id": v.id,
            "admin_graphql_api_id": format!("gid://shopify/ProductVariant/{}", v.id),
            "sku": v.sku,
            "price": v.price,
            "inventory_quantity": v.inventory_quantity,
            "inventory_item_id": v.inventory_item_id,
        })).collect::<Vec<_>>(),
    })
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
        let result = http
            .post(&d.url)
            .header("content-type", "application/json")
            .header("x-shopify-topic", &d.topic)
            .header("x-shopify-hmac-sha256", sig)
            .header("x-shopify-shop-domain", &domain)
            .header("x-shopify-api-version", "2026-10")
            .header("x-shopify-webhook-id", &d.webhook_id)
            .header("x-shopify-event-id", &d.event_id)
            .header("x-shopify-triggered-at", d.triggered_at.to_rfc3339())
            .body(d.body.clone())
            .send()
            .await;
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
