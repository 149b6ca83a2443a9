//! Shops' Shopify cost buckets, shared by every process of the fleet (one row per shop; the
//! database's clock is the one clock). A reservation refills the bucket at its restore rate
//! since it was last touched, takes the points and answers how long the caller must wait for
//! them; a settlement takes Shopify's word (`currentlyAvailable`) minus what other callers
//! still have in flight. Points reserved by a process that died before settling are forgotten
//! once nobody has settled for a minute.

use sqlx::PgPool;

use crate::Result;

/// What Shopify said about a shop's bucket in an answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetStatus {
    pub maximum_available: f64,
    pub currently_available: f64,
    pub restore_rate: f64,
}

/// Reserves `requested` points of `shop_id`'s bucket; answers the seconds to wait before
/// sending (0 while the bucket has not been learnt).
pub async fn reserve_budget(pool: &PgPool, shop_id: i64, requested: f64) -> Result<f64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO cowans_shop_budgets AS b (shop_id, in_flight) VALUES ($1, $2) \
         ON CONFLICT (shop_id) DO UPDATE SET \
           in_flight = CASE WHEN b.settled_at < clock_timestamp() - interval '60 seconds' \
                            THEN 0 ELSE b.in_flight END + $2, \
           available = LEAST(b.max_available, b.available \
                 + extract(epoch FROM clock_timestamp() - b.at)::float8 * b.restore_rate) - $2, \
           at = clock_timestamp() \
         RETURNING CASE WHEN restore_rate > 0 AND available < 0 \
                        THEN -available / restore_rate ELSE 0 END",
    )
    .bind(shop_id)
    .bind(requested)
    .fetch_one(pool)
    .await?)
}

/// Settles a reservation of `requested` points of `shop_id`'s bucket with Shopify's answer
/// (`None` when the answer had no throttle status).
pub async fn settle_budget(
    pool: &PgPool,
    shop_id: i64,
    requested: f64,
    status: Option<BudgetStatus>,
) -> Result<()> {
    sqlx::query(
        "UPDATE cowans_shop_budgets SET \
           in_flight = GREATEST(0, in_flight - $2), \
           max_available = COALESCE($3, max_available), \
           restore_rate = COALESCE($4, restore_rate), \
           available = CASE WHEN $5::float8 IS NULL THEN available \
                            ELSE $5 - GREATEST(0, in_flight - $2) END, \
           at = CASE WHEN $5::float8 IS NULL THEN at ELSE clock_timestamp() END, \
           settled_at = clock_timestamp() \
         WHERE shop_id = $1",
    )
    .bind(shop_id)
    .bind(requested)
    .bind(status.map(|s| s.maximum_available))
    .bind(status.map(|s| s.restore_rate))
    .bind(status.map(|s| s.currently_available))
    .execute(pool)
    .await?;
    Ok(())
}

/// Forgets what was learnt of `shop_id`'s bucket (its token changed: Shopify keeps a bucket per
/// app, so the next answer teaches the new one).
pub async fn forget_budget(conn: &mut sqlx::PgConnection, shop_id: i64) -> Result<()> {
    sqlx::query("DELETE FROM cowans_shop_budgets WHERE shop_id = $1")
        .bind(shop_id)
        .execute(conn)
        .await?;
    Ok(())
}
