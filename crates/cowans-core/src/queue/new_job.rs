//! A job to enqueue, its unique key, and what an enqueue did with it; the checks every driver
//! applies before storing a job.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::{JobId, JobState, QueueName, validate_kind};

use super::{QueueError, QueueResult};

/// A job to insert.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub queue: QueueName,
    pub kind: String,
    pub args: Value,
    /// Higher runs first; default 0.
    pub priority: i16,
    /// Not before this time; `None` = now.
    pub run_at: Option<DateTime<Utc>>,
    pub max_attempts: i32,
    /// At most one job per (queue, key) in the given states; see [`Unique`].
    pub unique: Option<Unique>,
    /// The key of a queue rate-limited per key (e.g. the shop a job talks to).
    pub rate_key: Option<String>,
    /// Set by the batch that holds the job.
    pub batch_id: Option<i64>,
}

/// A unique key: while a job of the same queue with the same key is in one of `states`, enqueuing
/// another returns the existing job's id marked as a duplicate instead of inserting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unique {
    pub key: String,
    pub states: Vec<JobState>,
}

impl Unique {
    /// The states every unique key covers: a job that is waiting or running. A job may leave
    /// and re-enter these states on its own (retries, rescue), so they cannot be left out.
    pub const REQUIRED: [JobState; 3] =
        [JobState::Available, JobState::Scheduled, JobState::Running];

    /// Unique while waiting or running (the default).
    pub fn key(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            states: Self::REQUIRED.to_vec(),
        }
    }

    /// Also unique while in some final states (e.g. `Completed`: not again until pruned).
    pub fn also_in(mut self, states: &[JobState]) -> Self {
        for s in states {
            if !self.states.contains(s) {
                self.states.push(*s);
            }
        }
        self
    }

    /// The states as a bit set (see [`state_bit`]).
    pub fn mask(&self) -> i32 {
        self.states
            .iter()
            .map(|s| state_bit(*s))
            .fold(0, |a, b| a | b)
    }
}

/// The bit of a state in a unique key's state set (Postgres' `cowans_state_bit`).
pub fn state_bit(s: JobState) -> i32 {
    match s {
        JobState::Available => 1,
        JobState::Scheduled => 2,
        JobState::Running => 4,
        JobState::Completed => 8,
        JobState::Cancelled => 16,
        JobState::Dead => 32,
    }
}

/// What an enqueue did with one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    pub id: JobId,
    /// The job was not inserted: `id` is the existing job holding its unique key.
    pub duplicate: bool,
}

impl NewJob {
    pub fn new(queue: QueueName, kind: impl Into<String>, args: Value) -> Self {
        Self {
            queue,
            kind: kind.into(),
            args,
            priority: 0,
            run_at: None,
            max_attempts: crate::RetryPolicy::default().max_attempts,
            unique: None,
            rate_key: None,
            batch_id: None,
        }
    }

    pub fn unique(mut self, unique: Unique) -> Self {
        self.unique = Some(unique);
        self
    }

    pub fn rate_key(mut self, key: impl Into<String>) -> Self {
        self.rate_key = Some(key.into());
        self
    }

    pub fn priority(mut self, priority: i16) -> Self {
        self.priority = priority;
        self
    }

    /// Not before `run_at`. A time whose own year is 1 or 9999 may fall a day outside those
    /// years in UTC (`0001-01-01T00:00+02:00`); such a time is moved to the nearest one stored
    /// (a moment either way), anything further out is refused by [`NewJob::validate`].
    pub fn run_at(mut self, run_at: DateTime<Utc>) -> Self {
        let day = chrono::Duration::days(1);
        let (min, max) = (min_timestamp(), max_timestamp());
        self.run_at = Some(if run_at < min && run_at >= min - day {
            min
        } else if run_at > max && run_at <= max + day {
            max
        } else {
            run_at
        });
        self
    }

    pub fn max_attempts(mut self, max_attempts: i32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// Everything the store would refuse about this job (kind, attempts, unique key, a payload
    /// jsonb cannot hold), as an error naming the field; for callers that want to report it in
    /// their own terms before enqueueing.
    pub fn check(&self) -> QueueResult<()> {
        self.validate(None)
    }

    pub fn validate(&self, index: Option<usize>) -> QueueResult<()> {
        let at = |field: &str| match index {
            Some(i) => format!("jobs[{i}].{field}"),
            None => field.to_owned(),
        };
        validate_kind(&self.kind).map_err(|e| QueueError::invalid(at("kind"), e.to_string()))?;
        if let Some(path) = crate::unstorable::nul_at(&self.args, "args") {
            return Err(QueueError::invalid(
                at(&path),
                "contains a \\u0000 character, which no backend can store in JSON",
            ));
        }
        if let Some(t) = self.run_at
            && !(min_timestamp()..=max_timestamp()).contains(&t)
        {
            return Err(QueueError::invalid(
                at("run_at"),
                format!("is {t}; it must be between the years 1 and 9999"),
            ));
        }
        if self.max_attempts < 1 {
            return Err(QueueError::invalid(
                at("max_attempts"),
                format!("is {}; it must be at least 1", self.max_attempts),
            ));
        }
        if let Some(key) = &self.rate_key {
            text_key(key).map_err(|m| QueueError::invalid(at("rate_key"), m))?;
        }
        if let Some(u) = &self.unique {
            text_key(&u.key).map_err(|m| QueueError::invalid(at("unique.key"), m))?;
            if let Some(missing) = Unique::REQUIRED.iter().find(|s| !u.states.contains(s)) {
                return Err(QueueError::invalid(
                    at("unique.states"),
                    format!(
                        "must include {missing}: a job moves back into it on its own when retried or rescued"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Keys (unique, rate): 1 to 512 characters, no NUL (Postgres text cannot hold one).
/// Longest unique or rate key accepted, in characters.
pub const MAX_KEY: usize = 512;

fn text_key(key: &str) -> std::result::Result<(), String> {
    let chars = key.chars().count();
    if chars == 0 || chars > MAX_KEY {
        Err(format!(
            "is {chars} characters long; it must be 1 to {MAX_KEY}"
        ))
    } else if key.contains('\0') {
        Err("contains a \\u0000 character, which Postgres cannot store".to_owned())
    } else {
        Ok(())
    }
}

// The range of `run_at` accepted: Postgres stores 4713 BC to 294276 AD, but nothing useful lies
// outside ordinary calendar years, and `now() + delay` must not overflow either.
fn min_timestamp() -> DateTime<Utc> {
    DateTime::from_timestamp(-62_135_596_800, 0).unwrap_or_default() // 0001-01-01
}

fn max_timestamp() -> DateTime<Utc> {
    DateTime::from_timestamp(253_402_300_799, 0).unwrap_or_default() // 9999-12-31T23:59:59
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_of_year_one_or_9999_in_its_own_zone_is_accepted() {
        let q = crate::QueueName::new("q").unwrap();
        let at = |t: &str| DateTime::parse_from_rfc3339(t).unwrap().to_utc();
        for t in [
            at("0001-01-01T00:00:00+02:05"),
            at("9999-12-31T23:00:00-05:00"),
        ] {
            let job = NewJob::new(q.clone(), "k", serde_json::json!({})).run_at(t);
            assert!(job.validate(None).is_ok(), "{t}");
        }
        let far = at("0001-01-01T00:00:00Z") - chrono::Duration::days(3);
        let job = NewJob::new(q, "k", serde_json::json!({})).run_at(far);
        assert!(job.validate(None).is_err(), "{far}");
    }
}
