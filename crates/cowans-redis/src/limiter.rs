//! [`RedisLimiter`]: the fleet-wide limits of queues stored in Redis, kept in the limited
//! queue's own keys (`Q:permits`, `Q:permit_seq`, `Q:rate`), so each call is one script on one
//! slot. Times come from the server's clock, like every other script's.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use cowans_core::{
    QueueName, Wakeup,
    queue::{Granted, LimitResult, Limiter, Permit, RateLimit},
};
use uuid::Uuid;

use crate::{
    RedisDriver, scripts,
    value::{at, int, items, millis, text, time},
};

/// The Redis [`Limiter`]. Cheap to clone; holders' permits are found through the scopes this
/// limiter has taken permits in (a process extends and releases only its own).
#[derive(Clone)]
pub struct RedisLimiter {
    driver: RedisDriver,
    scopes: Arc<Mutex<HashSet<Arc<str>>>>,
}

impl RedisLimiter {
    pub fn new(driver: RedisDriver) -> Self {
        Self {
            driver,
            scopes: Default::default(),
        }
    }

    fn scopes(&self) -> Vec<Arc<str>> {
        self.scopes
            .lock()
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Extends (`Some(ttl)`) or gives back (`None`) every permit of `holder`, scope by scope.
    async fn holder(&self, holder: Uuid, ttl: Option<Duration>) -> LimitResult<()> {
        let args = [holder.to_string(), ttl.map(millis).unwrap_or_default()];
        for scope in self.scopes() {
            let d = &self.driver;
            d.run(&scripts::PERMITS_HOLDER, &d.qkey(&scope), &args)
                .await?;
        }
        Ok(())
    }
}

fn rate_args(rate: RateLimit) -> [String; 2] {
    [
        rate.jobs.max(1).to_string(),
        millis(rate.period.max(Duration::from_millis(1))),
    ]
}

#[async_trait]
impl Limiter for RedisLimiter {
    async fn acquire(
        &self,
        scope: &Arc<str>,
        limit: u32,
        want: u32,
        holder: Uuid,
        ttl: Duration,
    ) -> LimitResult<Vec<Permit>> {
        if want == 0 || limit == 0 {
            return Ok(Vec::new());
        }
        if let Ok(mut s) = self.scopes.lock() {
            s.insert(scope.clone());
        }
        let d = &self.driver;
        let args = [
            limit.to_string(),
            want.to_string(),
            holder.to_string(),
            millis(ttl),
        ];
        let reply = d
            .run(&scripts::PERMITS_ACQUIRE, &d.qkey(scope), &args)
            .await?;
        let a = items(&reply)?;
        a.chunks(2)
            .map(|p| {
                Ok(Permit {
                    scope: scope.clone(),
                    slot: int(at(p, 0, "slot")?, "slot")? as i32,
                    token: int(at(p, 1, "token")?, "token")?,
                })
            })
            .collect()
    }

    async fn release(&self, permits: &[Permit]) -> LimitResult<()> {
        let mut scopes: Vec<&Arc<str>> = permits.iter().map(|p| &p.scope).collect();
        scopes.sort();
        scopes.dedup();
        let d = &self.driver;
        for scope in scopes {
            // Scopes are queue names; a scope that is not one has no producer to wake.
            let wake = QueueName::new(scope.to_string())
                .map(|queue| Wakeup::PermitsFreed { queue }.encode())
                .unwrap_or_default();
            let mut args = vec![d.channel(), wake];
            for p in permits.iter().filter(|p| p.scope == *scope) {
                args.push(p.slot.to_string());
                args.push(p.token.to_string());
            }
            d.run(&scripts::PERMITS_RELEASE, &d.qkey(scope), &args)
                .await?;
        }
        Ok(())
    }

    async fn extend(&self, holder: Uuid, ttl: Duration) -> LimitResult<()> {
        self.holder(holder, Some(ttl)).await
    }

    async fn release_all(&self, holder: Uuid) -> LimitResult<()> {
        self.holder(holder, None).await
    }

    async fn take(
        &self,
        scope: &str,
        rate: RateLimit,
        keys: &[String],
        wants: &[u32],
    ) -> LimitResult<Vec<Granted>> {
        let d = &self.driver;
        let mut args = rate_args(rate).to_vec();
        for (k, w) in keys.iter().zip(wants) {
            args.push(k.clone());
            args.push(w.to_string());
        }
        let reply = d.run(&scripts::RATE_TAKE, &d.qkey(scope), &args).await?;
        items(&reply)?
            .iter()
            .map(|g| {
                let g = items(g)?;
                Ok(Granted {
                    key: text(at(g, 0, "key")?, "key")?,
                    granted: int(at(g, 1, "granted")?, "granted")?.max(0) as u32,
                    next_at: time(int(at(g, 2, "next_at")?, "next_at")?, "next_at")?,
                })
            })
            .collect()
    }

    async fn refund(&self, scope: &str, rate: RateLimit, key: &str, n: u32) -> LimitResult<()> {
        let d = &self.driver;
        let mut args = rate_args(rate).to_vec();
        args.push(key.to_owned());
        args.push(n.to_string());
        d.run(&scripts::RATE_REFUND, &d.qkey(scope), &args).await?;
        Ok(())
    }
}
