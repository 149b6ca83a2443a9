//! [`PgLimiter`], the fleet-wide limits ([`Limiter`], in core) kept in Postgres.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
pub use cowans_core::queue::{LimitError, LimitResult, Limiter, Permit};
use cowans_store::{PermitRow, PgPool, RateLimit};
use uuid::Uuid;

/// Tokens granted for one key, and when the next one becomes available.
pub type Tokens = cowans_core::queue::Granted;

/// The Postgres limiter: permits are rows taken with `SKIP LOCKED` (claimers never wait for one
/// another), buckets are rows updated by `cowans_rate_take`.
pub struct PgLimiter {
    pool: PgPool,
    /// The limit whose slot rows exist, per scope (made once per scope and limit).
    slots: Mutex<HashMap<Arc<str>, u32>>,
}

impl PgLimiter {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            slots: Mutex::default(),
        }
    }
}

#[async_trait]
impl Limiter for PgLimiter {
    async fn acquire(
        &self,
        scope: &Arc<str>,
        limit: u32,
        want: u32,
        holder: Uuid,
        ttl: Duration,
    ) -> LimitResult<Vec<Permit>> {
        {
            let known = self
                .slots
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(scope)
                .copied();
            if known != Some(limit) {
                cowans_store::ensure_permit_slots(&self.pool, scope, limit).await?;
                self.slots
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(scope.clone(), limit);
            }
            let rows =
                cowans_store::acquire_permits(&self.pool, scope, limit, want, holder, ttl).await?;
            Ok(rows
                .into_iter()
                .map(|PermitRow { slot, token }| Permit {
                    scope: scope.clone(),
                    slot,
                    token,
                })
                .collect())
        }
    }

    async fn release(&self, permits: &[Permit]) -> LimitResult<()> {
        {
            let mut scopes: Vec<&Arc<str>> = permits.iter().map(|p| &p.scope).collect();
            scopes.sort();
            scopes.dedup();
            for scope in scopes {
                let rows: Vec<PermitRow> = permits
                    .iter()
                    .filter(|p| p.scope == *scope)
                    .map(|p| PermitRow {
                        slot: p.slot,
                        token: p.token,
                    })
                    .collect();
                cowans_store::release_permits(&self.pool, scope, &rows).await?;
            }
            Ok(())
        }
    }

    async fn extend(&self, holder: Uuid, ttl: Duration) -> LimitResult<()> {
        Ok(cowans_store::extend_permits(&self.pool, holder, ttl).await?)
    }

    async fn release_all(&self, holder: Uuid) -> LimitResult<()> {
        Ok(cowans_store::release_holder_permits(&self.pool, holder).await?)
    }

    async fn take(
        &self,
        scope: &str,
        rate: RateLimit,
        keys: &[String],
        wants: &[u32],
    ) -> LimitResult<Vec<Tokens>> {
        Ok(cowans_store::rate_take(&self.pool, scope, rate.jobs, rate.period, keys, wants).await?)
    }

    async fn refund(&self, scope: &str, rate: RateLimit, key: &str, n: u32) -> LimitResult<()> {
        Ok(cowans_store::rate_refund(&self.pool, scope, rate.jobs, rate.period, key, n).await?)
    }
}
