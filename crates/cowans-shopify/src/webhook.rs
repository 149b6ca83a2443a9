//! Webhook verification: HMAC-SHA256 of the raw body with the app secret, compared in constant
//! time before anything is parsed; header parsing; de-duplication by `X-Shopify-Webhook-Id`;
//! and subscriptions (`webhookSubscriptionCreate` with a `uri`, as from 2025-10, and
//! `webhookSubscriptions`).

use std::collections::{HashSet, VecDeque};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The signature Shopify puts in `X-Shopify-Hmac-Sha256` for `body`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// True if `signature` (the header, base64) is the HMAC of exactly these bytes. Constant time.
pub fn verify(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// The headers of one delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookHeaders {
    pub topic: String,
    pub shop: String,
    pub webhook_id: String,
    pub triggered_at: Option<String>,
    pub hmac: String,
    /// Shared by every delivery of one merchant action (`X-Shopify-Event-Id`).
    pub event_id: Option<String>,
    /// The version the payload was serialized with (`X-Shopify-API-Version`).
    pub api_version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("webhook header {0} is missing")]
pub struct MissingHeader(pub &'static str);

impl WebhookHeaders {
    /// Reads the headers from any name → value lookup (case-insensitive names).
    pub fn parse<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Self, MissingHeader> {
        let need = |name: &'static str| get(name).map(str::to_owned).ok_or(MissingHeader(name));
        Ok(Self {
            topic: need("x-shopify-topic")?,
            shop: need("x-shopify-shop-domain")?,
            webhook_id: need("x-shopify-webhook-id")?,
            triggered_at: get("x-shopify-triggered-at").map(str::to_owned),
            hmac: need("x-shopify-hmac-sha256")?,
            event_id: get("x-shopify-event-id").map(str::to_owned),
            api_version: get("x-shopify-api-version").map(str::to_owned),
        })
    }
}

/// Remembers the last `capacity` webhook ids: a delivery seen before is a duplicate.
#[derive(Debug)]
pub struct Dedup {
    seen: HashSet<String>,
    order: VecDeque<String>,
    capacity: usize,
}

impl Dedup {
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// True the first time an id is offered.
    pub fn first_time(&mut self, webhook_id: &str) -> bool {
        if self.seen.contains(webhook_id) {
            return false;
        }
        if self.order.len() == self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        self.seen.insert(webhook_id.to_owned());
        self.order.push_back(webhook_id.to_owned());
        true
    }
}

/// A webhook subscription of this app (`webhookSubscriptions`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub id: crate::Gid,
    /// `PRODUCTS_UPDATE`, ...
    pub topic: String,
    pub uri: String,
    /// `JSON` or `XML`.
    pub format: String,
    pub include_fields: Vec<String>,
    pub filter: Option<String>,
}

const SUBSCRIBE: &str = "mutation($topic: WebhookSubscriptionTopic!, $sub: WebhookSubscriptionInput!) { \
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $sub) { \
    webhookSubscription { id } userErrors { field message } } }";

const SUBSCRIPTIONS: &str = "query($after: String) { webhookSubscriptions(first: 100, after: $after) { \
  nodes { id topic uri format includeFields filter } pageInfo { hasNextPage endCursor } } }";

const UNSUBSCRIBE: &str = "mutation($id: ID!) { webhookSubscriptionDelete(id: $id) { \
  deletedWebhookSubscriptionId userErrors { field message } } }";

impl crate::Client {
    /// Subscribes `uri` (HTTPS, `pubsub://project:topic` or an EventBridge ARN) to `topic`
    /// (the `WebhookSubscriptionTopic` value, e.g. `PRODUCTS_UPDATE`), delivered as JSON; the
    /// subscription's id. Not retried: a retry of a subscription that was made would be refused
    /// as taken.
    pub async fn webhook_subscription_create(
        &self,
        topic: &str,
        uri: &str,
    ) -> Result<crate::Gid, crate::ShopifyError> {
        let a = self
            .mutate::<serde_json::Value>(
                SUBSCRIBE,
                serde_json::json!({"topic": topic, "sub": {"uri": uri, "format": "JSON"}}),
                false,
            )
            .await?;
        let payload = &a.data["webhookSubscriptionCreate"];
        crate::Client::check_user_errors(payload)?;
        serde_json::from_value(payload["webhookSubscription"]["id"].clone())
            .map_err(|e| crate::ShopifyError::Decode(format!("webhook subscription id: {e}")))
    }

    /// Every webhook subscription of this app on the shop (paged through).
    pub async fn webhook_subscriptions(&self) -> Result<Vec<Subscription>, crate::ShopifyError> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct PageInfo {
            has_next_page: bool,
            end_cursor: Option<String>,
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Page {
            nodes: Vec<Subscription>,
            page_info: PageInfo,
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Data {
            webhook_subscriptions: Page,
        }
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let a = self
                .query::<Data>(SUBSCRIPTIONS, serde_json::json!({ "after": after }))
                .await?;
            let page = a.data.webhook_subscriptions;
            out.extend(page.nodes);
            match (page.page_info.has_next_page, page.page_info.end_cursor) {
                (true, Some(c)) => after = Some(c),
                _ => return Ok(out),
            }
        }
    }

    /// Deletes a webhook subscription.
    pub async fn webhook_subscription_delete(
        &self,
        id: &crate::Gid,
    ) -> Result<(), crate::ShopifyError> {
        let a = self
            .mutate::<serde_json::Value>(
                UNSUBSCRIBE,
                serde_json::json!({ "id": id.to_string() }),
                true,
            )
            .await?;
        crate::Client::check_user_errors(&a.data["webhookSubscriptionDelete"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_the_exact_body_and_secret() {
        let body = br#"{"id":1,"title":"Hat"}"#;
        let sig = sign(b"secret", body);
        assert!(verify(b"secret", body, &sig));
        assert!(
            !verify(b"secret", br#"{"id":1,"title":"Hat "}"#, &sig),
            "altered body"
        );
        assert!(!verify(b"other", body, &sig), "wrong secret");
        assert!(!verify(b"secret", body, "not base64!"), "garbage header");
    }

    #[test]
    fn duplicates_are_recognised_within_the_window() {
        let mut d = Dedup::new(2);
        assert!(d.first_time("a"));
        assert!(!d.first_time("a"));
        assert!(d.first_time("b"));
        assert!(d.first_time("c"));
        assert!(d.first_time("a"), "forgotten once out of the window");
    }
}
