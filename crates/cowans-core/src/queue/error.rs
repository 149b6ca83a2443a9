//! The error every queue driver answers with: the domain outcomes callers act on, and backend
//! failures whose text is for the log only.

use serde_json::Value;

/// A driver error. `Invalid` names the field and the problem; `Backend` keeps its cause for the
/// log, and callers must not show its text to users.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Input the driver refuses; `field` names it (`jobs[3].args.sku`, `queue`).
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
    /// The backend cannot take the call now (no connection, shutting down, a failover).
    #[error("unavailable: {message}")]
    Unavailable { message: String },
    /// Anything else the backend reported.
    #[error("{backend} error: {message}")]
    Backend {
        backend: &'static str,
        message: String,
    },
}

impl QueueError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        QueueError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        QueueError::NotFound { what: what.into() }
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        QueueError::Conflict {
            message: message.into(),
            details: Value::Null,
        }
    }
}

pub type QueueResult<T> = std::result::Result<T, QueueError>;
