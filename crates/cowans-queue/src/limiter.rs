//! Fleet-wide limits behind a trait: a concurrency limit per queue (permits) and a rate limit
//! per queue or per job key (token buckets). [`PgLimiter`] keeps both in Postgres; a Redis
//! implementation can replace it without touching the producer.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use cowans_store::{PermitRow, PgPool, RateLimit};
use futures::future::BoxFuture;
use uuid::Uuid;

pub type LimitError = Box<dyn std::error::Error + Send + Sync>;
pub type LimitResult<T> = Result<T, LimitError>;

/// One unit of a scope's concurrency limit, held while one job runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Permit {
    pub scope: Arc<str>,
    pub slot: i32,
    /// Fences the release: a permit taken over after it expired is not released by the old holder.
    pub token: i64,
}

/// Tokens granted for one key, and when the next one becomes available.
pub type Tokens = cowans_store::Granted;

/// Fleet-wide limits. Every method is one round trip for any number of permits or keys.
pub trait Limiter: Send + Sync + 'static {
    /// Takes up to `want` of the `limit` permits of `scope` for `holder`, valid for `ttl` unless
    /// extended. Permits of a holder that stopped extending them (it crashed) become free.
    fn acquire<'a>(
        &'a self,
        scope: &'a Arc<str>,
        limit: u32,
        want: u32,
        holder: Uuid,
        ttl: Duration,
    ) -> BoxFuture<'a, LimitResult<Vec<Permit>>>;

    /// Gives permits back. Producers of the scope blocked by the limit wait for
    /// `QueueSignal::permits_freed` (the Postgres limiter sends `l:<scope>` on the NOTIFY
    /// channel) or poll every 50 ms.
    fn release<'a>(&'a self, permits: &'a [Permit]) -> BoxFuture<'a, LimitResult<()>>;

    /// Extends every permit `holder` has (called with the heartbeat).
    fn extend(&self, holder: Uuid, ttl: Duration) -> BoxFuture<'_, LimitResult<()>>;

    /// Gives back every permit `holder` has (shutdown).
    fn release_all(&self, holder: Uuid) -> BoxFuture<'_, LimitResult<()>>;

    /// Takes up to `wants[i]` tokens for `keys[i]` of `scope` limited by `rate`.
    fn take<'a>(
        &'a self,
        scope: &'a str,
        rate: RateLimit,
        keys: &'a [String],
        wants: &'a [u32],
    ) -> BoxFuture<'a, LimitResult<Vec<Tokens>>>;

    /// Returns `n` unused tokens of `key`.
    fn refund<'a>(
        &'a self,
        scope: &'a str,
        rate: RateLimit,
        key: &'a str,
        n: u32,
    ) -> BoxFuture<'a, LimitResult<()>>;
}

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

impl Limiter for PgLimiter {
    fn acquire<'a>(
        &'a self,
        scope: &'a Arc<str>,
        limit: u32,
        want: u32,
        holder: Uuid,
        ttl: Duration,
    ) -> BoxFuture<'a, LimitResult<Vec<Permit>>> {
        Box::pin(async move {
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
        })
    }

    fn release<'a>(&'a self, permits: &'a [Permit]) -> BoxFuture<'a, LimitResult<()>> {
        Box::pin(async move {
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
        })
    }

    fn extend(&self, holder: Uuid, ttl: Duration) -> BoxFuture<'_, LimitResult<()>> {
        Box::pin(async move { Ok(cowans_store::extend_permits(&self.pool, holder, ttl).await?) })
    }

    fn release_all(&self, holder: Uuid) -> BoxFuture<'_, LimitResult<()>> {
        Box::pin(async move { Ok(cowans_store::release_holder_permits(&self.pool, holder).await?) })
    }

    fn take<'a>(
        &'a self,
        scope: &'a str,
        rate: RateLimit,
        keys: &'a [String],
        wants: &'a [u32],
    ) -> BoxFuture<'a, LimitResult<Vec<Tokens>>> {
        Box::pin(async move {
            Ok(
                cowans_store::rate_take(&self.pool, scope, rate.jobs, rate.period, keys, wants)
                    .await?,
            )
        })
    }

    fn refund<'a>(
        &'a self,
        scope: &'a str,
        rate: RateLimit,
        key: &'a str,
        n: u32,
    ) -> BoxFuture<'a, LimitResult<()>> {
        Box::pin(async move {
            Ok(
                cowans_store::rate_refund(&self.pool, scope, rate.jobs, rate.period, key, n)
                    .await?,
            )
        })
    }
}
