//! Errors of the store: input refused, the domain outcomes callers act on (not found, conflict,
//! lost lease, unavailable), and unexpected database failures. SQLSTATEs are translated here and
//! nowhere else.

use serde_json::Value;

/// A store error. `Invalid` names the field and the problem; `Database` keeps its cause for the
/// log, and callers must not show its text to users.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Input the store refuses; `field` names it (`jobs[3].args.sku`, `queue`).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The thing acted on does not exist (`what` says which: "job 42").
    #[error("{what} does not exist")]
    NotFound { what: String },
    /// The action is not possible in the current state, or would duplicate something.
    #[error("{message}")]
    Conflict { message: String, details: Value },
    /// The caller's lease on a job is gone: another worker owns it, or it was cancelled.
    #[error("the lease on this job was lost (rescued, cancelled or taken over)")]
    StaleLease,
    /// The database cannot take the call now (pool exhausted or closed, shutting down).
    #[error("unavailable: {message}")]
    Unavailable { message: String },
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        StoreError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        StoreError::NotFound { what: what.into() }
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        StoreError::Conflict {
            message: message.into(),
            details: Value::Null,
        }
    }

    /// The database refused the statement (a constraint, a trigger, a bad value): it was rolled
    /// back and nothing was written, so doing part of it again cannot duplicate anything. Not
    /// true of a lost connection, which may have committed.
    pub fn was_refused(&self) -> bool {
        matches!(
            self,
            StoreError::Invalid { .. }
                | StoreError::Conflict { .. }
                | StoreError::Database(sqlx::Error::Database(_))
        )
    }
}

/// SQLSTATE classes and codes with a domain meaning.
const UNIQUE_VIOLATION: &str = "23505";
const CHECK_VIOLATION: &str = "23514";
const DATA_EXCEPTION_CLASS: &str = "22";

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut => StoreError::Unavailable {
                message: "no database connection became free in time".to_owned(),
            },
            sqlx::Error::PoolClosed => StoreError::Unavailable {
                message: "the database pool is closed (shutting down)".to_owned(),
            },
            sqlx::Error::Database(db) => match db.code().as_deref() {
                Some(UNIQUE_VIOLATION) => StoreError::conflict("conflicts with an existing row"),
                // A value the checks before the statement should have caught: the caller gets a
                // field-less refusal, the log gets the database's words (never the client).
                Some(code) if code == CHECK_VIOLATION || code.starts_with(DATA_EXCEPTION_CLASS) => {
                    tracing::warn!(code, error = %db.message(), "the database refused a value");
                    StoreError::invalid("input", "a value is outside what can be stored")
                }
                _ => StoreError::Database(e),
            },
            _ => StoreError::Database(e),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl From<cowans_core::queue::QueueError> for StoreError {
    fn from(e: cowans_core::queue::QueueError) -> Self {
        use cowans_core::queue::QueueError as Q;
        match e {
            Q::Invalid { field, message } => StoreError::Invalid { field, message },
            Q::NotFound { what } => StoreError::NotFound { what },
            Q::Conflict { message, details } => StoreError::Conflict { message, details },
            Q::StaleLease => StoreError::StaleLease,
            Q::Unavailable { message } => StoreError::Unavailable { message },
            Q::Backend { backend, message } => StoreError::Unavailable {
                message: format!("{backend}: {message}"),
            },
        }
    }
}

impl From<StoreError> for cowans_core::queue::QueueError {
    fn from(e: StoreError) -> Self {
        use cowans_core::queue::QueueError as Q;
        match e {
            StoreError::Invalid { field, message } => Q::Invalid { field, message },
            StoreError::NotFound { what } => Q::NotFound { what },
            StoreError::Conflict { message, details } => Q::Conflict { message, details },
            StoreError::StaleLease => Q::StaleLease,
            StoreError::Unavailable { message } => Q::Unavailable { message },
            other => Q::Backend {
                backend: "postgres",
                message: other.to_string(),
            },
        }
    }
}
