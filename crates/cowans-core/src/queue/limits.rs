//! Fleet-wide limits behind a trait: a concurrency limit per queue (permits) and a rate limit
//! per queue or per job key (GCRA buckets). The Postgres limiter keeps both in tables, the Redis
//! one in the limited queue's keys; the producer sees only [`Limiter`].

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::RateLimit;

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

/// What a bucket granted for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    pub key: String,
    pub granted: u32,
    /// When the next token of this key becomes available.
    pub next_at: DateTime<Utc>,
}

/// Fleet-wide limits. Every method is one round trip for any number of permits or keys.
#[async_trait]
pub trait Limiter: Send + Sync + 'static {
    /// Takes up to `want` of the `limit` permits of `scope` for `holder`, valid for `ttl` unless
    /// extended. Permits of a holder that stopped extending them (it crashed) become free.
    async fn acquire(
        &self,
        scope: &Arc<str>,
        limit: u32,
        want: u32,
        holder: Uuid,
        ttl: Duration,
    ) -> LimitResult<Vec<Permit>>;

    /// Gives permits back; producers of the scope blocked by the limit are woken
    /// (`Wakeup::PermitsFreed`), or poll every 50 ms.
    async fn release(&self, permits: &[Permit]) -> LimitResult<()>;

    /// Extends every permit `holder` has (called with the heartbeat).
    async fn extend(&self, holder: Uuid, ttl: Duration) -> LimitResult<()>;

    /// Gives back every permit `holder` has (shutdown).
    async fn release_all(&self, holder: Uuid) -> LimitResult<()>;

    /// Takes up to `wants[i]` tokens for `keys[i]` of `scope` limited by `rate`: a bucket of
    /// `rate.jobs` tokens refilled one every `rate.period / rate.jobs` (GCRA).
    async fn take(
        &self,
        scope: &str,
        rate: RateLimit,
        keys: &[String],
        wants: &[u32],
    ) -> LimitResult<Vec<Granted>>;

    /// Returns `n` unused tokens of `key`.
    async fn refund(&self, scope: &str, rate: RateLimit, key: &str, n: u32) -> LimitResult<()>;
}
