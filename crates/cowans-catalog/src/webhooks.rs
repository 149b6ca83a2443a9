//! Shopify's webhooks: receiving a delivery (verify, de-duplicate, enqueue — nothing else on
//! the request's path), applying it in a job, and subscribing a shop to them.
//!
//! - [`Catalog::receive_webhook`]: the HMAC of the raw body is checked with the shop's webhook
//!   secret (constant time) before anything is parsed; the delivery becomes a `catalog.webhook`
//!   job whose unique key is its `X-Shopify-Webhook-Id`, so a repeated delivery answers
//!   `duplicate` instead of running twice (while the first job is kept: `engine.retain_finished`,
//!   and for ever while it waits or runs). Shops' secrets are cached a few seconds per process.
//! - `catalog.webhook` applies it: `products/create|update` write the payload's product as a
//!   snapshot (an older one never overwrites a newer one; weights, absent from payloads, are
//!   kept), `products/delete` marks the product deleted, `app/uninstalled` marks the shop
//!   unauthorized.
//! - `catalog.subscribe` subscribes a shop's topics to `catalog.webhook_url` (added shops get
//!   the job when that is set); subscriptions already there are left alone.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use apalis_core::error::BoxDynError;
use cowans_core::{Actor, JobError, JobId, QueueName};
use cowans_queue::{NewJob, StoreError, Unique};
use cowans_shopify::{
    ShopifyError,
    webhook::{WebhookHeaders, verify},
};
use cowans_store::catalog as store;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{Catalog, QUEUE, secrets::Purpose, snapshot};

/// The job kind that applies a delivery.
pub const WEBHOOK_KIND: &str = "catalog.webhook";
/// The queue deliveries wait on (apart from pulls, so a long pull never delays them).
pub const WEBHOOK_QUEUE: &str = "catalog.webhooks";
/// The job kind that subscribes a shop's webhooks.
pub const SUBSCRIBE_KIND: &str = "catalog.subscribe";
/// The topics a shop is subscribed to, as Shopify names them in subscriptions and in
/// `X-Shopify-Topic`.
pub const TOPICS: [(&str, &str); 4] = [
    ("PRODUCTS_CREATE", "products/create"),
    ("PRODUCTS_UPDATE", "products/update"),
    ("PRODUCTS_DELETE", "products/delete"),
    ("APP_UNINSTALLED", "app/uninstalled"),
];
/// A payload listing this many variants may be cut short (REST shapes stop at 100): the
/// variants it does not list are then not removed.
const PAYLOAD_VARIANTS_MAX: usize = 100;
/// How long a shop's webhook secret (or its absence) is cached per process.
const SECRET_TTL: Duration = Duration::from_secs(10);

/// Why a delivery was refused; never includes the body or a secret.
#[derive(Debug, thiserror::Error)]
pub enum WebhookRefused {
    /// No valid signature for a known shop with a webhook secret (401).
    #[error("the delivery is not signed by a shop this catalog knows")]
    Unauthenticated,
    /// Signed, but not a delivery Cowans can read (400).
    #[error("{0}")]
    Malformed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A delivery accepted: the job that applies it (none for topics Cowans does not use), and
/// whether it had been received before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Received {
    pub job_id: Option<i64>,
    pub duplicate: bool,
}

/// The arguments of a `catalog.webhook` job.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookArgs {
    pub shop_id: i64,
    pub topic: String,
    pub webhook_id: String,
    pub payload: Value,
}

/// The arguments of a `catalog.subscribe` job.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscribeArgs {
    pub shop_id: i64,
}

/// A shop's id and webhook secret.
type ShopSecret = (i64, SecretString);

/// Shops' webhook secrets by domain (`None`: no such shop or no secret), briefly.
#[derive(Default)]
pub(crate) struct SecretCache(Mutex<HashMap<String, (Instant, Option<ShopSecret>)>>);

impl SecretCache {
    fn get(&self, domain: &str) -> Option<Option<ShopSecret>> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(domain)
            .filter(|(at, _)| at.elapsed() < SECRET_TTL)
            .map(|(_, s)| s.clone())
    }

    fn put(&self, domain: &str, secret: Option<ShopSecret>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.clear();
        }
        map.insert(domain.to_owned(), (Instant::now(), secret));
    }

    /// Forgets every shop (one changed).
    pub(crate) fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

impl Catalog {
    /// The shop a delivery's domain names and its webhook secret, if it has one.
    async fn webhook_secret(&self, domain: &str) -> Result<Option<ShopSecret>, WebhookRefused> {
        let domain = domain.trim().to_ascii_lowercase();
        if let Some(cached) = self.webhook_secrets().get(&domain) {
            return Ok(cached);
        }
        let found = match store::get_shop_by_domain(self.pool(), &domain).await? {
            Some(shop) => match &shop.webhook {
                Some(sealed) => {
                    let secret = self
                        .keys()
                        .open(&shop.domain, Purpose::WebhookSecret, sealed)
                        .map_err(|e| StoreError::invalid("catalog.secret_keys", e.to_string()))?;
                    Some((shop.id, secret))
                }
                None => None,
            },
            None => None,
        };
        self.webhook_secrets().put(&domain, found.clone());
        Ok(found)
    }

    /// Receives one delivery: `headers` as sent, `body` the raw bytes, `client_addr` the
    /// sender (for the audit log). Answers once its job is committed (or found to exist).
    pub async fn receive_webhook(
        &self,
        headers: &WebhookHeaders,
        body: &[u8],
        client_addr: Option<String>,
    ) -> Result<Received, WebhookRefused> {
        let Some((shop_id, secret)) = self.webhook_secret(&headers.shop).await? else {
            return Err(WebhookRefused::Unauthenticated);
        };
        if !verify(secret.expose_secret().as_bytes(), body, &headers.hmac) {
            return Err(WebhookRefused::Unauthenticated);
        }
        if !TOPICS.iter().any(|(_, t)| *t == headers.topic) {
            tracing::debug!(topic = %headers.topic, shop = shop_id, "ignoring a webhook topic the catalog does not use");
            return Ok(Received {
                job_id: None,
                duplicate: false,
            });
        }
        let payload: Value = serde_json::from_slice(body)
            .ok()
            .filter(Value::is_object)
            .ok_or_else(|| WebhookRefused::Malformed("the body is not a JSON object".into()))?;
        if headers.webhook_id.is_empty() || headers.webhook_id.len() > 200 {
            return Err(WebhookRefused::Malformed(
                "X-Shopify-Webhook-Id must be 1 to 200 characters".into(),
            ));
        }
        let args = WebhookArgs {
            shop_id,
            topic: headers.topic.clone(),
            webhook_id: headers.webhook_id.clone(),
            payload,
        };
        let queue = QueueName::new(WEBHOOK_QUEUE)
            .map_err(|e| StoreError::invalid("queue", e.to_string()))?;
        let key = format!("webhook:{shop_id}:{}", headers.webhook_id);
        let job =
            NewJob::new(queue, WEBHOOK_KIND, json!(args)).unique(Unique::key(key).also_in(&[
                cowans_core::JobState::Completed,
                cowans_core::JobState::Dead,
                cowans_core::JobState::Cancelled,
            ]));
        let actor = Actor::webhook(&headers.shop, client_addr);
        let done = self.front().submit(&actor, job).await?;
        Ok(Received {
            job_id: Some(done.id.0),
            duplicate: done.duplicate,
        })
    }

    /// Enqueues the subscription of `shop_id`'s webhooks, when `catalog.webhook_url` is set.
    pub(crate) async fn enqueue_subscribe(
        &self,
        conn: &mut sqlx::PgConnection,
        shop_id: i64,
    ) -> Result<Option<JobId>, StoreError> {
        if self.settings().webhook_url.is_none() {
            return Ok(None);
        }
        let queue =
            QueueName::new(QUEUE).map_err(|e| StoreError::invalid("queue", e.to_string()))?;
        let job = NewJob::new(queue, SUBSCRIBE_KIND, json!(SubscribeArgs { shop_id }));
        Ok(Some(self.front().enqueue_in(&mut *conn, &job).await?.id))
    }

    /// Subscribes a shop's webhooks (again) to `catalog.webhook_url`: its job, audited as
    /// `shop.subscribe`. `Conflict` when no URL is set.
    pub async fn subscribe_webhooks(
        &self,
        actor: &Actor,
        shop_id: i64,
    ) -> Result<JobId, StoreError> {
        self.shop(shop_id).await?;
        let mut tx = self.pool().begin().await?;
        let Some(job) = self.enqueue_subscribe(&mut tx, shop_id).await? else {
            return Err(StoreError::conflict(
                "catalog.webhook_url is not set: there is nowhere to subscribe the shop's webhooks to",
            ));
        };
        let details = json!({ "job_id": job.0, "uri": self.settings().webhook_url });
        let recorded = self
            .front()
            .record(
                &mut tx,
                actor,
                "shop.subscribe",
                Some(format!("shop:{shop_id}")),
                details,
            )
            .await?;
        recorded.commit(tx).await?;
        Ok(job)
    }
}

/// Applies one delivery (the `catalog.webhook` job).
pub(crate) async fn apply(catalog: Catalog, args: WebhookArgs) -> Result<(), BoxDynError> {
    let pool = catalog.pool();
    let Some(shop) = store::get_shop(pool, args.shop_id).await? else {
        return Ok(());
    };
    let bad = |e: snapshot::SnapshotError| -> BoxDynError {
        JobError::permanent(format!("{} payload: {e}", args.topic)).into()
    };
    match args.topic.as_str() {
        "products/create" | "products/update" => {
            let product = snapshot::rest_product(&args.payload).map_err(bad)?;
            let variants = snapshot::rest_variants(&args.payload, &product).map_err(bad)?;
            let mut tx = pool.begin().await?;
            store::upsert_products(&mut tx, shop.id, None, None, std::slice::from_ref(&product))
                .await?;
            store::upsert_variants(&mut tx, shop.id, None, &variants, true).await?;
            // A payload lists every variant (at least one); one listing none or a cut-short
            // list tells nothing about the others.
            if !variants.is_empty() && variants.len() < PAYLOAD_VARIANTS_MAX {
                let kept: Vec<i64> = variants.iter().map(|v| v.id).collect();
                store::prune_variants(&mut tx, shop.id, &[(product.id, product.updated_at)], &kept)
                    .await?;
            }
            tx.commit().await?;
        }
        "products/delete" => {
            let id = args.payload["id"]
                .as_u64()
                .and_then(|id| i64::try_from(id).ok())
                .ok_or_else(|| {
                    bad(snapshot::SnapshotError {
                        field: "id".into(),
                        problem: "missing or not an id".into(),
                    })
                })?;
            store::mark_products_deleted(pool, shop.id, &[id], None).await?;
        }
        "app/uninstalled" => {
            store::set_shop_status(
                pool,
                shop.id,
                "unauthorized",
                Some("the app was uninstalled from the shop"),
            )
            .await?;
        }
        other => tracing::debug!(topic = other, "ignoring a webhook topic"),
    }
    Ok(())
}

/// Subscribes a shop's topics to `catalog.webhook_url` (the `catalog.subscribe` job).
pub(crate) async fn subscribe(catalog: Catalog, args: SubscribeArgs) -> Result<(), BoxDynError> {
    let Some(uri) = catalog.settings().webhook_url.clone() else {
        return Ok(());
    };
    let Some(shop) = store::get_shop(catalog.pool(), args.shop_id).await? else {
        return Ok(());
    };
    let client = catalog
        .client(&shop)
        .map_err(|e| -> BoxDynError { JobError::permanent(e).into() })?;
    let subscribed = async {
        let existing = client.webhook_subscriptions().await?;
        for (topic, _) in TOPICS {
            if existing.iter().any(|s| s.topic == topic && s.uri == uri) {
                continue;
            }
            client.webhook_subscription_create(topic, &uri).await?;
            tracing::info!(shop = %shop.name, topic, %uri, "subscribed to a webhook topic");
        }
        Ok::<_, ShopifyError>(())
    };
    match subscribed.await {
        Ok(()) => Ok(()),
        Err(e) if e.is_unauthorized() => {
            let why = catalog.token_refused(shop.id).await?;
            Err(JobError::permanent(why).into())
        }
        Err(e) => Err(JobError::retry(e).into()),
    }
}
