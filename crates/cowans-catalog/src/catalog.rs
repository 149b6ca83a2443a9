//! The catalog's front door: shops (with their secrets sealed), pulls, and reading the local
//! catalog. Every action with an actor writes its change and its audit entry in one
//! transaction, through the engine's [`FrontDoor`] (so the API, the command line and the console
//! act alike); the jobs it starts are enqueued in that same transaction.

use std::sync::Arc;

use cowans_queue::{FrontDoor, PgPool, StoreError, StoreResult as Result};
use cowans_shopify::{Client, ClientConfig};
use cowans_store::catalog::{self as store, ProductFilter, ProductRow, ShopRow, VariantRow};
use secrecy::ExposeSecret;

use crate::{
    CatalogSettings,
    secrets::{KeyRing, Purpose, SecretError},
};

/// Settings the catalog cannot start with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Secrets(#[from] SecretError),
    /// A setting other than the keys (the message names it).
    #[error("{0}")]
    Schedule(String),
}

/// The catalog's entry point. Cheap to clone.
#[derive(Clone)]
pub struct Catalog {
    inner: Arc<Inner>,
}

struct Inner {
    front: FrontDoor,
    keys: KeyRing,
    settings: CatalogSettings,
    /// Shops' webhook secrets, briefly.
    webhook_secrets: crate::webhooks::SecretCache,
    /// The fleet's Shopify budgets, when they live in Redis (`catalog.budgets = "redis"`).
    redis_budgets: std::sync::OnceLock<cowans_redis::CostBuckets>,
}

impl Catalog {
    /// The catalog over `front`'s database, sealing secrets with the settings' keys.
    pub fn new(
        front: FrontDoor,
        settings: &CatalogSettings,
    ) -> std::result::Result<Self, ConfigError> {
        let keys = KeyRing::new(&settings.secret_keys, settings.active_key.as_deref())?;
        if let Some(url) = &settings.webhook_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(ConfigError::Schedule(format!(
                "catalog.webhook_url {url:?} must be the http(s) URL of this API's /webhooks/shopify"
            )));
        }
        settings.notify.check().map_err(ConfigError::Schedule)?;
        for (name, schedule) in [
            (
                "catalog.incremental_schedule",
                &settings.incremental_schedule,
            ),
            ("catalog.reconcile_schedule", &settings.reconcile_schedule),
            ("catalog.dead_watch_schedule", &settings.dead_watch_schedule),
        ] {
            if !schedule.trim().is_empty() {
                crate::shops::check_schedule(name, schedule.trim())
                    .map_err(|e| ConfigError::Schedule(e.to_string()))?;
            }
        }
        Ok(Self {
            inner: Arc::new(Inner {
                front,
                keys,
                settings: settings.clone(),
                webhook_secrets: Default::default(),
                redis_budgets: Default::default(),
            }),
        })
    }

    pub(crate) fn pool(&self) -> &PgPool {
        self.inner.front.pool()
    }

    pub fn front(&self) -> &FrontDoor {
        &self.inner.front
    }

    pub(crate) fn keys(&self) -> &KeyRing {
        &self.inner.keys
    }

    pub(crate) fn webhook_secrets(&self) -> &crate::webhooks::SecretCache {
        &self.inner.webhook_secrets
    }

    pub(crate) fn settings(&self) -> &CatalogSettings {
        &self.inner.settings
    }

    /// Checks at start-up that every key a stored secret names is in the ring and opens it: a
    /// missing or wrong key is a clear error now rather than failing pulls later.
    pub async fn verify_keys(&self) -> std::result::Result<(), String> {
        let shops = store::list_shops(self.pool())
            .await
            .map_err(|e| format!("could not read the shops: {e}"))?;
        // One secret per key id is enough to show the key is there and right.
        let mut checked: Vec<&str> = Vec::new();
        for shop in &shops {
            let sealed = std::iter::once((Purpose::AccessToken, &shop.token))
                .chain(shop.webhook.iter().map(|w| (Purpose::WebhookSecret, w)));
            for (purpose, sealed) in sealed {
                if checked.contains(&sealed.key.as_str()) {
                    continue;
                }
                self.inner
                    .keys
                    .open(&shop.domain, purpose, sealed)
                    .map_err(|e| format!("shop {}: {e}", shop.name))?;
                checked.push(&sealed.key);
            }
        }
        Ok(())
    }

    /// Keeps the shops' Shopify budgets in Redis from now on (`catalog.budgets = "redis"`; set
    /// once, at start-up, before any client is made).
    pub fn use_redis_budgets(&self, buckets: cowans_redis::CostBuckets) {
        let _ = self.inner.redis_budgets.set(buckets);
    }

    /// Forgets what was learnt of a shop's budget (its token or endpoint changed).
    pub(crate) async fn forget_redis_budget(&self, shop_id: i64) {
        if let Some(b) = self.inner.redis_budgets.get()
            && let Err(e) = b.forget(&crate::budget::bucket_name(shop_id)).await
        {
            tracing::warn!(shop = shop_id, error = %e, "cannot forget the shop's budget in Redis; the next answer corrects it");
        }
    }

    /// A Shopify client for `shop`, pacing against the shop's one bucket for the whole fleet.
    pub fn client(&self, shop: &ShopRow) -> std::result::Result<Client, String> {
        let token = self
            .inner
            .keys
            .open(&shop.domain, Purpose::AccessToken, &shop.token)
            .map_err(|e| e.to_string())?;
        let base = shop
            .admin_url
            .clone()
            .unwrap_or_else(|| format!("https://{}", shop.domain));
        let buckets = match self.inner.redis_budgets.get() {
            Some(b) => crate::budget::Buckets::Redis(b.clone()),
            None => crate::budget::Buckets::Postgres(self.pool().clone()),
        };
        let bucket = Arc::new(crate::budget::FleetBucket {
            buckets,
            shop_id: shop.id,
        });
        let mut config = ClientConfig::new(base, &shop.api_version, token.expose_secret());
        config.shop = shop.domain.clone();
        Client::with_bucket(config, bucket).map_err(|e| e.to_string())
    }

    /// A page of a shop's products (id order after `after`), each with its variants.
    pub async fn products(
        &self,
        shop_id: i64,
        filter: &ProductFilter,
        after: Option<i64>,
        limit: i64,
    ) -> Result<Vec<(ProductRow, Vec<VariantRow>)>> {
        self.page(shop_id, &checked(filter)?, after, limit).await
    }

    /// A page of products with their variants, `filter` already checked.
    pub(crate) async fn page(
        &self,
        shop_id: i64,
        filter: &ProductFilter,
        after: Option<i64>,
        limit: i64,
    ) -> Result<Vec<(ProductRow, Vec<VariantRow>)>> {
        let products = store::list_products(self.pool(), shop_id, filter, after, limit).await?;
        let ids: Vec<i64> = products.iter().map(|p| p.id).collect();
        let mut variants = store::variants_of(self.pool(), shop_id, &ids)
            .await?
            .into_iter()
            .peekable();
        Ok(products
            .into_iter()
            .map(|p| {
                let mut mine = Vec::new();
                while let Some(v) = variants.next_if(|v| v.product_id == p.id) {
                    mine.push(v);
                }
                (p, mine)
            })
            .collect())
    }

    /// One product with its variants.
    pub async fn product(&self, shop_id: i64, id: i64) -> Result<(ProductRow, Vec<VariantRow>)> {
        let p = store::get_product(self.pool(), shop_id, id)
            .await?
            .ok_or_else(|| StoreError::not_found(format!("product {id} of shop {shop_id}")))?;
        let v = store::variants_of(self.pool(), shop_id, &[id]).await?;
        Ok((p, v))
    }

    /// How many live products and variants a shop's catalog holds.
    pub async fn counts(&self, shop_id: i64) -> Result<(i64, i64)> {
        store::catalog_counts(self.pool(), shop_id).await
    }
}

/// Shopify's product statuses.
const STATUSES: [&str; 4] = ["ACTIVE", "ARCHIVED", "DRAFT", "UNLISTED"];

/// `filter` with its status in Shopify's case, or `Invalid` naming `status`.
pub(crate) fn checked(filter: &ProductFilter) -> Result<ProductFilter> {
    let mut filter = filter.clone();
    if let Some(s) = &filter.status {
        let upper = s.to_ascii_uppercase();
        if !STATUSES.contains(&upper.as_str()) {
            return Err(StoreError::invalid(
                "status",
                format!("is {s:?}; it must be one of active, archived, draft, unlisted"),
            ));
        }
        filter.status = Some(upper);
    }
    Ok(filter)
}
