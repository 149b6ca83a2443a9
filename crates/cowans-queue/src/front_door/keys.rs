//! API keys: `cwk_` and 256 random bits, shown once at creation and stored as SHA-256 (a key is
//! a random secret, so a fast hash is enough and the lookup stays an index probe).

use base64::Engine as _;
use cowans_core::{Actor, Role};
use cowans_store::{Result, StoreError};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::FrontDoor;

pub use cowans_store::ApiKeyRow;

/// Every key starts with this, so a key is told from a JWT and found by secret scanners.
pub const KEY_PREFIX: &str = "cwk_";

fn hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

impl FrontDoor {
    /// Creates a key for `name` with `role`; returns the key (show it once: only its hash is
    /// kept) and its row.
    pub async fn create_api_key(
        &self,
        actor: &Actor,
        name: &str,
        role: Role,
    ) -> Result<(String, ApiKeyRow)> {
        let bytes: [u8; 32] = rand::random();
        let key = format!(
            "{KEY_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        );
        let prefix: String = key.chars().take(10).collect();
        let mut tx = self.inner.pool.begin().await?;
        let row = cowans_store::create_api_key(&mut tx, name, role.as_str(), &hash(&key), &prefix)
            .await?;
        let details = json!({ "name": row.name, "role": row.role, "prefix": row.prefix });
        let recorded = self
            .record(
                &mut tx,
                actor,
                "key.create",
                Some(format!("key:{}", row.id)),
                details,
            )
            .await?;
        recorded.commit(tx).await?;
        Ok((key, row))
    }

    /// Revokes key `id` (`NotFound` if there is no live key with that id).
    pub async fn revoke_api_key(&self, actor: &Actor, id: i64) -> Result<()> {
        let mut tx = self.inner.pool.begin().await?;
        if !cowans_store::revoke_api_key(&mut tx, id).await? {
            return Err(StoreError::not_found(format!("live API key {id}")));
        }
        let recorded = self
            .record(
                &mut tx,
                actor,
                "key.revoke",
                Some(format!("key:{id}")),
                json!({}),
            )
            .await?;
        recorded.commit(tx).await?;
        Ok(())
    }

    /// The live key presented as `key`, if any.
    pub async fn find_api_key(&self, key: &str) -> Result<Option<ApiKeyRow>> {
        cowans_store::find_api_key(&self.inner.pool, &hash(key)).await
    }
}
