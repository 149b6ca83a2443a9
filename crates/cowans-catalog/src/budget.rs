//! One Shopify cost bucket per shop for the whole fleet: every process calling a shop paces
//! against the shop's row in Postgres (`cowans_store::catalog::reserve_budget`), so N workers
//! together spend the shop's restore rate instead of N times it.

use std::time::Duration;

use cowans_shopify::{CostBucket, ThrottleStatus};
use cowans_store::{
    PgPool,
    catalog::{self as store, BudgetStatus},
};
use futures::future::{BoxFuture, FutureExt};

/// The longest a reservation makes a caller wait (a bucket far behind is relearnt meanwhile).
const MAX_WAIT: Duration = Duration::from_secs(60);

/// A shop's bucket in Postgres.
pub(crate) struct FleetBucket {
    pub(crate) pool: PgPool,
    pub(crate) shop_id: i64,
}

impl CostBucket for FleetBucket {
    fn reserve(&self, requested: f64) -> BoxFuture<'_, Duration> {
        async move {
            match store::reserve_budget(&self.pool, self.shop_id, requested).await {
                Ok(secs) if secs.is_finite() && secs > 0.0 => {
                    Duration::from_secs_f64(secs).min(MAX_WAIT)
                }
                Ok(_) => Duration::ZERO,
                Err(e) => {
                    // Shopify's own throttling still protects the shop; the call goes ahead.
                    tracing::warn!(shop = self.shop_id, error = %e, "cannot reserve Shopify budget");
                    Duration::ZERO
                }
            }
        }
        .boxed()
    }

    fn settle(&self, requested: f64, status: Option<ThrottleStatus>) -> BoxFuture<'_, ()> {
        async move {
            let status = status.map(|t| BudgetStatus {
                maximum_available: t.maximum_available,
                currently_available: t.currently_available,
                restore_rate: t.restore_rate,
            });
            if let Err(e) = store::settle_budget(&self.pool, self.shop_id, requested, status).await
            {
                tracing::warn!(shop = self.shop_id, error = %e, "cannot settle Shopify budget");
            }
        }
        .boxed()
    }
}
