//! Job identity, queue names and the job state machine.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The database identity of a job; assigned at enqueue, increasing in insertion order.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct JobId(pub i64);

impl From<i64> for JobId {
    fn from(id: i64) -> Self {
        JobId(id)
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Why a queue or kind name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("{field} is {len} characters long; at most 128 are allowed")]
    TooLong { field: &'static str, len: usize },
    #[error(
        "{field} {value:?} contains {bad:?}; only lowercase letters, digits, '.', '_' and '-' are allowed"
    )]
    BadChar {
        field: &'static str,
        value: String,
        bad: char,
    },
}

fn validate_name(field: &'static str, value: &str) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(NameError::Empty { field });
    }
    let len = value.chars().count();
    if len > 128 {
        return Err(NameError::TooLong { field, len });
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')))
    {
        return Err(NameError::BadChar {
            field,
            value: value.to_owned(),
            bad,
        });
    }
    Ok(())
}

/// Checks a job kind name (same alphabet as queue names).
pub fn validate_kind(kind: &str) -> Result<(), NameError> {
    validate_name("kind", kind)
}

/// A validated queue name: 1..=128 characters of `[a-z0-9._-]`.
///
/// Queue names travel in NOTIFY payloads and metric labels, so the alphabet is kept small.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct QueueName(String);

impl QueueName {
    pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
        let name = name.into();
        validate_name("queue", &name)?;
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for QueueName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for QueueName {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<QueueName> for String {
    fn from(value: QueueName) -> Self {
        value.0
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a job is in its life. See ARCHITECTURE.md for the drawn state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Runnable now; claimable by any worker of its queue.
    Available,
    /// Waiting for its `run_at` (delayed enqueue or a retry with backoff).
    Scheduled,
    /// Claimed by a worker that holds its lease.
    Running,
    /// Finished successfully.
    Completed,
    /// Stopped by an operator; never retried.
    Cancelled,
    /// Out of attempts, failed permanently, or undecodable: the dead-letter set.
    Dead,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Available,
        JobState::Scheduled,
        JobState::Running,
        JobState::Completed,
        JobState::Cancelled,
        JobState::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Available => "available",
            JobState::Scheduled => "scheduled",
            JobState::Running => "running",
            JobState::Completed => "completed",
            JobState::Cancelled => "cancelled",
            JobState::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }

    /// True for states a job never leaves on its own.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Cancelled | JobState::Dead
        )
    }

    /// The transitions the engine performs. Every SQL statement that changes `state` implements
    /// one of these; the store tests check them.
    pub fn can_move_to(self, to: JobState) -> bool {
        use JobState::*;
        matches!(
            (self, to),
            // promotion when run_at passes
            (Scheduled, Available)
            // claim
            | (Available, Running)
            // ack, retry with backoff, immediate retry / rescue / hand-back, dead letter
            | (Running, Completed)
            | (Running, Scheduled)
            | (Running, Available)
            | (Running, Dead)
            // operator cancel
            | (Available | Scheduled | Running, Cancelled)
            // re-drive
            | (Dead, Available)
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of a job's error history: which attempt failed, when, on which worker, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptError {
    pub attempt: i32,
    pub at: DateTime<Utc>,
    pub worker: Option<String>,
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_are_validated_with_the_field_named() {
        assert!(QueueName::new("shopify.push-1_a").is_ok());
        assert_eq!(
            QueueName::new("").unwrap_err(),
            NameError::Empty { field: "queue" }
        );
        let err = QueueName::new("Bad Queue").unwrap_err().to_string();
        assert!(err.contains("queue") && err.contains("'B'"), "{err}");
        assert!(matches!(
            QueueName::new("a".repeat(129)),
            Err(NameError::TooLong { len: 129, .. })
        ));
        assert!(validate_kind("demo.sleep").is_ok());
        assert!(validate_kind("demo sleep").is_err());
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for state in JobState::ALL {
            assert_eq!(JobState::parse(state.as_str()), Some(state));
        }
        assert_eq!(JobState::parse("nope"), None);
    }

    #[test]
    fn final_states_have_no_way_out_but_redrive() {
        for from in JobState::ALL.into_iter().filter(|s| s.is_final()) {
            for to in JobState::ALL {
                let allowed = from.can_move_to(to);
                assert_eq!(
                    allowed,
                    from == JobState::Dead && to == JobState::Available,
                    "{from} -> {to}"
                );
            }
        }
        assert!(JobState::Available.can_move_to(JobState::Running));
        assert!(!JobState::Scheduled.can_move_to(JobState::Running));
    }
}
