//! The local catalog: products and variants as Shopify last showed them, newest wins.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};

use crate::{Result, StoreError};

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
    /// Available quantity by location (`{"<location id>": n}`); `None`: this read did not carry
    /// levels, the stored ones stay.
    pub inventory: Option<Value>,
}

/// Writes product snapshots; a stored product is replaced only by a snapshot at least as new
/// (`updatedAt`). `full_pull`: the full pull writing them (they are tagged with it; a product
/// written by anything else is untagged, so a full pull running meanwhile neither sweeps it nor
/// its variants). `view_since`: when the view the snapshots come from began — a product marked
/// deleted before it is live again (Shopify listed it), one marked deleted after it stays
/// deleted; without it a product marked deleted stays so. Returns how many were written.
pub async fn upsert_products(
    conn: &mut PgConnection,
    shop_id: i64,
    full_pull: Option<i64>,
    view_since: Option<DateTime<Utc>>,
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
           product_type, status, tags, options, shopify_created_at, shopify_updated_at, synced_at, \
           pull_id, seen_pull) \
         SELECT $1, t.id, t.title, t.handle, t.description_html, t.vendor, t.product_type, t.status, \
           ARRAY(SELECT jsonb_array_elements_text(t.tags::jsonb)), t.options::jsonb, t.created_at, \
           t.updated_at, now(), $2, $2 \
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
           pull_id = EXCLUDED.pull_id, seen_pull = coalesce(EXCLUDED.seen_pull, p.seen_pull), \
           deleted_at = CASE WHEN p.deleted_at IS NOT NULL AND ($3::timestamptz IS NULL OR p.deleted_at >= $3) \
             THEN p.deleted_at END \
         WHERE EXCLUDED.shopify_updated_at >= p.shopify_updated_at",
    )
    .bind(shop_id)
    .bind(full_pull)
    .bind(view_since)
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
    .execute(&mut *conn)
    .await?;
    let written = done.rows_affected();
    // A full pull saw the products it did not write (a newer snapshot is stored): its sweep
    // must not take them for deleted.
    if let Some(pull_id) = full_pull
        && written < n as u64
    {
        sqlx::query(
            "UPDATE cowans_products SET seen_pull = $2 \
             WHERE shop_id = $1 AND id = ANY($3) AND seen_pull IS DISTINCT FROM $2",
        )
        .bind(shop_id)
        .bind(pull_id)
        .bind(products.iter().map(|p| p.id).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    Ok(written)
}

/// Writes variant snapshots that belong to the product snapshot now stored (a variant of an
/// older snapshot than its product's is skipped). `keep_weights`: the snapshots do not carry
/// weights (webhook payloads), so stored ones stay. Returns how many were written.
pub async fn upsert_variants(
    conn: &mut PgConnection,
    shop_id: i64,
    pull_id: Option<i64>,
    variants: &[VariantSnapshot],
    keep_weights: bool,
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
           option_values, pull_id, inventory) \
         SELECT $1, t.id, t.product_id, t.title, t.position, t.sku, t.barcode, t.price::numeric, \
           t.compare_at_price::numeric, t.inventory_quantity, t.inventory_item_id, t.weight::numeric, \
           t.weight_unit, t.option_values::jsonb, $2, t.inventory::jsonb \
         FROM unnest($3::bigint[], $4::bigint[], $5::timestamptz[], $6::text[], $7::integer[], \
           $8::text[], $9::text[], $10::text[], $11::text[], $12::integer[], $13::bigint[], \
           $14::text[], $15::text[], $16::text[], $18::text[]) \
           AS t(id, product_id, product_updated_at, title, position, sku, barcode, price, \
           compare_at_price, inventory_quantity, inventory_item_id, weight, weight_unit, option_values, \
           inventory) \
         JOIN cowans_products p ON p.shop_id = $1 AND p.id = t.product_id \
           AND p.shopify_updated_at = t.product_updated_at \
         ON CONFLICT (shop_id, id) DO UPDATE SET product_id = EXCLUDED.product_id, \
           title = EXCLUDED.title, position = EXCLUDED.position, sku = EXCLUDED.sku, \
           barcode = EXCLUDED.barcode, price = EXCLUDED.price, \
           compare_at_price = EXCLUDED.compare_at_price, \
           inventory_quantity = EXCLUDED.inventory_quantity, \
           inventory_item_id = EXCLUDED.inventory_item_id, \
           weight = CASE WHEN $17 THEN v.weight ELSE EXCLUDED.weight END, \
           weight_unit = CASE WHEN $17 THEN v.weight_unit ELSE EXCLUDED.weight_unit END, \
           option_values = EXCLUDED.option_values, \
           pull_id = EXCLUDED.pull_id, \
           inventory = COALESCE(EXCLUDED.inventory, v.inventory)",
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
    .bind(keep_weights)
    .bind(
        variants
            .iter()
            .map(|v| v.inventory.as_ref().map(Value::to_string))
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
/// are marked deleted; variants of products the pull wrote (and nothing rewrote since) that it
/// did not list are removed.
/// Returns the products marked deleted.
pub async fn sweep_after_full_pull(
    conn: &mut PgConnection,
    shop_id: i64,
    pull_id: i64,
    started_at: DateTime<Utc>,
) -> Result<u64> {
    let deleted = sqlx::query(
        "UPDATE cowans_products SET deleted_at = now() \
         WHERE shop_id = $1 AND deleted_at IS NULL AND seen_pull IS DISTINCT FROM $2 AND synced_at < $3",
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
    /// Available quantity by location (`{"<location id>": n}`), if levels were read.
    pub inventory: Option<Value>,
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
         v.weight::text AS weight, v.weight_unit, v.option_values, v.inventory"
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
    let q = sqlx::query_as(concat!(
        "SELECT ",
        product_columns!(),
        " FROM cowans_products p WHERE ",
        product_filter!(),
        " ORDER BY p.id LIMIT $10"
    ));
    Ok(bind_product_filter(q, shop_id, filter, after)
        .bind(limit)
        .fetch_all(pool)
        .await?)
}

/// The conditions of a [`ProductFilter`] on `p`: parameters `$1` to `$9`, bound by
/// [`bind_product_filter`].
macro_rules! product_filter {
    () => {
        "p.shop_id = $1 AND p.id > $2 \
           AND ($3 OR p.deleted_at IS NULL) \
           AND ($4::text IS NULL OR p.status = $4) AND ($5::text IS NULL OR p.vendor = $5) \
           AND ($6::text IS NULL OR p.product_type = $6) AND ($7::text IS NULL OR p.tags @> ARRAY[$7]) \
           AND ($8::text IS NULL OR EXISTS (SELECT 1 FROM cowans_variants v \
                 WHERE v.shop_id = p.shop_id AND v.product_id = p.id AND v.sku = $8)) \
           AND ($9::text IS NULL OR p.title ILIKE $9 OR p.handle ILIKE $9)"
    };
}
use product_filter;

fn bind_product_filter<'q, O>(
    q: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    shop_id: i64,
    filter: &'q ProductFilter,
    after: Option<i64>,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    let text = filter.text.as_deref().map(|t| {
        format!(
            "%{}%",
            t.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        )
    });
    q.bind(shop_id)
        .bind(after.unwrap_or(0))
        .bind(filter.include_deleted)
        .bind(&filter.status)
        .bind(&filter.vendor)
        .bind(&filter.product_type)
        .bind(&filter.tag)
        .bind(&filter.sku)
        .bind(text)
}

/// The ids of the shop's products `filter` matches, in order.
pub async fn product_ids(pool: &PgPool, shop_id: i64, filter: &ProductFilter) -> Result<Vec<i64>> {
    let q = sqlx::query_as(concat!(
        "SELECT p.id FROM cowans_products p WHERE ",
        product_filter!(),
        " ORDER BY p.id"
    ));
    let ids: Vec<(i64,)> = bind_product_filter(q, shop_id, filter, None)
        .fetch_all(pool)
        .await?;
    Ok(ids.into_iter().map(|(id,)| id).collect())
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

/// Refreshes the planner's statistics of the catalog's tables. A pull that grows them from
/// empty calls it as they grow: plans made while they were nearly empty (sequential scans,
/// including the foreign-key checks' cached plans) would otherwise stay until autovacuum next
/// analyses them — never, where it is off.
pub async fn analyze_catalog(pool: &PgPool) -> Result<()> {
    sqlx::query("ANALYZE cowans_products, cowans_variants")
        .execute(pool)
        .await?;
    Ok(())
}

/// Every product of a shop: its id, Shopify's `updatedAt` of the stored snapshot, and whether
/// it is marked deleted (for the reconciliation).
pub async fn product_versions(
    pool: &PgPool,
    shop_id: i64,
) -> Result<Vec<(i64, DateTime<Utc>, bool)>> {
    Ok(sqlx::query_as(
        "SELECT id, shopify_updated_at, deleted_at IS NOT NULL FROM cowans_products WHERE shop_id = $1",
    )
    .bind(shop_id)
    .fetch_all(pool)
    .await?)
}

/// Marks these products deleted (a `products/delete` webhook; the reconciliation, which passes
/// `before` so that what something wrote since is spared); returns how many.
pub async fn mark_products_deleted(
    pool: &PgPool,
    shop_id: i64,
    ids: &[i64],
    before: Option<DateTime<Utc>>,
) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query(
        "UPDATE cowans_products SET deleted_at = now(), synced_at = now() \
         WHERE shop_id = $1 AND id = ANY($2) AND deleted_at IS NULL \
           AND ($3::timestamptz IS NULL OR synced_at < $3)",
    )
    .bind(shop_id)
    .bind(ids)
    .bind(before)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// These products of a shop (deleted ones too), in id order.
pub async fn products_by_id(pool: &PgPool, shop_id: i64, ids: &[i64]) -> Result<Vec<ProductRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        product_columns!(),
        " FROM cowans_products p WHERE p.shop_id = $1 AND p.id = ANY($2) ORDER BY p.id"
    ))
    .bind(shop_id)
    .bind(ids)
    .fetch_all(pool)
    .await?)
}

/// These variants of a shop, in id order.
pub async fn variants_by_id(pool: &PgPool, shop_id: i64, ids: &[i64]) -> Result<Vec<VariantRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        variant_columns!(),
        " FROM cowans_variants v WHERE v.shop_id = $1 AND v.id = ANY($2) ORDER BY v.id"
    ))
    .bind(shop_id)
    .bind(ids)
    .fetch_all(pool)
    .await?)
}

/// Merges inventory levels read apart from their variants (a bulk export's level lines):
/// `(variant id, location id, available)`. A full pull's variant lines reset levels to `{}`
/// first, so a location that no longer stocks an item drops out. Returns the variants touched.
pub async fn merge_inventory_levels(
    conn: &mut PgConnection,
    shop_id: i64,
    levels: &[(i64, i64, i64)],
) -> Result<u64> {
    if levels.is_empty() {
        return Ok(0);
    }
    // One row per variant (an UPDATE joined to two rows of one target applies only one).
    let mut by_variant: std::collections::BTreeMap<i64, serde_json::Map<String, Value>> =
        Default::default();
    for (variant, location, available) in levels {
        by_variant
            .entry(*variant)
            .or_default()
            .insert(location.to_string(), Value::from(*available));
    }
    let (ids, values): (Vec<i64>, Vec<String>) = by_variant
        .into_iter()
        .map(|(id, l)| (id, Value::Object(l).to_string()))
        .unzip();
    let done = sqlx::query(
        "UPDATE cowans_variants v SET inventory = COALESCE(v.inventory, '{}') || t.levels::jsonb \
         FROM unnest($2::bigint[], $3::text[]) AS t(id, levels) \
         WHERE v.shop_id = $1 AND v.id = t.id",
    )
    .bind(shop_id)
    .bind(ids)
    .bind(values)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
