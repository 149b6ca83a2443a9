//! Per-key request rate limiting: a token bucket per caller (burst, then `per_second`), in the
//! API process. Over the limit: 429 with `Retry-After`.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateConfig {
    pub per_second: f64,
    pub burst: f64,
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

    /// Takes one request for `who`; `Err(wait)` when over the limit.
    pub fn check(&self, who: &str) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let c = self.config;
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
