//! Staged changes: proposed values for fields of a product or variant, each with its base, and
//! their review and push. Every statement that moves a change's `state` implements one move of
//! the catalog's `ChangeState` (the caller passes the states it may move from).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};

use crate::Result;

/// A change to stage: `fields` is `{"<field>": {"base": v, "proposed": v}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewChange {
    pub product_id: i64,
    pub variant_id: Option<i64>,
    pub fields: Value,
}

/// Who staged changes, and from what.
#[derive(Debug, Clone, Copy)]
pub struct ChangeOrigin<'a> {
    pub author: &'a str,
    /// `edit`, `bulk_edit` or `import`.
    pub source: &'a str,
    pub source_id: Option<i64>,
}

/// A stored change, with what the catalog shows of its product and target now.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ChangeRow {
    pub id: i64,
    pub shop_id: i64,
    pub product_id: i64,
    pub variant_id: Option<i64>,
    pub state: String,
    pub fields: Value,
    pub superseded: Vec<String>,
    pub author: String,
    pub source: String,
    pub source_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    pub push_job: Option<i64>,
    pub pushed_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    /// The product's title and vendor in the catalog (NULL when it is gone).
    pub product_title: Option<String>,
    pub vendor: Option<String>,
    /// The catalog's snapshot of the target, field by field (text values; NULL when gone).
    pub snapshot: Option<Value>,
}

/// The stored snapshot of a change's target as `{"<field>": value}` (decimals as text).
macro_rules! snapshot_of {
    () => {
        "CASE WHEN c.variant_id IS NULL THEN \
           CASE WHEN p.id IS NOT NULL THEN jsonb_build_object('title', p.title, 'handle', p.handle, \
             'description_html', p.description_html, 'vendor', p.vendor, \
             'product_type', p.product_type, 'status', p.status, 'tags', to_jsonb(p.tags), \
             'deleted', p.deleted_at IS NOT NULL) END \
         ELSE CASE WHEN v.id IS NOT NULL THEN jsonb_build_object('price', v.price::text, \
             'compare_at_price', v.compare_at_price::text, 'sku', v.sku, 'barcode', v.barcode, \
             'inventory_quantity', v.inventory_quantity, \
             'inventory_item_id', v.inventory_item_id::text, 'inventory', v.inventory, 'deleted', p.deleted_at IS NOT NULL) END \
         END"
    };
}

macro_rules! change_select {
    () => {
        concat!(
            "SELECT c.id, c.shop_id, c.product_id, c.variant_id, c.state, c.fields, c.superseded, \
               c.author, c.source, c.source_id, c.created_at, c.updated_at, c.decided_by, \
               c.decided_at, c.reason, c.push_job, c.pushed_at, c.error, \
               p.title AS product_title, p.vendor, ",
            snapshot_of!(),
            " AS snapshot \
             FROM cowans_changes c \
             LEFT JOIN cowans_products p ON p.shop_id = c.shop_id AND p.id = c.product_id \
             LEFT JOIN cowans_variants v ON v.shop_id = c.shop_id AND v.id = c.variant_id "
        )
    };
}

/// Stages `changes` (at most one per product or variant) and returns their ids in order. Older
/// pending changes to the same target give up the fields these take over (`superseded`); one
/// left with none becomes `superseded`. Of a field whose values are keyed (inventory by
/// location) a newer change takes over only the keys it names: the older one keeps proposing
/// the others (each change keeps its author, so the four-eyes rule still holds).
pub async fn insert_changes(
    conn: &mut PgConnection,
    shop_id: i64,
    origin: ChangeOrigin<'_>,
    changes: &[NewChange],
) -> Result<Vec<i64>> {
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let products: Vec<i64> = changes.iter().map(|c| c.product_id).collect();
    let variants: Vec<Option<i64>> = changes.iter().map(|c| c.variant_id).collect();
    let fields: Vec<String> = changes.iter().map(|c| c.fields.to_string()).collect();
    let ids: Vec<(i64,)> = sqlx::query_as(
        "WITH new AS ( \
           INSERT INTO cowans_changes (shop_id, product_id, variant_id, fields, author, source, source_id) \
           SELECT $1, t.product_id, t.variant_id, t.fields::jsonb, $2, $3, $4 \
           FROM unnest($5::bigint[], $6::bigint[], $7::text[]) WITH ORDINALITY \
             AS t(product_id, variant_id, fields, n) \
           ORDER BY t.n \
           RETURNING id, product_id, variant_id, fields \
         ), sup AS ( \
           UPDATE cowans_changes c SET \
             fields = c.fields || COALESCE((SELECT jsonb_object_agg(k, \
                 cowans_field_left(c.fields->k, n.fields->k)) \
               FROM jsonb_object_keys(c.fields) k WHERE n.fields ? k \
                 AND NOT (k = ANY(c.superseded)) \
                 AND cowans_field_left(c.fields->k, n.fields->k) IS NOT NULL), '{}'), \
             superseded = ARRAY(SELECT k FROM jsonb_object_keys(c.fields) k \
               WHERE k = ANY(c.superseded) \
                 OR (n.fields ? k AND cowans_field_left(c.fields->k, n.fields->k) IS NULL)), \
             state = CASE WHEN NOT EXISTS (SELECT 1 FROM jsonb_object_keys(c.fields) k \
               WHERE NOT (k = ANY(c.superseded) \
                 OR (n.fields ? k AND cowans_field_left(c.fields->k, n.fields->k) IS NULL))) \
               THEN 'superseded' ELSE c.state END, \
             updated_at = now() \
           FROM new n \
           WHERE c.shop_id = $1 AND c.product_id = n.product_id \
             AND c.variant_id IS NOT DISTINCT FROM n.variant_id AND c.state = 'pending' \
             AND c.fields ?| ARRAY(SELECT jsonb_object_keys(n.fields)) \
         ) \
         SELECT id FROM new ORDER BY id",
    )
    .bind(shop_id)
    .bind(origin.author)
    .bind(origin.source)
    .bind(origin.source_id)
    .bind(products)
    .bind(variants)
    .bind(fields)
    .fetch_all(conn)
    .await?;
    Ok(ids.into_iter().map(|(id,)| id).collect())
}

/// Which changes a listing or a decision covers. Empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChangeFilter {
    pub ids: Option<Vec<i64>>,
    pub state: Option<String>,
    pub source: Option<String>,
    pub source_id: Option<i64>,
    pub author: Option<String>,
    /// The product's vendor in the catalog.
    pub vendor: Option<String>,
    /// Changes that propose this field.
    pub field: Option<String>,
    pub product_id: Option<i64>,
}

/// The filter's conditions on `c` (and `p`, the product): parameters `$1` to `$8`, bound by
/// [`bind_filter`] before any other.
macro_rules! change_filter {
    () => {
        "($1::bigint[] IS NULL OR c.id = ANY($1)) \
         AND ($2::text IS NULL OR c.state = $2) AND ($3::text IS NULL OR c.source = $3) \
         AND ($4::bigint IS NULL OR c.source_id = $4) AND ($5::text IS NULL OR c.author = $5) \
         AND ($6::text IS NULL OR p.vendor = $6) AND ($7::text IS NULL OR c.fields ? $7) \
         AND ($8::bigint IS NULL OR c.product_id = $8)"
    };
}

fn bind_filter<'q, O>(
    q: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    f: &'q ChangeFilter,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    q.bind(&f.ids)
        .bind(&f.state)
        .bind(&f.source)
        .bind(f.source_id)
        .bind(&f.author)
        .bind(&f.vendor)
        .bind(&f.field)
        .bind(f.product_id)
}

/// A page of a shop's changes matching `filter`, newest first, before id `before`.
pub async fn list_changes(
    pool: &PgPool,
    shop_id: i64,
    filter: &ChangeFilter,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<ChangeRow>> {
    let q = sqlx::query_as(concat!(
        change_select!(),
        "WHERE c.shop_id = $9 AND c.id < $10 AND ",
        change_filter!(),
        " ORDER BY c.id DESC LIMIT $11"
    ));
    Ok(bind_filter(q, filter)
        .bind(shop_id)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(pool)
        .await?)
}

/// One change of a shop.
pub async fn get_change(
    conn: &mut PgConnection,
    shop_id: i64,
    id: i64,
) -> Result<Option<ChangeRow>> {
    Ok(sqlx::query_as(concat!(
        change_select!(),
        "WHERE c.shop_id = $1 AND c.id = $2"
    ))
    .bind(shop_id)
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// A decision: changes in one of `from` move to `to`, by `by` for `reason`; changes authored by
/// `not_author` are left alone (the four-eyes rule).
#[derive(Debug, Clone, Copy)]
pub struct Decide<'a> {
    pub from: &'a [&'a str],
    pub to: &'a str,
    pub by: &'a str,
    pub reason: Option<&'a str>,
    pub not_author: Option<&'a str>,
}

/// Applies decision `d` to the changes `filter` matches; returns the ids moved.
pub async fn decide_changes(
    conn: &mut PgConnection,
    shop_id: i64,
    filter: &ChangeFilter,
    d: Decide<'_>,
) -> Result<Vec<i64>> {
    let q = sqlx::query_as(concat!(
        "UPDATE cowans_changes c SET state = $10, decided_by = $11, decided_at = now(), \
           reason = $12, updated_at = now(), error = NULL \
         FROM cowans_changes c0 LEFT JOIN cowans_products p \
           ON p.shop_id = c0.shop_id AND p.id = c0.product_id \
         WHERE c0.id = c.id AND c.shop_id = $9 AND c.state = ANY($13) \
           AND ($14::text IS NULL OR c.author <> $14) AND ",
        change_filter!(),
        " RETURNING c.id"
    ));
    let ids: Vec<(i64,)> = bind_filter(q, filter)
        .bind(shop_id)
        .bind(d.to)
        .bind(d.by)
        .bind(d.reason)
        .bind(d.from)
        .bind(d.not_author)
        .fetch_all(conn)
        .await?;
    Ok(ids.into_iter().map(|(id,)| id).collect())
}

/// The state and author of each of `ids` that is a change of the shop.
pub async fn change_states(
    conn: &mut PgConnection,
    shop_id: i64,
    ids: &[i64],
) -> Result<Vec<(i64, String, String)>> {
    Ok(sqlx::query_as(
        "SELECT id, state, author FROM cowans_changes WHERE shop_id = $1 AND id = ANY($2) ORDER BY id",
    )
    .bind(shop_id)
    .bind(ids)
    .fetch_all(conn)
    .await?)
}

/// Replaces a conflicting change's fields with the reviewer's resolution and moves it back to
/// `pending`. False when it is no longer in `conflict`.
pub async fn resolve_change(
    conn: &mut PgConnection,
    shop_id: i64,
    id: i64,
    fields: &Value,
    by: &str,
    reason: Option<&str>,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE cowans_changes SET fields = $3, state = 'pending', decided_by = $4, \
           decided_at = now(), reason = $5, updated_at = now(), error = NULL, push_job = NULL \
         WHERE shop_id = $1 AND id = $2 AND state = 'conflict'",
    )
    .bind(shop_id)
    .bind(id)
    .bind(fields)
    .bind(by)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Takes up to `limit` changes of the shop for the push job `job_id`, in product order (a batch
/// covers a range of product ids): approved ones, and ones a push took but did not finish (this
/// job's own before a retry, or a job no longer running).
pub async fn claim_for_push(
    pool: &PgPool,
    shop_id: i64,
    job_id: i64,
    limit: i64,
) -> Result<Vec<ChangeRow>> {
    let claimed: Vec<(i64,)> = sqlx::query_as(
        "UPDATE cowans_changes c SET state = 'pushing', push_job = $2, updated_at = now() \
         WHERE c.id IN (SELECT id FROM cowans_changes x WHERE x.shop_id = $1 \
             AND (x.state = 'approved' OR (x.state = 'pushing' AND (x.push_job = $2 \
               OR NOT EXISTS (SELECT 1 FROM cowans_jobs j WHERE j.id = x.push_job \
                 AND j.state = 'running')))) \
           ORDER BY x.product_id, x.id LIMIT $3 FOR UPDATE SKIP LOCKED) \
         RETURNING c.id",
    )
    .bind(shop_id)
    .bind(job_id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let ids: Vec<i64> = claimed.into_iter().map(|(id,)| id).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as(concat!(
        change_select!(),
        "WHERE c.shop_id = $1 AND c.id = ANY($2) ORDER BY c.id"
    ))
    .bind(shop_id)
    .bind(ids)
    .fetch_all(pool)
    .await?)
}

/// How a push left one change.
#[derive(Debug, Clone, PartialEq)]
pub struct PushOutcome {
    pub id: i64,
    /// `pushed`, `conflict` or `failed`.
    pub state: &'static str,
    /// The change's fields with each one's `current` and `outcome`.
    pub fields: Value,
    pub error: Option<String>,
}

/// Records what a push did to changes the push job `job_id` holds; returns how many it still
/// held (one another push took over is left alone).
pub async fn finish_push(
    conn: &mut PgConnection,
    job_id: i64,
    outcomes: &[PushOutcome],
) -> Result<u64> {
    if outcomes.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query(
        "UPDATE cowans_changes c SET state = t.state, fields = t.fields::jsonb, error = t.error, \
           pushed_at = CASE WHEN t.state = 'pushed' THEN now() ELSE c.pushed_at END, \
           updated_at = now() \
         FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[]) AS t(id, state, fields, error) \
         WHERE c.id = t.id AND c.state = 'pushing' AND c.push_job = $1",
    )
    .bind(job_id)
    .bind(outcomes.iter().map(|o| o.id).collect::<Vec<_>>())
    .bind(outcomes.iter().map(|o| o.state).collect::<Vec<_>>())
    .bind(
        outcomes
            .iter()
            .map(|o| o.fields.to_string())
            .collect::<Vec<_>>(),
    )
    .bind(outcomes.iter().map(|o| o.error.clone()).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Whether the shop has at least `n` changes approved or being pushed (stops counting at `n`).
pub async fn pushable_at_least(pool: &PgPool, shop_id: i64, n: i64) -> Result<bool> {
    let (found,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM (SELECT 1 FROM cowans_changes            WHERE shop_id = $1 AND state IN ('approved', 'pushing') LIMIT $2) s",
    )
    .bind(shop_id)
    .bind(n)
    .fetch_one(pool)
    .await?;
    Ok(found >= n)
}

/// How many changes of the shop match `filter` — of those, only the ones in one of `from` and
/// not authored by `not_author` when given: what [`decide_changes`] would move.
pub async fn count_changes(
    pool: &PgPool,
    shop_id: i64,
    filter: &ChangeFilter,
    from: Option<&[&str]>,
    not_author: Option<&str>,
) -> Result<i64> {
    let q = sqlx::query_as(concat!(
        "SELECT count(*) FROM cowans_changes c \
         LEFT JOIN cowans_products p ON p.shop_id = c.shop_id AND p.id = c.product_id \
         WHERE c.shop_id = $9 AND ($10::text[] IS NULL OR c.state = ANY($10)) \
           AND ($11::text IS NULL OR c.author <> $11) AND ",
        change_filter!()
    ));
    let (n,): (i64,) = bind_filter(q, filter)
        .bind(shop_id)
        .bind(from)
        .bind(not_author)
        .fetch_one(pool)
        .await?;
    Ok(n)
}

/// How many changes of the shop are in each state.
pub async fn change_counts(pool: &PgPool, shop_id: i64) -> Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT state, count(*) FROM cowans_changes WHERE shop_id = $1 GROUP BY state ORDER BY state",
    )
    .bind(shop_id)
    .fetch_all(pool)
    .await?)
}

/// Updates the stored snapshot of variants' fields a push wrote (`(variant id, {"<field>":
/// value})`; the products' own snapshots are replaced from the mutations' answers).
pub async fn set_variant_fields(
    conn: &mut PgConnection,
    shop_id: i64,
    values: &[(i64, Value)],
) -> Result<()> {
    if values.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE cowans_variants v SET \
           price = CASE WHEN t.vals ? 'price' THEN (t.vals->>'price')::numeric ELSE v.price END, \
           compare_at_price = CASE WHEN t.vals ? 'compare_at_price' \
             THEN (t.vals->>'compare_at_price')::numeric ELSE v.compare_at_price END, \
           sku = CASE WHEN t.vals ? 'sku' THEN t.vals->>'sku' ELSE v.sku END, \
           barcode = CASE WHEN t.vals ? 'barcode' THEN t.vals->>'barcode' ELSE v.barcode END, \
           inventory_quantity = CASE WHEN t.vals ? 'inventory' AND v.inventory IS NOT NULL \
             THEN (SELECT LEAST(sum(l.value::bigint), 2147483647)::integer \
                   FROM jsonb_each_text(v.inventory || (t.vals->'inventory')) l) \
             ELSE v.inventory_quantity END, \
           inventory = CASE WHEN t.vals ? 'inventory' \
             THEN COALESCE(v.inventory, '{}') || (t.vals->'inventory') ELSE v.inventory END \
         FROM (SELECT u.id, u.vals::jsonb AS vals FROM unnest($2::bigint[], $3::text[]) AS u(id, vals)) t \
         WHERE v.shop_id = $1 AND v.id = t.id",
    )
    .bind(shop_id)
    .bind(values.iter().map(|(id, _)| *id).collect::<Vec<_>>())
    .bind(values.iter().map(|(_, v)| v.to_string()).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// A job of `kind` on `queue` for the shop (`args.shop_id`) that has not started yet, if any.
/// Takes a transaction-scoped lock on (kind, shop) first, so that two transactions asking at
/// once cannot both find none and both enqueue one: the second waits for the first's commit.
pub async fn waiting_shop_job(
    conn: &mut PgConnection,
    queue: &str,
    kind: &str,
    shop_id: i64,
) -> Result<Option<i64>> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1), $2::int)")
        .bind(kind)
        .bind(i32::try_from(shop_id.rem_euclid(i64::from(i32::MAX))).unwrap_or(0))
        .execute(&mut *conn)
        .await?;
    let found: Option<(i64,)> = sqlx::query_as(
        "SELECT id FROM cowans_jobs WHERE queue = $3 AND kind = $1 \
           AND state IN ('available', 'scheduled') \
           AND args @> jsonb_build_object('shop_id', $2::bigint) LIMIT 1",
    )
    .bind(kind)
    .bind(shop_id)
    .bind(queue)
    .fetch_optional(conn)
    .await?;
    Ok(found.map(|(id,)| id))
}

/// Dead letters per queue now, and as last counted by the watcher (`None`: never counted).
pub async fn dead_letter_counts(pool: &PgPool) -> Result<Vec<(String, i64, Option<i64>)>> {
    Ok(sqlx::query_as(
        "SELECT coalesce(d.queue, w.queue), coalesce(d.n, 0), w.dead \
         FROM (SELECT queue, count(*) AS n FROM cowans_jobs WHERE state = 'dead' GROUP BY queue) d \
         FULL JOIN cowans_dead_watch w ON w.queue = d.queue ORDER BY 1",
    )
    .fetch_all(pool)
    .await?)
}

/// Records the dead letters counted per queue.
pub async fn set_dead_letter_counts(
    conn: &mut PgConnection,
    counts: &[(String, i64)],
) -> Result<()> {
    sqlx::query(
        "INSERT INTO cowans_dead_watch (queue, dead) SELECT * FROM unnest($1::text[], $2::bigint[]) \
         ON CONFLICT (queue) DO UPDATE SET dead = EXCLUDED.dead, counted_at = now()",
    )
    .bind(counts.iter().map(|(q, _)| q.clone()).collect::<Vec<_>>())
    .bind(counts.iter().map(|(_, n)| *n).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}
