//! [`CostBuckets`]: cost buckets shared by every process of a fleet, in Redis — what the
//! Shopify client paces against when a shop's budget lives there. Each bucket is one hash under
//! its own hash tag (`{<prefix>:b:<name>}:bucket`), changed by one script per call, with the
//! server's clock: the same arithmetic as the Postgres buckets (`cowans_shop_budgets`).

use cowans_core::queue::QueueResult;

use crate::{
    RedisDriver, scripts,
    value::{bad, map_err, text},
};

/// A bucket's state as an answer reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketStatus {
    pub maximum_available: f64,
    pub currently_available: f64,
    pub restore_rate: f64,
}

/// The fleet's shared cost buckets. Cheap to clone.
#[derive(Clone)]
pub struct CostBuckets {
    driver: RedisDriver,
}

impl CostBuckets {
    pub fn new(driver: RedisDriver) -> Self {
        Self { driver }
    }

    fn base(&self, bucket: &str) -> String {
        format!("{{{}:b:{bucket}}}", self.driver.prefix())
    }

    /// Reserves `requested` points of `bucket`; how many seconds to wait before sending (0
    /// until an answer has taught the bucket).
    pub async fn reserve(&self, bucket: &str, requested: f64) -> QueueResult<f64> {
        let reply = self
            .driver
            .run(
                &scripts::BUDGET_RESERVE,
                &self.base(bucket),
                &[requested.to_string()],
            )
            .await?;
        let t = text(&reply, "wait")?;
        t.parse::<f64>()
            .map_err(|_| bad(format!("bucket {bucket}: the wait is not a number: {t:?}")))
    }

    /// Settles a reservation of `requested` points with the answer's status (`None`: it had
    /// none).
    pub async fn settle(
        &self,
        bucket: &str,
        requested: f64,
        status: Option<BucketStatus>,
    ) -> QueueResult<()> {
        let f = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
        self.driver
            .run(
                &scripts::BUDGET_SETTLE,
                &self.base(bucket),
                &[
                    requested.to_string(),
                    f(status.map(|s| s.maximum_available)),
                    f(status.map(|s| s.currently_available)),
                    f(status.map(|s| s.restore_rate)),
                ],
            )
            .await?;
        Ok(())
    }

    /// Forgets what was learnt of `bucket` (the next answer teaches it again).
    pub async fn forget(&self, bucket: &str) -> QueueResult<()> {
        let mut conn = self.driver.conn.clone();
        let _: i64 = redis::cmd("DEL")
            .arg(format!("{}:bucket", self.base(bucket)))
            .query_async(&mut conn)
            .await
            .map_err(map_err)?;
        Ok(())
    }
}
