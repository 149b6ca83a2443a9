//! The catalog's front door: shops (with their secrets sealed), pulls, and reading the local
//! catalog. Every action with an actor writes its change and its audit entry in one
//! transaction, through the engine's [`FrontDoor`] (so the API, the command line and the console
//! act alike); the jobs it starts are enqueued in that same transaction.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use cowans_core::{Actor, QueueName};
use cowans_queue::{FrontDoor, NewJob, PgPool, StoreError, StoreResult as Result};
use cowans_shopify::{Client, ClientConfig, CostBucket, LocalBucket};
use cowans_store::catalog::{
    self as store, NewShop, ProductFilter, ProductRow, PullRow, ShopPatch, ShopRow, VariantRow,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::{
    CatalogSettings, PULL_KIND, QUEUE,
    secrets::{KeyRing, Purpose, SecretError, last4},
};

/// Shopify API versions look like `2026-10`.
fn valid_version(v: &str) -> bool {
    v.len() == 7
        && v.as_bytes()[4] == b'-'
        && v.chars()
            .enumerate()
            .all(|(i, c)| i == 4 || c.is_ascii_digit())
}

/// A shop to add: its secrets come in as secrets and are sealed before anything is stored.
#[derive(Debug, Clone)]
pub struct ShopRequest {
    pub name: String,
    /// `<shop>.myshopify.com`.
    pub domain: String,
    pub api_version: String,
    /// Where the Admin API answers when not at `https://<domain>` (the simulator).
    pub admin_url: Option<String>,
    pub access_token: SecretString,
    pub webhook_secret: Option<SecretString>,
}

/// What may change about a shop (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct ShopUpdate {
    pub api_version: Option<String>,
    pub admin_url: Option<Option<String>>,
    pub access_token: Option<SecretString>,
    pub webhook_secret: Option<SecretString>,
}

/// Which pull.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PullKind {
    /// Every product, through a bulk query export.
    Full,
    /// Products updated since the last pull, through paginated queries.
    Incremental,
}

impl PullKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PullKind::Full => "full",
            PullKind::Incremental => "incremental",
        }
    }
}

/// The arguments of a pull job.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PullArgs {
    pub shop_id: i64,
    pub pull_id: i64,
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
    /// One Shopify cost bucket per shop for every caller in this process.
    buckets: Mutex<HashMap<i64, Arc<dyn CostBucket>>>,
}

impl Catalog {
    /// The catalog over `front`'s database, sealing secrets with the settings' keys.
    pub fn new(
        front: FrontDoor,
        settings: &CatalogSettings,
    ) -> std::result::Result<Self, SecretError> {
        let keys = KeyRing::new(&settings.secret_keys, settings.active_key.as_deref())?;
        Ok(Self {
            inner: Arc::new(Inner {
                front,
                keys,
                settings: settings.clone(),
                buckets: Mutex::default(),
            }),
        })
    }

    pub(crate) fn pool(&self) -> &PgPool {
        self.inner.front.pool()
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
        let mut checked: Vec<&str> = Vec::new();
        for shop in &shops {
            if checked.contains(&shop.token.key.as_str()) {
                continue;
            }
            self.inner
                .keys
                .open(&shop.domain, Purpose::AccessToken, &shop.token)
                .map_err(|e| format!("shop {}: {e}", shop.name))?;
            checked.push(&shop.token.key);
        }
        Ok(())
    }

    // ---- shops ----

    /// Adds a shop (admin action, audited as `shop.add`).
    pub async fn add_shop(&self, actor: &Actor, req: ShopRequest) -> Result<ShopRow> {
        let domain = req.domain.trim().to_ascii_lowercase();
        if domain.is_empty() || domain.len() > 255 || domain.contains(['/', ' ']) {
            return Err(StoreError::invalid(
                "domain",
                "must be the shop's domain, e.g. acme.myshopify.com",
            ));
        }
        if !valid_version(&req.api_version) {
            return Err(StoreError::invalid(
                "api_version",
                format!("is {:?}; it must look like 2026-10", req.api_version),
            ));
        }
        check_url(req.admin_url.as_deref())?;
        if req.access_token.expose_secret().trim().is_empty() {
            return Err(StoreError::invalid("access_token", "must not be empty"));
        }
        let keys = &self.inner.keys;
        let shop = NewShop {
            name: req.name.clone(),
            domain: domain.clone(),
            api_version: req.api_version,
            admin_url: req.admin_url,
            token: keys.seal(&domain, Purpose::AccessToken, &req.access_token),
            token_last4: last4(&req.access_token),
            webhook: req
                .webhook_secret
                .as_ref()
                .map(|s| (keys.seal(&domain, Purpose::WebhookSecret, s), last4(s))),
        };
        let front = &self.inner.front;
        let mut tx = self.pool().begin().await?;
        let row = store::insert_shop(&mut tx, &shop).await?;
        let details =
            json!({ "name": row.name, "domain": row.domain, "api_version": row.api_version });
        let recorded = front
            .record(
                &mut tx,
                actor,
                "shop.add",
                Some(format!("shop:{}", row.id)),
                details,
            )
            .await?;
        recorded.commit(tx).await?;
        Ok(row)
    }

    pub async fn shops(&self) -> Result<Vec<ShopRow>> {
        store::list_shops(self.pool()).await
    }

    pub async fn shop(&self, id: i64) -> Result<ShopRow> {
        store::get_shop(self.pool(), id)
            .await?
            .ok_or_else(|| StoreError::not_found(format!("shop {id}")))
    }

    /// A shop by its id or its name.
    pub async fn find_shop(&self, id_or_name: &str) -> Result<ShopRow> {
        let found = match id_or_name.parse::<i64>() {
            Ok(id) => store::get_shop(self.pool(), id).await?,
            Err(_) => store::get_shop_by_name(self.pool(), id_or_name).await?,
        };
        found.ok_or_else(|| StoreError::not_found(format!("shop {id_or_name:?}")))
    }

    /// Changes a shop (a new token makes an unauthorized shop active again); audited as
    /// `shop.update` (which fields, never their values).
    pub async fn update_shop(&self, actor: &Actor, id: i64, update: ShopUpdate) -> Result<ShopRow> {
        if let Some(v) = &update.api_version
            && !valid_version(v)
        {
            return Err(StoreError::invalid(
                "api_version",
                format!("is {v:?}; it must look like 2026-10"),
            ));
        }
        if let Some(url) = &update.admin_url {
            check_url(url.as_deref())?;
        }
        let shop = self.shop(id).await?;
        let keys = &self.inner.keys;
        let seal = |s: &SecretString, p| (keys.seal(&shop.domain, p, s), last4(s));
        let patch = ShopPatch {
            api_version: update.api_version.clone(),
            admin_url: update.admin_url.clone(),
            token: update
                .access_token
                .as_ref()
                .map(|s| seal(s, Purpose::AccessToken)),
            webhook: update
                .webhook_secret
                .as_ref()
                .map(|s| seal(s, Purpose::WebhookSecret)),
        };
        let changed: Vec<&str> = [
            ("api_version", update.api_version.is_some()),
            ("admin_url", update.admin_url.is_some()),
            ("access_token", update.access_token.is_some()),
            ("webhook_secret", update.webhook_secret.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, c)| c.then_some(f))
        .collect();
        let mut tx = self.pool().begin().await?;
        let row = store::update_shop(&mut tx, id, &patch).await?;
        let recorded = self
            .inner
            .front
            .record(
                &mut tx,
                actor,
                "shop.update",
                Some(format!("shop:{id}")),
                json!({ "changed": changed }),
            )
            .await?;
        recorded.commit(tx).await?;
        self.forget_bucket(id);
        Ok(row)
    }

    /// Deletes a shop with its catalog and pulls; audited as `shop.delete`.
    pub async fn delete_shop(&self, actor: &Actor, id: i64) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        store::delete_shop(&mut tx, id).await?;
        let recorded = self
            .inner
            .front
            .record(
                &mut tx,
                actor,
                "shop.delete",
                Some(format!("shop:{id}")),
                json!({}),
            )
            .await?;
        recorded.commit(tx).await?;
        self.forget_bucket(id);
        Ok(())
    }

    /// Re-seals every shop's secrets under the active key (after adding a new key and making it
    /// active); returns how many shops were re-sealed. Audited as `secrets.rotate`.
    pub async fn rotate_secrets(&self, actor: &Actor) -> Result<u64> {
        let keys = &self.inner.keys;
        let mut rotated = 0;
        for shop in store::list_shops(self.pool()).await? {
            let webhook_on_active = shop
                .webhook
                .as_ref()
                .is_none_or(|w| w.key == keys.active_key());
            if shop.token.key == keys.active_key() && webhook_on_active {
                continue;
            }
            let open = |p, s| {
                keys.open(&shop.domain, p, s).map_err(|e| {
                    StoreError::invalid("catalog.secret_keys", format!("shop {}: {e}", shop.name))
                })
            };
            let token = open(Purpose::AccessToken, &shop.token)?;
            let new_token = keys.seal(&shop.domain, Purpose::AccessToken, &token);
            let webhook = match &shop.webhook {
                Some(w) => {
                    let secret = open(Purpose::WebhookSecret, w)?;
                    Some((w, keys.seal(&shop.domain, Purpose::WebhookSecret, &secret)))
                }
                None => None,
            };
            if store::reseal_shop(
                self.pool(),
                shop.id,
                &shop.token,
                &new_token,
                webhook.as_ref().map(|(old, new)| (*old, new)),
            )
            .await?
            {
                rotated += 1;
            }
        }
        let mut tx = self.pool().begin().await?;
        let details = json!({ "shops": rotated, "key": keys.active_key() });
        let recorded = self
            .inner
            .front
            .record(&mut tx, actor, "secrets.rotate", None, details)
            .await?;
        recorded.commit(tx).await?;
        Ok(rotated)
    }

    /// A Shopify client for `shop`, pacing against the shop's one bucket in this process.
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
        let bucket = self
            .inner
            .buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(shop.id)
            .or_insert_with(|| Arc::new(LocalBucket::new()))
            .clone();
        let config = ClientConfig::new(base, &shop.api_version, token.expose_secret());
        Client::with_bucket(config, bucket).map_err(|e| e.to_string())
    }

    fn forget_bucket(&self, shop_id: i64) {
        self.inner
            .buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&shop_id);
    }

    // ---- pulls ----

    /// Starts a pull of `shop_id`'s catalog: the pull's row and its job in one transaction,
    /// audited as `shop.pull`. `Conflict` (details: the running pull) if one of that kind runs.
    pub async fn start_pull(&self, actor: &Actor, shop_id: i64, kind: PullKind) -> Result<PullRow> {
        let shop = self.shop(shop_id).await?;
        if shop.status == "unauthorized" {
            return Err(StoreError::conflict(format!(
                "shop {} is unauthorized ({}); replace its access token first",
                shop.name,
                shop.status_reason
                    .as_deref()
                    .unwrap_or("Shopify refused the token")
            )));
        }
        let front = &self.inner.front;
        let mut tx = self.pool().begin().await?;
        let mut pull = store::start_pull(&mut tx, shop_id, kind.as_str()).await?;
        let args = PullArgs {
            shop_id,
            pull_id: pull.id,
        };
        let queue =
            QueueName::new(QUEUE).map_err(|e| StoreError::invalid("queue", e.to_string()))?;
        let job = NewJob::new(queue, PULL_KIND, json!(args))
            .unique(cowans_queue::Unique::key(format!("pull:{}", pull.id)));
        let enqueued = front.enqueue_in(&mut *tx, &job).await?;
        store::set_pull_job(&mut tx, pull.id, enqueued.id.0).await?;
        pull.job_id = Some(enqueued.id.0);
        let details = json!({ "kind": kind.as_str(), "pull_id": pull.id, "job_id": enqueued.id.0 });
        let recorded = front
            .record(
                &mut tx,
                actor,
                "shop.pull",
                Some(format!("shop:{shop_id}")),
                details,
            )
            .await?;
        recorded.commit(tx).await?;
        Ok(pull)
    }

    pub async fn pull(&self, id: i64) -> Result<PullRow> {
        store::get_pull(self.pool(), id)
            .await?
            .ok_or_else(|| StoreError::not_found(format!("pull {id}")))
    }

    /// A shop's pulls, newest first.
    pub async fn pulls(&self, shop_id: i64, limit: i64) -> Result<Vec<PullRow>> {
        store::list_pulls(self.pool(), shop_id, limit).await
    }

    // ---- the catalog ----

    /// A page of a shop's products (id order after `after`), each with its variants.
    pub async fn products(
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

fn check_url(url: Option<&str>) -> Result<()> {
    match url {
        Some(u) if !(u.starts_with("https://") || u.starts_with("http://")) || u.len() > 2048 => {
            Err(StoreError::invalid(
                "admin_url",
                "must be an http(s) URL (the Admin API's base, e.g. http://127.0.0.1:8090)",
            ))
        }
        _ => Ok(()),
    }
}
