//! Retry policy: how many attempts a job gets and how long it waits between them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Exponential backoff with jitter: attempt `n` (1-based, the attempt that just failed) waits
/// `min(max_delay, base_delay * 2^(n-1))`, then moved by up to `±jitter` of itself.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Total attempts including the first; a job that fails its last attempt is dead-lettered.
    pub max_attempts: i32,
    #[serde(with = "millis")]
    pub base_delay: Duration,
    #[serde(with = "millis")]
    pub max_delay: Duration,
    /// Fraction in `0.0..=1.0`; 0.25 moves each delay by up to a quarter either way so that jobs
    /// failing together (an outage) do not all come back in the same instant.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 25,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(3600),
            jitter: 0.25,
        }
    }
}

impl RetryPolicy {
    /// Checks the numbers; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_attempts < 1 {
            return Err(format!(
                "max_attempts is {}; it must be at least 1",
                self.max_attempts
            ));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(format!(
                "jitter is {}; it must be between 0.0 and 1.0",
                self.jitter
            ));
        }
        if self.base_delay > self.max_delay {
            return Err("base_delay must not exceed max_delay".to_owned());
        }
        Ok(())
    }

    /// The delay before the next attempt after attempt `attempt` failed. `unit_random` is a
    /// sample from `[0, 1)`: the caller owns randomness so this stays pure and testable.
    pub fn backoff(&self, attempt: i32, unit_random: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).clamp(0, 62) as u32;
        let raw = self
            .base_delay
            .checked_mul(1u32.checked_shl(exponent.min(31)).unwrap_or(u32::MAX))
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        let spread = (unit_random.clamp(0.0, 1.0) * 2.0 - 1.0) * self.jitter;
        raw.mul_f64((1.0 + spread).max(0.0))
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: f64) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            jitter,
        }
    }

    #[test]
    fn backoff_doubles_then_caps() {
        let p = policy(0.0);
        let delays: Vec<u64> = (1..=8).map(|a| p.backoff(a, 0.5).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(p.backoff(1000, 0.5), Duration::from_secs(60));
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let p = policy(0.25);
        assert_eq!(p.backoff(3, 0.0), Duration::from_secs(3));
        assert_eq!(p.backoff(3, 1.0), Duration::from_secs(5));
        for i in 0..100 {
            let d = p.backoff(3, i as f64 / 100.0);
            assert!(
                d >= Duration::from_secs(3) && d <= Duration::from_secs(5),
                "{d:?}"
            );
        }
    }

    #[test]
    fn validation_names_the_field() {
        let mut p = policy(0.1);
        p.max_attempts = 0;
        assert!(p.validate().unwrap_err().contains("max_attempts"));
        let mut p = policy(1.5);
        assert!(p.validate().unwrap_err().contains("jitter"));
        p.jitter = 0.5;
        assert!(p.validate().is_ok());
    }
}
