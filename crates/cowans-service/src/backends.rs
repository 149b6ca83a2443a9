//! The queues' backends as the settings name them: Postgres always, Redis when a queue's
//! settings put it there (`[queues.<name>] backend = "redis"`). Every binary builds its front
//! door and engine through here, so API, workers and `ctl` route each queue alike.

use std::sync::Arc;

use anyhow::Context;
use cowans_catalog::BudgetStore;
use cowans_core::{QueueName, queue::Driver};
use cowans_queue::{Backends, FrontDoor, FrontDoorBuilder, PgDriver};
use cowans_redis::{CostBuckets, RedisDriver, RedisLimiter};
use cowans_store::PgPool;
use secrecy::ExposeSecret;

use crate::Settings;

/// A connection to the settings' Redis (`redis.url`, or the cluster of `redis.nodes`).
async fn connect_redis(settings: &Settings) -> anyhow::Result<RedisDriver> {
    let r = &settings.redis;
    Ok(match &r.url {
        Some(url) => RedisDriver::connect(url.expose_secret(), &r.prefix)
            .await
            .context("connecting to redis.url")?,
        None => {
            let nodes: Vec<&str> = r.nodes.iter().map(|n| n.expose_secret()).collect();
            RedisDriver::connect_cluster(&nodes, &r.prefix)
                .await
                .context("connecting to the Redis Cluster of redis.nodes")?
        }
    })
}

/// The Redis driver and the queues stored there; `None` when no queue is.
async fn redis(settings: &Settings) -> anyhow::Result<Option<(RedisDriver, Vec<QueueName>)>> {
    let queues = settings
        .redis_queues()
        .into_iter()
        .map(|q| QueueName::new(q.clone()).with_context(|| format!("queues.{q}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if queues.is_empty() {
        return Ok(None);
    }
    Ok(Some((connect_redis(settings).await?, queues)))
}

/// The catalog's shared Shopify budgets in Redis, when `catalog.budgets = "redis"`.
pub async fn catalog_budgets(settings: &Settings) -> anyhow::Result<Option<CostBuckets>> {
    let catalog_on = settings.apps.iter().any(|a| a == cowans_catalog::APP.name);
    if !catalog_on || settings.catalog.budgets != BudgetStore::Redis {
        return Ok(None);
    }
    Ok(Some(CostBuckets::new(connect_redis(settings).await?)))
}

/// Every queue's backend: Postgres on `pool`, plus Redis for the queues stored there.
pub async fn connect(settings: &Settings, pool: &PgPool) -> anyhow::Result<Backends> {
    let postgres: Arc<dyn Driver> = Arc::new(PgDriver::new(pool.clone()));
    Ok(match redis(settings).await? {
        Some((driver, queues)) => Backends::with_redis(
            postgres,
            Arc::new(driver.clone()),
            Arc::new(RedisLimiter::new(driver)),
            queues,
        ),
        None => Backends::postgres(postgres),
    })
}

/// A front door over `pool` that routes each queue to its backend, with the fleet's
/// `engine.lease_ttl`.
pub async fn front_door(settings: &Settings, pool: &PgPool) -> anyhow::Result<FrontDoorBuilder> {
    Ok(FrontDoor::builder(pool.clone())
        .backends(connect(settings, pool).await?)
        .lease_ttl(settings.engine.lease_ttl))
}
