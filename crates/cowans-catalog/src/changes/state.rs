//! A staged change's states and the moves between them: the one place they are decided. Every
//! statement that moves a change passes the states [`ChangeState::from_states`] allows.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeState {
    /// Waiting for review.
    Pending,
    /// Approved; the next push of its shop takes it.
    Approved,
    Rejected,
    /// A push has taken it.
    Pushing,
    /// Shopify has the proposed values (written, or found there already).
    Pushed,
    /// Shopify changed a field since the base: back to review with base, current and proposed.
    Conflict,
    /// Shopify refused it (its user errors are attached); never retried.
    Failed,
    /// Newer changes took over all its fields.
    Superseded,
}

impl ChangeState {
    pub const ALL: [ChangeState; 8] = [
        Self::Pending,
        Self::Approved,
        Self::Rejected,
        Self::Pushing,
        Self::Pushed,
        Self::Conflict,
        Self::Failed,
        Self::Superseded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Pushing => "pushing",
            Self::Pushed => "pushed",
            Self::Conflict => "conflict",
            Self::Failed => "failed",
            Self::Superseded => "superseded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// The moves a change may make.
    pub fn can_move_to(self, to: ChangeState) -> bool {
        use ChangeState::*;
        matches!(
            (self, to),
            // review
            (Pending, Approved)
            | (Pending | Conflict, Rejected)
            // a newer change takes over all its fields
            | (Pending, Superseded)
            // a push takes it (again, when the push before it did not finish)
            | (Approved | Pushing, Pushing)
            | (Pushing, Pushed | Conflict | Failed)
            // a reviewer resolves the conflict
            | (Conflict, Pending)
        )
    }

    /// The states a change may move to `to` from, as the store's statements take them.
    pub fn from_states(to: ChangeState) -> Vec<&'static str> {
        Self::ALL
            .into_iter()
            .filter(|s| s.can_move_to(to))
            .map(Self::as_str)
            .collect()
    }

    /// No move leads out of it.
    pub fn is_final(self) -> bool {
        Self::ALL.into_iter().all(|to| !self.can_move_to(to))
    }
}

impl fmt::Display for ChangeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifecycle_is_the_documented_one() {
        use ChangeState::*;
        assert_eq!(ChangeState::from_states(Approved), ["pending"]);
        assert_eq!(ChangeState::from_states(Rejected), ["pending", "conflict"]);
        assert_eq!(ChangeState::from_states(Pending), ["conflict"]);
        assert_eq!(ChangeState::from_states(Pushing), ["approved", "pushing"]);
        let finals: Vec<_> = ChangeState::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .collect();
        assert_eq!(finals, [Rejected, Pushed, Failed, Superseded]);
        assert!(!Approved.can_move_to(Pushed), "only through a push");
        for s in ChangeState::ALL {
            assert_eq!(ChangeState::parse(s.as_str()), Some(s));
        }
    }
}
