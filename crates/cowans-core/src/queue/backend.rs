//! Which backend stores a queue, and where a job lives given only its id.

use serde::{Deserialize, Serialize};

use crate::JobId;

/// The store of a queue's jobs (`backend = "postgres" | "redis"` in a queue's settings).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Postgres,
    Redis,
}

/// The first id Redis gives a job. Postgres numbers its jobs from 1 and would need 4.5 × 10^15
/// of them to get here, and every Redis id stays below 2^53 (exact as a JavaScript number), so
/// ids never collide across backends and an id alone says where its job lives.
pub const REDIS_FIRST_ID: i64 = 1 << 52;

impl Backend {
    /// The backend that stores the job with this id.
    pub fn of_job(id: JobId) -> Backend {
        if id.0 >= REDIS_FIRST_ID {
            Backend::Redis
        } else {
            Backend::Postgres
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Redis => "redis",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_names_its_backend() {
        assert_eq!(Backend::of_job(JobId(1)), Backend::Postgres);
        assert_eq!(
            Backend::of_job(JobId(REDIS_FIRST_ID - 1)),
            Backend::Postgres
        );
        assert_eq!(Backend::of_job(JobId(REDIS_FIRST_ID)), Backend::Redis);
        // Redis ids stay exact in a double for 2^52 jobs.
        assert!(((REDIS_FIRST_ID * 2 - 1) as f64) as i64 == REDIS_FIRST_ID * 2 - 1);
    }
}
