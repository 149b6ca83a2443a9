//! The closed set of things that can happen to an attempt, and the error type handlers return to
//! steer it.

use std::time::Duration;

use crate::RetryPolicy;

/// What a handler can ask for when it fails. Any other error is an ordinary failure: retried per
/// the policy, dead-lettered when attempts are exhausted.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Retry, after `after` instead of the policy's backoff when given. The attempt counts.
    #[error("{error}")]
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// Do not retry: straight to the dead-letter set.
    #[error("{error}")]
    Permanent { error: String },
}

impl JobError {
    pub fn retry(error: impl ToString) -> Self {
        JobError::Retry {
            error: error.to_string(),
            after: None,
        }
    }

    pub fn retry_after(error: impl ToString, after: Duration) -> Self {
        JobError::Retry {
            error: error.to_string(),
            after: Some(after),
        }
    }

    pub fn permanent(error: impl ToString) -> Self {
        JobError::Permanent {
            error: error.to_string(),
        }
    }
}

/// How an attempt ends, as the engine records it.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    Completed,
    /// Run again after `delay` (zero: at once). The failed attempt is recorded in the history.
    Retry {
        error: String,
        delay: Duration,
    },
    /// Move to the dead-letter set with this error.
    Dead {
        error: String,
    },
}

/// How an attempt failed, before the policy is applied.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// An ordinary error (or a panic, or a timeout).
    Error(String),
    /// The handler asked for a retry after this delay.
    RetryAfter(String, Duration),
    /// The handler or the engine declared the failure permanent (bad payload, invalid input).
    Permanent(String),
}

impl JobOutcome {
    /// Applies the policy to a failed attempt. `attempt` is the attempt that just failed (1-based)
    /// and `max_attempts` the job's own limit, which wins over the policy's.
    pub fn after_failure(
        failure: Failure,
        attempt: i32,
        max_attempts: i32,
        policy: &RetryPolicy,
        unit_random: f64,
    ) -> JobOutcome {
        let (error, requested) = match failure {
            Failure::Permanent(error) => return JobOutcome::Dead { error },
            Failure::Error(error) => (error, None),
            Failure::RetryAfter(error, after) => (error, Some(after)),
        };
        if attempt >= max_attempts {
            return JobOutcome::Dead { error };
        }
        let delay = requested.unwrap_or_else(|| policy.backoff(attempt, unit_random));
        JobOutcome::Retry { error, delay }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exhausted_attempts_go_to_dead_letters() {
        let p = RetryPolicy::default();
        let out = JobOutcome::after_failure(Failure::Error("boom".into()), 3, 3, &p, 0.5);
        assert_eq!(
            out,
            JobOutcome::Dead {
                error: "boom".into()
            }
        );
    }

    #[test]
    fn permanent_failures_skip_retries() {
        let p = RetryPolicy::default();
        let out = JobOutcome::after_failure(Failure::Permanent("bad".into()), 1, 25, &p, 0.5);
        assert!(matches!(out, JobOutcome::Dead { .. }));
    }

    #[test]
    fn requested_delay_wins_over_backoff() {
        let p = RetryPolicy::default();
        let out = JobOutcome::after_failure(
            Failure::RetryAfter("later".into(), Duration::from_millis(1500)),
            1,
            25,
            &p,
            0.5,
        );
        assert_eq!(
            out,
            JobOutcome::Retry {
                error: "later".into(),
                delay: Duration::from_millis(1500)
            }
        );
        let out = JobOutcome::after_failure(Failure::Error("e".into()), 2, 25, &p, 0.5);
        assert_eq!(
            out,
            JobOutcome::Retry {
                error: "e".into(),
                delay: Duration::from_secs(2)
            }
        );
    }
}
