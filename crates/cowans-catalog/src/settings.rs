//! The catalog's settings (`[catalog]` in the settings file, `COWANS__CATALOG__...`).

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CatalogSettings {
    /// The keys shop secrets are sealed with, by id: base64 of 32 random bytes
    /// (`COWANS__CATALOG__SECRET_KEYS__K1=...`). Secrets: never shown or serialised.
    #[serde(skip_serializing)]
    pub secret_keys: BTreeMap<String, SecretString>,
    /// The key new secrets are sealed with (may be left out when there is one key).
    pub active_key: Option<String>,
    /// Products written per statement during a pull.
    pub pull_batch: usize,
    /// How often a running pull reports progress (`sync.progress` events), in milliseconds.
    pub progress_every_ms: u64,
}

impl Default for CatalogSettings {
    fn default() -> Self {
        Self {
            secret_keys: BTreeMap::new(),
            active_key: None,
            pull_batch: 500,
            progress_every_ms: 1000,
        }
    }
}
