//! One Shopify cost bucket per shop for the whole fleet: every process calling a shop paces
//! against the shop's row in Postgres (`cowans_store::catalog::reserve_budget`), or its hash in
//! Redis (`catalog.budgets = "redis"`, [`cowans_redis::CostBuckets`]), so N workers together
//! spend the shop's restore rate instead of N times it.

use std::time::Duration;

use cowans_shopify::{CostBucket, ThrottleStatus};
use cowans_store::{
    PgPool,
    catalog::{self as store, BudgetStatus},
};
use futures::future::{BoxFuture, FutureExt};

/// The longest a reservation makes a caller wait (a bucket far behind is relearnt meanwhile).
const MAX_WAIT: Duration = Duration::from_secs(60);

/// Where the fleet's buckets are kept.
#[derive(Clone)]
pub(crate) enum Buckets {
    Postgres(PgPool),
    Redis(cowans_redis::CostBuckets),
}

/// A shop's bucket.
pub(crate) struct FleetBucket {
    pub(crate) buckets: Buckets,
    pub(crate) shop_id: i64,
}

/// The name of a shop's bucket in Redis.
pub(crate) fn bucket_name(shop_id: i64) -> String {
    format!("shop:{shop_id}")
}

impl CostBucket for FleetBucket {
    fn reserve(&self, requested: f64) -> BoxFuture<'_, Duration> {
        async move {
            let reserved = match &self.buckets {
                Buckets::Postgres(pool) => store::reserve_budget(pool, self.shop_id, requested)
                    .await
                    .map_err(|e| e.to_string()),
                Buckets::Redis(b) => b
                    .reserve(&bucket_name(self.shop_id), requested)
                    .await
                    .map_err(|e| e.to_string()),
            };
            match reserved {
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
            let settled = match &self.buckets {
                Buckets::Postgres(pool) => {
                    let status = status.map(|t| BudgetStatus {
                        maximum_available: t.maximum_available,
                        currently_available: t.currently_available,
                        restore_rate: t.restore_rate,
                    });
                    store::settle_budget(pool, self.shop_id, requested, status)
                        .await
                        .map_err(|e| e.to_string())
                }
                Buckets::Redis(b) => {
                    let status = status.map(|t| cowans_redis::BucketStatus {
                        maximum_available: t.maximum_available,
                        currently_available: t.currently_available,
                        restore_rate: t.restore_rate,
                    });
                    b.settle(&bucket_name(self.shop_id), requested, status)
                        .await
                        .map_err(|e| e.to_string())
                }
            };
            if let Err(e) = settled {
                tracing::warn!(shop = self.shop_id, error = %e, "cannot settle Shopify budget");
            }
        }
        .boxed()
    }
}
