//! The catalog application's statements: shops (secrets sealed by the caller), pulls, and the
//! local catalog of products and variants.
//!
//! Freshness: Shopify's `updatedAt` orders the snapshots of one product. An upsert replaces a
//! stored product only with a snapshot at least as new, and a product's variants move with it
//! (they are written only when their product's stored snapshot is the one they came with).
//! Deletions win over any view that started before them.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{Acquire, PgConnection, PgPool};

use crate::{Result, StoreError};

/// The migrations of the catalog's tables (`migrations/catalog/`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate::Migrator {
    ignore_missing: true,
    ..sqlx::migrate!("../../migrations/catalog")
};

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

pub async fn list_shops(pool: &PgPool) -> Result<Vec<ShopRow>> {
    let rows: Vec<ShopDbRow> = sqlx::query_as(concat!(
        "SELECT ",
        shop_columns!(),
        " FROM cowans_shops ORDER BY id"
    ))
    .fetch_all(pool)
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
    pool: &PgPool,
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
    .execute(pool)
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

/// A pull of a shop's catalog.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PullRow {
    pub id: i64,
    pub shop_id: i64,
    /// `full` or `incremental`.
    pub kind: String,
    /// `running`, `completed` or `failed`.
    pub state: String,
    pub job_id: Option<i64>,
    pub bulk_operation: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub lines: i64,
    pub products: i64,
    pub variants: i64,
    pub deleted: i64,
    pub error: Option<String>,
}

macro_rules! pull_columns {
    () => {
        "id, shop_id, kind, state, job_id, bulk_operation, started_at, finished_at, lines, \
         products, variants, deleted, error"
    };
}

/// Records a new running pull; [`StoreError::Conflict`] (details: the running pull's id) if one
/// of that kind is already running for the shop.
pub async fn start_pull(conn: &mut PgConnection, shop_id: i64, kind: &str) -> Result<PullRow> {
    let mut tx = conn.begin().await?;
    let inserted: std::result::Result<PullRow, sqlx::Error> = sqlx::query_as(concat!(
        "INSERT INTO cowans_pulls (shop_id, kind) VALUES ($1, $2) RETURNING ",
        pull_columns!()
    ))
    .bind(shop_id)
    .bind(kind)
    .fetch_one(&mut *tx)
    .await;
    match inserted {
        Ok(row) => {
            tx.commit().await?;
            Ok(row)
        }
        Err(e) => match StoreError::from(e) {
            StoreError::Conflict { .. } => {
                drop(tx);
                let running: Option<i64> = sqlx::query_scalar(
                    "SELECT id FROM cowans_pulls WHERE shop_id = $1 AND kind = $2 AND state = 'running'",
                )
                .bind(shop_id)
                .bind(kind)
                .fetch_optional(&mut *conn)
                .await?;
                Err(StoreError::Conflict {
                    message: format!("a {kind} pull of this shop is already running"),
                    details: serde_json::json!({ "pull_id": running }),
                })
            }
            other => Err(other),
        },
    }
}

/// Links a pull to the job that runs it.
pub async fn set_pull_job(conn: &mut PgConnection, pull_id: i64, job_id: i64) -> Result<()> {
    sqlx::query("UPDATE cowans_pulls SET job_id = $2 WHERE id = $1")
        .bind(pull_id)
        .bind(job_id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn get_pull(pool: &PgPool, id: i64) -> Result<Option<PullRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        pull_columns!(),
        " FROM cowans_pulls WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// A pull, inside the caller's transaction.
pub async fn get_pull_in(conn: &mut PgConnection, id: i64) -> Result<Option<PullRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        pull_columns!(),
        " FROM cowans_pulls WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// A shop's pulls, newest first.
pub async fn list_pulls(pool: &PgPool, shop_id: i64, limit: i64) -> Result<Vec<PullRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        pull_columns!(),
        " FROM cowans_pulls WHERE shop_id = $1 ORDER BY id DESC LIMIT $2"
    ))
    .bind(shop_id)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn set_pull_bulk_operation(pool: &PgPool, pull_id: i64, operation: &str) -> Result<()> {
    sqlx::query("UPDATE cowans_pulls SET bulk_operation = $2 WHERE id = $1")
        .bind(pull_id)
        .bind(operation)
        .execute(pool)
        .await?;
    Ok(())
}

/// A running pull's counters so far.
pub async fn record_pull_progress(
    pool: &PgPool,
    pull_id: i64,
    lines: i64,
    products: i64,
    variants: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE cowans_pulls SET lines = $2, products = $3, variants = $4 WHERE id = $1 AND state = 'running'",
    )
    .bind(pull_id)
    .bind(lines)
    .bind(products)
    .bind(variants)
    .execute(pool)
    .await?;
    Ok(())
}

/// Ends a pull as `completed` or `failed`; returns false if it had already ended.
pub async fn finish_pull(
    conn: &mut PgConnection,
    pull_id: i64,
    failed: Option<&str>,
    deleted: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE cowans_pulls SET state = CASE WHEN $2::text IS NULL THEN 'completed' ELSE 'failed' END, \
           error = $2, deleted = $3, finished_at = now() WHERE id = $1 AND state = 'running'",
    )
    .bind(pull_id)
    .bind(failed)
    .bind(deleted)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Where incremental pulls of a shop resume.
pub async fn set_incremental_from(pool: &PgPool, shop_id: i64, from: DateTime<Utc>) -> Result<()> {
    sqlx::query(
        "UPDATE cowans_shops SET incremental_from = greatest(coalesce(incremental_from, $2), $2) WHERE id = $1",
    )
    .bind(shop_id)
    .bind(from)
    .execute(pool)
    .await?;
    Ok(())
}

/// A product as Shopify last showed it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductSnapshot {
    pub id: i64,
    pub title: String,
    pub handle: String,
    pub description_html: String,
    pub vendor: String,
    pub product_type: String,
    pub status: String,
    pub tags: Vec<String>,
    /// `[{"name", "position", "values"}]`.
    pub options: Value,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// A variant as Shopify last showed it, with the `updatedAt` of the product snapshot it came
/// with.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantSnapshot {
    pub id: i64,
    pub product_id: i64,
    pub product_updated_at: DateTime<Utc>,
    pub title: String,
    pub position: i32,
    pub sku: Option<String>,
    pub barcode: Option<String>,
    /// Decimal strings, as Shopify sends them.
    pub price: String,
    pub compare_at_price: Option<String>,
    pub inventory_quantity: Option<i32>,
    pub inventory_item_id: Option<i64>,
    pub weight: Option<String>,
    pub weight_unit: Option<String>,
    /// `[{"name", "value"}]`.
    pub option_values: Value,
}

/// Writes product snapshots; a stored product is replaced only by a snapshot at least as new
/// (`updatedAt`). `pull`: the full pull writing them and when it started — a deletion recorded
/// after that start wins over the pull's view. Returns how many were written.
pub async fn upsert_products(
    conn: &mut PgConnection,
    shop_id: i64,
    pull: Option<(i64, DateTime<Utc>)>,
    products: &[ProductSnapshot],
) -> Result<u64> {
    if products.is_empty() {
        return Ok(0);
    }
    let n = products.len();
    let (mut ids, mut titles, mut handles, mut descs, mut vendors, mut types, mut statuses) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut tags, mut options, mut created, mut updated) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for p in products {
        ids.push(p.id);
        titles.push(p.title.as_str());
        handles.push(p.handle.as_str());
        descs.push(p.description_html.as_str());
        vendors.push(p.vendor.as_str());
        types.push(p.product_type.as_str());
        statuses.push(p.status.as_str());
        tags.push(serde_json::to_string(&p.tags).unwrap_or_else(|_| "[]".into()));
        options.push(p.options.to_string());
        created.push(p.created_at);
        updated.push(p.updated_at);
    }
    let done = sqlx::query(
        "INSERT INTO cowans_products AS p (shop_id, id, title, handle, description_html, vendor, \
           product_type, status, tags, options, shopify_created_at, shopify_updated_at, synced_at, pull_id) \
         SELECT $1, t.id, t.title, t.handle, t.description_html, t.vendor, t.product_type, t.status, \
           ARRAY(SELECT jsonb_array_elements_text(t.tags::jsonb)), t.options::jsonb, t.created_at, \
           t.updated_at, now(), $2 \
         FROM unnest($4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], \
           $10::text[], $11::text[], $12::text[], $13::timestamptz[], $14::timestamptz[]) \
           AS t(id, title, handle, description_html, vendor, product_type, status, tags, options, \
           created_at, updated_at) \
         ON CONFLICT (shop_id, id) DO UPDATE SET title = EXCLUDED.title, handle = EXCLUDED.handle, \
           description_html = EXCLUDED.description_html, vendor = EXCLUDED.vendor, \
           product_type = EXCLUDED.product_type, status = EXCLUDED.status, tags = EXCLUDED.tags, \
           options = EXCLUDED.options, \
           shopify_created_at = coalesce(EXCLUDED.shopify_created_at, p.shopify_created_at), \
           shopify_updated_at = EXCLUDED.shopify_updated_at, synced_at = now(), \
           pull_id = coalesce(EXCLUDED.pull_id, p.pull_id), \
           deleted_at = CASE WHEN p.deleted_at IS NOT NULL AND ($3::timestamptz IS NULL OR p.deleted_at >= $3) \
             THEN p.deleted_at END \
         WHERE EXCLUDED.shopify_updated_at >= p.shopify_updated_at",
    )
    .bind(shop_id)
    .bind(pull.map(|(id, _)| id))
    .bind(pull.map(|(_, at)| at))
    .bind(ids)
    .bind(titles)
    .bind(handles)
    .bind(descs)
    .bind(vendors)
    .bind(types)
    .bind(statuses)
    .bind(tags)
    .bind(options)
    .bind(created)
    .bind(updated)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Writes variant snapshots that belong to the product snapshot now stored (a variant of an
/// older snapshot than its product's is skipped). Returns how many were written.
pub async fn upsert_variants(
    conn: &mut PgConnection,
    shop_id: i64,
    pull_id: Option<i64>,
    variants: &[VariantSnapshot],
) -> Result<u64> {
    if variants.is_empty() {
        return Ok(0);
    }
    let col = |f: fn(&VariantSnapshot) -> Option<&str>| -> Vec<Option<&str>> {
        variants.iter().map(f).collect()
    };
    let done = sqlx::query(
        "INSERT INTO cowans_variants AS v (shop_id, id, product_id, title, position, sku, barcode, \
           price, compare_at_price, inventory_quantity, inventory_item_id, weight, weight_unit, \
           option_values, pull_id) \
         SELECT $1, t.id, t.product_id, t.title, t.position, t.sku, t.barcode, t.price::numeric, \
           t.compare_at_price::numeric, t.inventory_quantity, t.inventory_item_id, t.weight::numeric, \
           t.weight_unit, t.option_values::jsonb, $2 \
         FROM unnest($3::bigint[], $4::bigint[], $5::timestamptz[], $6::text[], $7::integer[], \
           $8::text[], $9::text[], $10::text[], $11::text[], $12::integer[], $13::bigint[], \
           $14::text[], $15::text[], $16::text[]) \
           AS t(id, product_id, product_updated_at, title, position, sku, barcode, price, \
           compare_at_price, inventory_quantity, inventory_item_id, weight, weight_unit, option_values) \
         JOIN cowans_products p ON p.shop_id = $1 AND p.id = t.product_id \
           AND p.shopify_updated_at = t.product_updated_at \
         ON CONFLICT (shop_id, id) DO UPDATE SET product_id = EXCLUDED.product_id, \
           title = EXCLUDED.title, position = EXCLUDED.position, sku = EXCLUDED.sku, \
           barcode = EXCLUDED.barcode, price = EXCLUDED.price, \
           compare_at_price = EXCLUDED.compare_at_price, \
           inventory_quantity = EXCLUDED.inventory_quantity, \
           inventory_item_id = EXCLUDED.inventory_item_id, weight = EXCLUDED.weight, \
           weight_unit = EXCLUDED.weight_unit, option_values = EXCLUDED.option_values, \
           pull_id = coalesce(EXCLUDED.pull_id, v.pull_id)",
    )
    .bind(shop_id)
    .bind(pull_id)
    .bind(variants.iter().map(|v| v.id).collect::<Vec<_>>())
    .bind(variants.iter().map(|v| v.product_id).collect::<Vec<_>>())
    .bind(variants.iter().map(|v| v.product_updated_at).collect::<Vec<_>>())
    .bind(col(|v| Some(&v.title)))
    .bind(variants.iter().map(|v| v.position).collect::<Vec<_>>())
    .bind(col(|v| v.sku.as_deref()))
    .bind(col(|v| v.barcode.as_deref()))
    .bind(col(|v| Some(&v.price)))
    .bind(col(|v| v.compare_at_price.as_deref()))
    .bind(variants.iter().map(|v| v.inventory_quantity).collect::<Vec<_>>())
    .bind(variants.iter().map(|v| v.inventory_item_id).collect::<Vec<_>>())
    .bind(col(|v| v.weight.as_deref()))
    .bind(col(|v| v.weight_unit.as_deref()))
    .bind(
        variants
            .iter()
            .map(|v| v.option_values.to_string())
            .collect::<Vec<_>>(),
    )
    .execute(conn)
    .await
    .map_err(|e| match StoreError::from(e) {
        StoreError::Invalid { .. } => StoreError::invalid(
            "variants",
            "a price, compare-at price or weight is not a decimal number",
        ),
        other => other,
    })?;
    Ok(done.rows_affected())
}

/// For products whose stored snapshot is one of `products` (`(id, updatedAt)`): removes the
/// variants that snapshot does not list (Shopify deleted them). Returns how many.
pub async fn prune_variants(
    conn: &mut PgConnection,
    shop_id: i64,
    products: &[(i64, DateTime<Utc>)],
    kept: &[i64],
) -> Result<u64> {
    if products.is_empty() {
        return Ok(0);
    }
    let (ids, updated): (Vec<i64>, Vec<DateTime<Utc>>) = products.iter().copied().unzip();
    let done = sqlx::query(
        "DELETE FROM cowans_variants v USING cowans_products p, \
           unnest($2::bigint[], $3::timestamptz[]) AS t(id, updated_at) \
         WHERE p.shop_id = $1 AND p.id = t.id AND p.shopify_updated_at = t.updated_at \
           AND v.shop_id = $1 AND v.product_id = t.id AND NOT (v.id = ANY($4))",
    )
    .bind(shop_id)
    .bind(ids)
    .bind(updated)
    .bind(kept)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// After a full pull: products the pull did not see, and that nothing touched since it started,
/// are marked deleted; variants of products the pull rewrote that it did not see are removed.
/// Returns the products marked deleted.
pub async fn sweep_after_full_pull(
    conn: &mut PgConnection,
    shop_id: i64,
    pull_id: i64,
    started_at: DateTime<Utc>,
) -> Result<u64> {
    let deleted = sqlx::query(
        "UPDATE cowans_products SET deleted_at = now() \
         WHERE shop_id = $1 AND deleted_at IS NULL AND pull_id IS DISTINCT FROM $2 AND synced_at < $3",
    )
    .bind(shop_id)
    .bind(pull_id)
    .bind(started_at)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "DELETE FROM cowans_variants v USING cowans_products p \
         WHERE v.shop_id = $1 AND p.shop_id = $1 AND p.id = v.product_id AND p.pull_id = $2 \
           AND v.pull_id IS DISTINCT FROM $2 AND p.synced_at >= $3",
    )
    .bind(shop_id)
    .bind(pull_id)
    .bind(started_at)
    .execute(&mut *conn)
    .await?;
    Ok(deleted.rows_affected())
}

/// Marks a product deleted (a `products/delete` webhook, or the reconciliation).
pub async fn mark_product_deleted(pool: &PgPool, shop_id: i64, id: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE cowans_products SET deleted_at = now(), synced_at = now() \
         WHERE shop_id = $1 AND id = $2 AND deleted_at IS NULL",
    )
    .bind(shop_id)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A stored product.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
pub struct ProductRow {
    pub shop_id: i64,
    pub id: i64,
    pub title: String,
    pub handle: String,
    pub description_html: String,
    pub vendor: String,
    pub product_type: String,
    pub status: String,
    pub tags: Vec<String>,
    pub options: Value,
    pub shopify_created_at: Option<DateTime<Utc>>,
    pub shopify_updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub synced_at: DateTime<Utc>,
}

/// A stored variant (decimals as text, exactly as stored).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
pub struct VariantRow {
    pub id: i64,
    pub product_id: i64,
    pub title: String,
    pub position: i32,
    pub sku: Option<String>,
    pub barcode: Option<String>,
    pub price: String,
    pub compare_at_price: Option<String>,
    pub inventory_quantity: Option<i32>,
    pub inventory_item_id: Option<i64>,
    pub weight: Option<String>,
    pub weight_unit: Option<String>,
    pub option_values: Value,
}

macro_rules! product_columns {
    () => {
        "p.shop_id, p.id, p.title, p.handle, p.description_html, p.vendor, p.product_type, p.status, \
         p.tags, p.options, p.shopify_created_at, p.shopify_updated_at, p.deleted_at, p.synced_at"
    };
}

macro_rules! variant_columns {
    () => {
        "v.id, v.product_id, v.title, v.position, v.sku, v.barcode, v.price::text AS price, \
         v.compare_at_price::text AS compare_at_price, v.inventory_quantity, v.inventory_item_id, \
         v.weight::text AS weight, v.weight_unit, v.option_values"
    };
}

/// Which products a listing shows. Empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct ProductFilter {
    pub status: Option<String>,
    pub vendor: Option<String>,
    pub product_type: Option<String>,
    pub tag: Option<String>,
    pub sku: Option<String>,
    /// Words in the title or handle (case-insensitive).
    pub text: Option<String>,
    /// Deleted products too.
    pub include_deleted: bool,
}

/// A page of a shop's products in id order after `after`.
pub async fn list_products(
    pool: &PgPool,
    shop_id: i64,
    filter: &ProductFilter,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<ProductRow>> {
    let text = filter.text.as_deref().map(|t| {
        format!(
            "%{}%",
            t.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        )
    });
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        product_columns!(),
        " FROM cowans_products p WHERE p.shop_id = $1 AND p.id > $2 \
           AND ($3 OR p.deleted_at IS NULL) \
           AND ($4::text IS NULL OR p.status = $4) AND ($5::text IS NULL OR p.vendor = $5) \
           AND ($6::text IS NULL OR p.product_type = $6) AND ($7::text IS NULL OR p.tags @> ARRAY[$7]) \
           AND ($8::text IS NULL OR EXISTS (SELECT 1 FROM cowans_variants v \
                 WHERE v.shop_id = p.shop_id AND v.product_id = p.id AND v.sku = $8)) \
           AND ($9::text IS NULL OR p.title ILIKE $9 OR p.handle ILIKE $9) \
         ORDER BY p.id LIMIT $10"
    ))
    .bind(shop_id)
    .bind(after.unwrap_or(0))
    .bind(filter.include_deleted)
    .bind(&filter.status)
    .bind(&filter.vendor)
    .bind(&filter.product_type)
    .bind(&filter.tag)
    .bind(&filter.sku)
    .bind(text)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// The variants of these products, in (product, position) order.
pub async fn variants_of(pool: &PgPool, shop_id: i64, products: &[i64]) -> Result<Vec<VariantRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        variant_columns!(),
        " FROM cowans_variants v WHERE v.shop_id = $1 AND v.product_id = ANY($2) \
         ORDER BY v.product_id, v.position, v.id"
    ))
    .bind(shop_id)
    .bind(products)
    .fetch_all(pool)
    .await?)
}

pub async fn get_product(pool: &PgPool, shop_id: i64, id: i64) -> Result<Option<ProductRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        product_columns!(),
        " FROM cowans_products p WHERE p.shop_id = $1 AND p.id = $2"
    ))
    .bind(shop_id)
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// How many products (not deleted) and variants a shop's catalog holds.
pub async fn catalog_counts(pool: &PgPool, shop_id: i64) -> Result<(i64, i64)> {
    Ok(sqlx::query_as(
        "SELECT (SELECT count(*) FROM cowans_products WHERE shop_id = $1 AND deleted_at IS NULL), \
                (SELECT count(*) FROM cowans_variants v JOIN cowans_products p \
                   ON p.shop_id = v.shop_id AND p.id = v.product_id \
                 WHERE v.shop_id = $1 AND p.deleted_at IS NULL)",
    )
    .bind(shop_id)
    .fetch_one(pool)
    .await?)
}
