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
    /// An incremental pull asks for products updated since the newest one seen less this many
    /// seconds (Shopify's search index lags behind its writes).
    pub incremental_overlap_secs: u64,
    /// An incremental pull of at most this many products reads them through paginated queries;
    /// more go through a bulk export.
    pub incremental_page_max: usize,
    /// When each shop's incremental pull runs (cron, UTC; empty: never on its own). Applied to a
    /// shop when it is added; change one shop's with `PATCH /api/v1/shops/{shop}`.
    pub incremental_schedule: String,
    /// When each shop's reconciliation runs (cron, UTC; empty: never on its own): its product
    /// ids and `updatedAt` compared with Shopify, the differences repaired. Applied to a shop
    /// when it is added.
    pub reconcile_schedule: String,
    /// Where Shopify sends this catalog's webhooks: the public URL of the API's
    /// `/webhooks/shopify`. When set, each shop added is subscribed to its product topics.
    pub webhook_url: Option<String>,
    /// Nobody approves their own staged change (the four-eyes rule).
    pub four_eyes: bool,
    /// Approving changes starts their shop's push; off: pushes start on demand only.
    pub push_on_approve: bool,
    /// Changes a push takes (and reads from Shopify) at a time.
    pub push_batch: usize,
    /// A push with at least this many approved changes reads through a bulk export and writes
    /// through bulk mutations (fewer go through `nodes()` reads and aliased mutations).
    pub push_bulk_min: usize,
    /// Changes a bulk push takes at a time.
    pub push_bulk_batch: usize,
    /// When the catalog counts every queue's dead letters and notifies a rise (cron, UTC;
    /// empty: never).
    pub dead_watch_schedule: String,
    /// Who hears when pushes and bulk edits finish, and how.
    pub notify: crate::notify::NotifySettings,
    /// Where each shop's Shopify budget (the cost bucket every process paces against) lives:
    /// `"postgres"` (default) or `"redis"` (needs `[redis]`).
    pub budgets: BudgetStore,
}

/// Where the fleet's shared Shopify budgets live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetStore {
    #[default]
    Postgres,
    Redis,
}

impl Default for CatalogSettings {
    fn default() -> Self {
        Self {
            secret_keys: BTreeMap::new(),
            active_key: None,
            pull_batch: 500,
            progress_every_ms: 1000,
            incremental_overlap_secs: 300,
            incremental_page_max: 250,
            incremental_schedule: "*/5 * * * *".to_owned(),
            reconcile_schedule: "17 3 * * *".to_owned(),
            webhook_url: None,
            four_eyes: false,
            push_on_approve: true,
            push_batch: 250,
            push_bulk_min: 500,
            push_bulk_batch: 5_000,
            dead_watch_schedule: "* * * * *".to_owned(),
            notify: Default::default(),
            budgets: BudgetStore::Postgres,
        }
    }
}
