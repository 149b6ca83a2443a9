//! Shops: their rows, with secrets sealed by the caller.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use crate::{Result, StoreError};

/// A secret sealed by the caller (AES-256-GCM): the key that sealed it, the nonce, the
/// ciphertext with its tag.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key: String,
    pub nonce: Vec<u8>,
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// A shop to add.
#[derive(Debug, Clone)]
pub struct NewShop {
    pub name: String,
    pub domain: String,
    pub api_version: String,
    pub admin_url: Option<String>,
    pub token: Sealed,
    pub token_last4: String,
    pub webhook: Option<(Sealed, String)>,
}

/// A stored shop.
#[derive(Debug, Clone)]
pub struct ShopRow {
    pub id: i64,
    pub name: String,
    pub domain: String,
    pub api_version: String,
    pub admin_url: Option<String>,
    pub token: Sealed,
    pub token_last4: String,
    pub webhook: Option<Sealed>,
    pub webhook_last4: Option<String>,
    /// `active` or `unauthorized`.
    pub status: String,
    pub status_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub incremental_from: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct ShopDbRow {
    id: i64,
    name: String,
    domain: String,
    api_version: String,
    admin_url: Option<String>,
    token_key: String,
    token_nonce: Vec<u8>,
    token_sealed: Vec<u8>,
    token_last4: String,
    webhook_key: Option<String>,
    webhook_nonce: Option<Vec<u8>>,
    webhook_sealed: Option<Vec<u8>>,
    webhook_last4: Option<String>,
    status: String,
    status_reason: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    incremental_from: Option<DateTime<Utc>>,
}

impl From<ShopDbRow> for ShopRow {
    fn from(r: ShopDbRow) -> Self {
        let webhook = match (r.webhook_key, r.webhook_nonce, r.webhook_sealed) {
            (Some(key), Some(nonce), Some(sealed)) => Some(Sealed { key, nonce, sealed }),
            _ => None,
        };
        ShopRow {
            id: r.id,
            name: r.name,
            domain: r.domain,
            api_version: r.api_version,
            admin_url: r.admin_url,
            token: Sealed {
                key: r.token_key,
                nonce: r.token_nonce,
                sealed: r.token_sealed,
            },
            token_last4: r.token_last4,
            webhook,
            webhook_last4: r.webhook_last4,
            status: r.status,
            status_reason: r.status_reason,
            created_at: r.created_at,
            updated_at: r.updated_at,
            incremental_from: r.incremental_from,
        }
    }
}

macro_rules! shop_columns {
    () => {
        "id, name, domain, api_version, admin_url, token_key, token_nonce, token_sealed, token_last4, \
         webhook_key, webhook_nonce, webhook_sealed, webhook_last4, status, status_reason, \
         created_at, updated_at, incremental_from"
    };
}

/// The shop with a unique `name` or `domain` that already exists, as a conflict.
fn shop_taken(e: sqlx::Error, name: &str, domain: &str) -> StoreError {
    match StoreError::from(e) {
        StoreError::Conflict { .. } => StoreError::conflict(format!(
            "a shop named {name:?} or with the domain {domain:?} already exists"
        )),
        StoreError::Invalid { .. } => StoreError::invalid(
            "name",
            "must be 1 to 63 of a-z, 0-9, '-' and '_', starting with a letter or digit",
        ),
        other => other,
    }
}

pub async fn insert_shop(conn: &mut PgConnection, shop: &NewShop) -> Result<ShopRow> {
    let (webhook, webhook_last4) = match &shop.webhook {
        Some((s, last4)) => (Some(s), Some(last4.as_str())),
        None => (None, None),
    };
    let row: ShopDbRow = sqlx::query_as(concat!(
        "INSERT INTO cowans_shops (name, domain, api_version, admin_url, token_key, token_nonce, \
         token_sealed, token_last4, webhook_key, webhook_nonce, webhook_sealed, webhook_last4) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING ",
        shop_columns!()
    ))
    .bind(&shop.name)
    .bind(&shop.domain)
    .bind(&shop.api_version)
    .bind(&shop.admin_url)
    .bind(&shop.token.key)
    .bind(&shop.token.nonce)
    .bind(&shop.token.sealed)
    .bind(&shop.token_last4)
    .bind(webhook.map(|w| &w.key))
    .bind(webhook.map(|w| &w.nonce))
    .bind(webhook.map(|w| &w.sealed))
    .bind(webhook_last4)
    .fetch_one(conn)
    .await
    .map_err(|e| shop_taken(e, &shop.name, &shop.domain))?;
    Ok(row.into())
}

pub async fn get_shop(pool: &PgPool, id: i64) -> Result<Option<ShopRow>> {
    let row: Option<ShopDbRow> = sqlx::query_as(concat!(
        "SELECT ",
        shop_columns!(),
        " FROM cowans_shops WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Into::into))
}

pub async fn get_shop_by_name(pool: &PgPool, name: &str) -> Result<Option<ShopRow>> {
    let row: Option<ShopDbRow> = sqlx::query_as(concat!(
        "SELECT ",
        shop_columns!(),
        " FROM cowans_shops WHERE name = $1"
    ))
    .bind(name)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Into::into))
}

pub async fn get_shop_by_domain(pool: &PgPool, domain: &str) -> Result<Option<ShopRow>> {
    let row: Option<ShopDbRow> = sqlx::query_as(concat!(
        "SELECT ",
        shop_columns!(),
        " FROM cowans_shops WHERE domain = $1"
    ))
    .bind(domain)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Into::into))
}

pub async fn list_shops<'e>(conn: impl sqlx::PgExecutor<'e>) -> Result<Vec<ShopRow>> {
    let rows: Vec<ShopDbRow> = sqlx::query_as(concat!(
        "SELECT ",
        shop_columns!(),
        " FROM cowans_shops ORDER BY id"
    ))
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// What a shop update changes (`None`: left as is). A new token makes an unauthorized shop
/// active again.
#[derive(Debug, Clone, Default)]
pub struct ShopPatch {
    pub api_version: Option<String>,
    pub admin_url: Option<Option<String>>,
    pub token: Option<(Sealed, String)>,
    pub webhook: Option<(Sealed, String)>,
}

pub async fn update_shop(conn: &mut PgConnection, id: i64, patch: &ShopPatch) -> Result<ShopRow> {
    let token = patch.token.as_ref();
    let webhook = patch.webhook.as_ref();
    let row: Option<ShopDbRow> = sqlx::query_as(concat!(
        "UPDATE cowans_shops SET \
           api_version = coalesce($2, api_version), \
           admin_url = CASE WHEN $3 THEN $4 ELSE admin_url END, \
           token_key = coalesce($5, token_key), token_nonce = coalesce($6, token_nonce), \
           token_sealed = coalesce($7, token_sealed), token_last4 = coalesce($8, token_last4), \
           status = CASE WHEN $5 IS NOT NULL THEN 'active' ELSE status END, \
           status_reason = CASE WHEN $5 IS NOT NULL THEN NULL ELSE status_reason END, \
           webhook_key = coalesce($9, webhook_key), webhook_nonce = coalesce($10, webhook_nonce), \
           webhook_sealed = coalesce($11, webhook_sealed), webhook_last4 = coalesce($12, webhook_last4), \
           updated_at = now() \
         WHERE id = $1 RETURNING ",
        shop_columns!()
    ))
    .bind(id)
    .bind(&patch.api_version)
    .bind(patch.admin_url.is_some())
    .bind(patch.admin_url.clone().flatten())
    .bind(token.map(|(s, _)| &s.key))
    .bind(token.map(|(s, _)| &s.nonce))
    .bind(token.map(|(s, _)| &s.sealed))
    .bind(token.map(|(_, l)| l))
    .bind(webhook.map(|(s, _)| &s.key))
    .bind(webhook.map(|(s, _)| &s.nonce))
    .bind(webhook.map(|(s, _)| &s.sealed))
    .bind(webhook.map(|(_, l)| l))
    .fetch_optional(conn)
    .await?;
    row.map(Into::into)
        .ok_or_else(|| StoreError::not_found(format!("shop {id}")))
}

/// Replaces sealed secrets with ones sealed under another key (key rotation); fenced by the
/// old ciphertext so a concurrent token change is not undone. Returns whether it applied.
pub async fn reseal_shop(
    conn: &mut sqlx::PgConnection,
    id: i64,
    old_token: &Sealed,
    token: &Sealed,
    webhook: Option<(&Sealed, &Sealed)>,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE cowans_shops SET token_key = $3, token_nonce = $4, token_sealed = $5, \
           webhook_key = coalesce($7, webhook_key), webhook_nonce = coalesce($8, webhook_nonce), \
           webhook_sealed = coalesce($9, webhook_sealed), updated_at = now() \
         WHERE id = $1 AND token_sealed = $2 AND ($6::bytea IS NULL OR webhook_sealed = $6)",
    )
    .bind(id)
    .bind(&old_token.sealed)
    .bind(&token.key)
    .bind(&token.nonce)
    .bind(&token.sealed)
    .bind(webhook.map(|(old, _)| &old.sealed))
    .bind(webhook.map(|(_, new)| &new.key))
    .bind(webhook.map(|(_, new)| &new.nonce))
    .bind(webhook.map(|(_, new)| &new.sealed))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes a shop and its catalog and pulls.
pub async fn delete_shop(conn: &mut PgConnection, id: i64) -> Result<()> {
    let done = sqlx::query("DELETE FROM cowans_shops WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::not_found(format!("shop {id}")));
    }
    Ok(())
}

/// Marks a shop `unauthorized` (Shopify refused its token) with the reason, or `active`.
pub async fn set_shop_status(
    pool: &PgPool,
    id: i64,
    status: &str,
    reason: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE cowans_shops SET status = $2, status_reason = $3, updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(reason)
    .execute(pool)
    .await?;
    Ok(())
}
