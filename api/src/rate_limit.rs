//! Request rate limiting: a token bucket per caller (burst, then `per_second`), in the API
//! process; per key for requests, per client address for failed authentications. Over the
//! limit: 429 with `Retry-After`.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Callers remembered before full buckets are forgotten (bounds memory under address churn).
const MAX_CALLERS: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateConfig {
    pub per_second: f64,
    pub burst: f64,
}

impl RateConfig {
    /// The default for failed authentications per client address.
    pub const AUTH_FAILURES: RateConfig = RateConfig {
        per_second: 1.0,
        burst: 20.0,
    };
}

impl Default for RateConfig {
    fn default() -> Self {
        Self {
            per_second: 50.0,
            burst: 200.0,
        }
    }
}

#[derive(Debug)]
pub struct KeyRateLimiter {
    config: RateConfig,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl KeyRateLimiter {
    pub fn new(config: RateConfig) -> Self {
        Self {
            config,
            buckets: Mutex::default(),
        }
    }

    /// `Err(wait)` when `who` has no request left, without taking one.
    pub fn peek(&self, who: &str) -> Result<(), Duration> {
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let Some((tokens, at)) = buckets.get(who) else {
            return Ok(());
        };
        let c = self.config;
        let tokens = (tokens + at.elapsed().as_secs_f64() * c.per_second).min(c.burst);
        if tokens >= 1.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - tokens) / c.per_second.max(f64::MIN_POSITIVE),
            ))
        }
    }

    /// Takes one request for `who`; `Err(wait)` when over the limit.
    pub fn check(&self, who: &str) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let c = self.config;
        if buckets.len() >= MAX_CALLERS && !buckets.contains_key(who) {
            // Forget callers whose bucket has refilled: they are indistinguishable from new ones.
            let full = c.burst;
            buckets.retain(|_, (t, at)| *t + at.elapsed().as_secs_f64() * c.per_second < full);
        }
        let (tokens, at) = buckets.entry(who.to_owned()).or_insert((c.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * c.per_second).min(c.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else if c.per_second > 0.0 {
            Err(Duration::from_secs_f64((1.0 - *tokens) / c.per_second))
        } else {
            Err(Duration::from_secs(60))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate_per_caller() {
        let l = KeyRateLimiter::new(RateConfig {
            per_second: 10.0,
            burst: 3.0,
        });
        assert!((0..3).all(|_| l.check("a").is_ok()));
        let wait = l.check("a").unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        assert!(l.check("b").is_ok(), "callers are limited separately");
    }
}
