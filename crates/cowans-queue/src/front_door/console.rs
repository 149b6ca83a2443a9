//! Web console sessions: a login with a credential the API accepts opens one (audited as
//! `console.login`), the browser keeps only a random token, logout closes it
//! (`console.logout`). Each session carries the token its state-changing forms must echo.

use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use cowans_core::{Actor, Role};
use cowans_store::Result;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::FrontDoor;

/// What a login hands the browser.
#[derive(Debug, Clone)]
pub struct ConsoleLogin {
    /// The session cookie's value (shown once; only its hash is kept).
    pub token: String,
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

/// The signed-in user of a live session.
#[derive(Debug, Clone)]
pub struct ConsoleUser {
    pub name: String,
    pub role: Role,
    /// The token the session's forms carry.
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

impl FrontDoor {
    /// Opens a console session for `actor` (authenticated by the caller) lasting `ttl`; with
    /// `api_key_id`, revoking that key ends it.
    pub async fn open_console_session(
        &self,
        actor: &Actor,
        api_key_id: Option<i64>,
        ttl: Duration,
    ) -> Result<ConsoleLogin> {
        let login = ConsoleLogin {
            token: random_token(),
            csrf: random_token(),
            expires_at: Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default(),
        };
        let mut tx = self.inner.pool.begin().await?;
        cowans_store::console::open_console_session(
            &mut tx,
            &hash(&login.token),
            &actor.name,
            actor.role.as_str(),
            api_key_id,
            &login.csrf,
            actor.client_addr.as_deref(),
            login.expires_at,
        )
        .await?;
        let details = json!({ "expires_at": login.expires_at });
        let recorded = self
            .record(&mut tx, actor, "console.login", None, details)
            .await?;
        recorded.commit(tx).await?;
        Ok(login)
    }

    /// The user of the live session `token` (none if unknown, expired, or its key revoked).
    pub async fn console_session(&self, token: &str) -> Result<Option<ConsoleUser>> {
        let found =
            cowans_store::console::find_console_session(&self.inner.pool, &hash(token)).await?;
        Ok(found.and_then(|s| {
            Some(ConsoleUser {
                role: Role::parse(&s.role)?,
                name: s.actor,
                csrf: s.csrf,
                expires_at: s.expires_at,
            })
        }))
    }

    /// Closes the session `token` of `actor`.
    pub async fn close_console_session(&self, actor: &Actor, token: &str) -> Result<()> {
        let mut tx = self.inner.pool.begin().await?;
        if cowans_store::console::close_console_session(&mut tx, &hash(token)).await? {
            let recorded = self
                .record(&mut tx, actor, "console.logout", None, json!({}))
                .await?;
            recorded.commit(tx).await?;
        }
        Ok(())
    }
}
