//! Shops: adding, changing and deleting them (their secrets sealed before anything is stored),
//! and re-sealing every secret under a new key.

use cowans_core::{Actor, cron::CronSchedule};
use cowans_queue::{StoreError, StoreResult as Result};
use cowans_store::{
    CronRow,
    catalog::{self as store, NewShop, ShopPatch, ShopRow},
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sqlx::PgConnection;

use crate::{
    Catalog, PullKind, QUEUE,
    secrets::{Purpose, last4},
};

/// The name of a shop's periodic pull of `kind` (a cron entry of the engine).
fn schedule_name(kind: PullKind, shop_id: i64) -> String {
    format!("{}:shop:{shop_id}", kind.job_kind())
}

/// Checks a cron schedule (UTC); `field` names it in the error.
pub(crate) fn check_schedule(field: &str, schedule: &str) -> Result<()> {
    CronSchedule::parse(schedule, "UTC")
        .map(|_| ())
        .map_err(|e| StoreError::invalid(field, e.to_string()))
}

/// Sets (or, with `None` or an empty one, removes) a shop's periodic pull of `kind`.
async fn set_schedule(
    conn: &mut PgConnection,
    shop_id: i64,
    kind: PullKind,
    schedule: Option<&str>,
) -> Result<()> {
    match schedule.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => {
            check_schedule(&format!("{}_schedule", kind.as_str()), s)?;
            let row = CronRow {
                name: schedule_name(kind, shop_id),
                schedule: s.to_owned(),
                timezone: "UTC".to_owned(),
                queue: QUEUE.to_owned(),
                kind: kind.job_kind().to_owned(),
                args: json!({ "shop_id": shop_id }),
                catch_up: 0,
                last_tick: None,
            };
            cowans_store::upsert_cron(&mut *conn, &row).await
        }
        None => cowans_store::delete_cron(&mut *conn, &schedule_name(kind, shop_id))
            .await
            .map(|_| ()),
    }
}

/// A shop's handle: what URLs and commands name it by, next to its numeric id.
fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    (1..=63).contains(&b.len())
        && b[0].is_ascii_lowercase() | b[0].is_ascii_digit()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
        && !b.iter().all(u8::is_ascii_digit)
}

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
    /// When its incremental pull runs (cron, UTC): `None` for `catalog.incremental_schedule`,
    /// empty for never.
    pub incremental_schedule: Option<String>,
}

/// What may change about a shop (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct ShopUpdate {
    pub api_version: Option<String>,
    pub admin_url: Option<Option<String>>,
    pub access_token: Option<SecretString>,
    pub webhook_secret: Option<SecretString>,
    /// A new schedule of its incremental pull (`Some(None)` or empty: never).
    pub incremental_schedule: Option<Option<String>>,
}

impl Catalog {
    /// Adds a shop (admin action, audited as `shop.add`).
    pub async fn add_shop(&self, actor: &Actor, req: ShopRequest) -> Result<ShopRow> {
        if !valid_name(&req.name) {
            return Err(StoreError::invalid(
                "name",
                format!(
                    "is {:?}; it must be 1 to 63 of a-z, 0-9, '-' and '_', start with a letter or digit, and not be all digits (ids are)",
                    req.name
                ),
            ));
        }
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
        let token = secret("access_token", &req.access_token)?;
        let webhook_secret = req
            .webhook_secret
            .as_ref()
            .map(|s| secret("webhook_secret", s))
            .transpose()?;
        let keys = &self.keys();
        let shop = NewShop {
            name: req.name.clone(),
            domain: domain.clone(),
            api_version: req.api_version,
            admin_url: req.admin_url,
            token: keys.seal(&domain, Purpose::AccessToken, &token),
            token_last4: last4(&token),
            webhook: webhook_secret
                .as_ref()
                .map(|s| (keys.seal(&domain, Purpose::WebhookSecret, s), last4(s))),
        };
        let front = &self.front();
        let mut tx = self.pool().begin().await?;
        let row = store::insert_shop(&mut tx, &shop).await?;
        let schedule = req
            .incremental_schedule
            .as_deref()
            .unwrap_or(&self.settings().incremental_schedule);
        set_schedule(&mut tx, row.id, PullKind::Incremental, Some(schedule)).await?;
        let reconcile = self.settings().reconcile_schedule.clone();
        set_schedule(&mut tx, row.id, PullKind::Reconcile, Some(&reconcile)).await?;
        self.enqueue_subscribe(&mut tx, row.id).await?;
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

    /// When a shop's pull of `kind` runs on its own (cron, UTC), if it does.
    pub async fn schedule(&self, shop_id: i64, kind: PullKind) -> Result<Option<String>> {
        Ok(
            cowans_store::get_cron(self.pool(), &schedule_name(kind, shop_id))
                .await?
                .map(|c| c.schedule),
        )
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

    /// Marks the shop `unauthorized` because Shopify refused its token (HTTP 401): its jobs stop
    /// until the token is replaced. Answers the reason a job dead-letters with.
    pub(crate) async fn token_refused(&self, shop_id: i64) -> Result<&'static str> {
        store::set_shop_status(
            self.pool(),
            shop_id,
            "unauthorized",
            Some("Shopify answered 401 to its access token"),
        )
        .await?;
        Ok(
            "Shopify refused the shop's access token (HTTP 401); shop marked unauthorized until the token is replaced",
        )
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
        if let Some(Some(s)) = &update.incremental_schedule
            && !s.trim().is_empty()
        {
            check_schedule("incremental_schedule", s)?;
        }
        let token = update
            .access_token
            .as_ref()
            .map(|s| secret("access_token", s))
            .transpose()?;
        let webhook_secret = update
            .webhook_secret
            .as_ref()
            .map(|s| secret("webhook_secret", s))
            .transpose()?;
        let shop = self.shop(id).await?;
        let keys = &self.keys();
        let seal = |s: &SecretString, p| (keys.seal(&shop.domain, p, s), last4(s));
        let patch = ShopPatch {
            api_version: update.api_version.clone(),
            admin_url: update.admin_url.clone(),
            token: token.as_ref().map(|s| seal(s, Purpose::AccessToken)),
            webhook: webhook_secret
                .as_ref()
                .map(|s| seal(s, Purpose::WebhookSecret)),
        };
        let changed: Vec<&str> = [
            ("api_version", update.api_version.is_some()),
            ("admin_url", update.admin_url.is_some()),
            ("access_token", update.access_token.is_some()),
            ("webhook_secret", update.webhook_secret.is_some()),
            (
                "incremental_schedule",
                update.incremental_schedule.is_some(),
            ),
        ]
        .into_iter()
        .filter_map(|(f, c)| c.then_some(f))
        .collect();
        let mut tx = self.pool().begin().await?;
        let row = store::update_shop(&mut tx, id, &patch).await?;
        if update.access_token.is_some() || update.admin_url.is_some() {
            // Another app (or another shop's endpoint) has its own bucket, and no webhook
            // subscriptions yet (Shopify drops them when an app is uninstalled).
            store::forget_budget(&mut tx, id).await?;
            self.enqueue_subscribe(&mut tx, id).await?;
        }
        if let Some(schedule) = &update.incremental_schedule {
            set_schedule(&mut tx, id, PullKind::Incremental, schedule.as_deref()).await?;
        }
        let recorded = self
            .front()
            .record(
                &mut tx,
                actor,
                "shop.update",
                Some(format!("shop:{id}")),
                json!({ "changed": changed }),
            )
            .await?;
        recorded.commit(tx).await?;
        self.webhook_secrets().clear();
        if update.access_token.is_some() || update.admin_url.is_some() {
            self.forget_redis_budget(id).await;
        }
        Ok(row)
    }

    /// Deletes a shop with its catalog and pulls; audited as `shop.delete`.
    pub async fn delete_shop(&self, actor: &Actor, id: i64) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        store::delete_shop(&mut tx, id).await?;
        set_schedule(&mut tx, id, PullKind::Incremental, None).await?;
        set_schedule(&mut tx, id, PullKind::Reconcile, None).await?;
        let recorded = self
            .front()
            .record(
                &mut tx,
                actor,
                "shop.delete",
                Some(format!("shop:{id}")),
                json!({}),
            )
            .await?;
        recorded.commit(tx).await?;
        self.webhook_secrets().clear();
        Ok(())
    }

    /// Re-seals every shop's secrets under the active key (after adding a new key and making it
    /// active); returns how many shops were re-sealed. Audited as `secrets.rotate`.
    pub async fn rotate_secrets(&self, actor: &Actor) -> Result<u64> {
        let keys = &self.keys();
        let mut rotated = 0;
        // All or nothing, with its audit entry: a key that fails part-way rotates no shop.
        let mut tx = self.pool().begin().await?;
        for shop in store::list_shops(&mut *tx).await? {
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
            if !store::reseal_shop(
                &mut tx,
                shop.id,
                &shop.token,
                &new_token,
                webhook.as_ref().map(|(old, new)| (*old, new)),
            )
            .await?
            {
                return Err(StoreError::conflict(format!(
                    "shop {} changed while its secrets were being rotated; nothing was rotated, run it again",
                    shop.name
                )));
            }
            rotated += 1;
        }
        let details = json!({ "shops": rotated, "key": keys.active_key() });
        let recorded = self
            .front()
            .record(&mut tx, actor, "secrets.rotate", None, details)
            .await?;
        recorded.commit(tx).await?;
        Ok(rotated)
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

/// Shortest secret accepted (Shopify's tokens and webhook secrets are far longer; an empty or
/// tiny webhook secret would let anyone sign the shop's webhooks).
const MIN_SECRET: usize = 8;

/// `s` without surrounding whitespace, or `Invalid` naming `field` when it is too short.
fn secret(field: &'static str, s: &SecretString) -> Result<SecretString> {
    let trimmed = s.expose_secret().trim();
    if trimmed.chars().count() < MIN_SECRET {
        return Err(StoreError::invalid(
            field,
            format!("must be at least {MIN_SECRET} characters"),
        ));
    }
    Ok(SecretString::from(trimmed.to_owned()))
}
