//! Who does something: every action through the engine's front door names its actor, and the
//! audit log records it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a caller may do, ordered: `viewer` < `operator` < `admin`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything except the audit log.
    Viewer,
    /// Also submits, cancels, retries, re-drives, pauses and resumes.
    Operator,
    /// Also purges dead letters, reads the audit log and manages keys.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The caller of an action, as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// `key:<id>:<name>`, `jwt:<subject>`, `cli:<os user>`, `system:<component>`,
    /// `webhook:<shop domain>`.
    pub name: String,
    pub role: Role,
    /// The client's address, for calls that came over the network.
    pub client_addr: Option<String>,
}

impl Actor {
    /// An operator at the command line (who can reach the database can do anything).
    pub fn cli(os_user: &str) -> Self {
        Self {
            name: format!("cli:{os_user}"),
            role: Role::Admin,
            client_addr: None,
        }
    }

    /// Shopify delivering a shop's webhook (verified by its signature).
    pub fn webhook(shop_domain: &str, client_addr: Option<String>) -> Self {
        Self {
            name: format!("webhook:{shop_domain}"),
            role: Role::Operator,
            client_addr,
        }
    }

    /// Cowans itself (a job, the leader, an application's own logic).
    pub fn system(component: &str) -> Self {
        Self {
            name: format!("system:{component}"),
            role: Role::Admin,
            client_addr: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_round_trip() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
        assert_eq!(Actor::cli("ana").name, "cli:ana");
    }
}
