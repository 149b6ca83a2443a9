//! One typed settings tree: defaults, then an optional TOML file, then `COWANS__SECTION__KEY`
//! environment variables (`COWANS__DATABASE__URL`, `COWANS__WORKER__CONCURRENCY`, ...).

use std::path::Path;

use cowans_core::RetryPolicy;
use cowans_queue::{Autoscale, CronJob, EngineConfig};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The applications this process runs (`apps = ["demo"]`, `COWANS__APPS=demo`): their job
    /// kinds are accepted by the API and run by workers, their tables are migrated. None by
    /// default.
    pub apps: Vec<String>,
    pub database: DatabaseSettings,
    /// The Redis server (or cluster) of the queues stored there (`[redis]`).
    pub redis: RedisSettings,
    /// Per-queue settings (`[queues.fast] backend = "redis"`); a queue not named here is
    /// stored in Postgres.
    pub queues: std::collections::BTreeMap<String, QueueSettings>,
    pub engine: EngineConfig,
    pub worker: WorkerSettings,
    pub api: ApiSettings,
    pub log: LogSettings,
    /// The catalog application's settings (`[catalog]`).
    pub catalog: cowans_catalog::CatalogSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://user:password@host:port/database`. A secret: `Debug` shows `[REDACTED]` and
    /// errors print it with the password replaced.
    #[serde(skip_serializing)]
    pub url: SecretString,
    pub max_connections: u32,
    /// Apply pending migrations at start-up (under sqlx's advisory lock).
    pub auto_migrate: bool,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/cowans".into(),
            max_connections: 20,
            auto_migrate: true,
        }
    }
}

/// Where the queues stored in Redis live.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://[:password@]host:port[/db]` (`rediss://` for TLS): one server. A secret, like
    /// `database.url`.
    #[serde(skip_serializing)]
    pub url: Option<SecretString>,
    /// A Redis Cluster's seed nodes (`redis://host:port`, comma-separated in
    /// `COWANS__REDIS__NODES`), instead of `url`.
    #[serde(skip_serializing)]
    pub nodes: Vec<SecretString>,
    /// Every key the queues write starts with `{<prefix>`: several deployments can share one
    /// server under different prefixes.
    pub prefix: String,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: None,
            nodes: Vec::new(),
            prefix: "cowans".to_owned(),
        }
    }
}

/// One queue's settings.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueSettings {
    /// Where the queue's jobs are stored: `"postgres"` (default) or `"redis"` (needs
    /// `[redis]`). Every process of a fleet must read the same value.
    pub backend: cowans_core::queue::Backend,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSettings {
    /// The queues to consume; empty (the default) = every queue the enabled applications'
    /// kinds run on.
    pub queues: Vec<String>,
    /// Jobs running at once per queue in one process.
    pub concurrency: usize,
    /// Most jobs taken by one claim statement.
    pub claim_batch: usize,
    /// Most jobs per queue claimed ahead of free slots while the handlers are fast (0 = off);
    /// see `QueueConfig::prefetch`.
    pub prefetch: usize,
    pub retry: RetryPolicy,
    /// Per-kind policies (`[worker.retry_by_kind."shopify.push"]` in the settings file).
    pub retry_by_kind: std::collections::HashMap<String, RetryPolicy>,
    /// Address of `/metrics`, `/health` and `/ready`.
    pub ops_listen: String,
    /// An attempt running longer fails and is retried per its policy (0 = no limit)...
    pub timeout_ms: u64,
    /// ...unless its kind has its own (`[worker.timeout_by_kind] "shopify.push" = 60000`).
    pub timeout_by_kind: std::collections::HashMap<String, u64>,
    /// In-process autoscaling of each queue's concurrency (`[worker.autoscale] min = 2, max = 50`);
    /// `concurrency` is then only the starting point's upper bound.
    pub autoscale: Option<Autoscale>,
    /// Fleet-wide limits written to the database at start-up
    /// (`[worker.limits."shopify.push"] concurrency = 4, rate = 2, per_ms = 1000, by_key = true`).
    pub limits: std::collections::HashMap<String, QueueLimits>,
    /// Periodic jobs registered at start-up (`[[worker.cron]]`).
    pub cron: Vec<CronJob>,
}

/// Fleet-wide limits of one queue (stored in the database: every process sees the same ones).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueLimits {
    /// Most jobs of the queue running at once across every worker process.
    pub concurrency: Option<u32>,
    /// At most `rate` jobs start per `per_ms` milliseconds...
    pub rate: Option<u32>,
    pub per_ms: u64,
    /// ...per job `rate_key` instead of for the whole queue.
    pub by_key: bool,
}

impl QueueLimits {
    pub fn rate_limit(&self) -> Option<cowans_store::RateLimit> {
        self.rate.map(|jobs| cowans_store::RateLimit {
            jobs,
            period: std::time::Duration::from_millis(self.per_ms),
            by_key: self.by_key,
        })
    }
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            queues: Vec::new(),
            concurrency: 10,
            claim_batch: 500,
            prefetch: 400,
            retry: RetryPolicy::default(),
            retry_by_kind: Default::default(),
            ops_listen: "127.0.0.1:9464".to_owned(),
            timeout_ms: 15 * 60 * 1000,
            timeout_by_kind: Default::default(),
            autoscale: None,
            limits: Default::default(),
            cron: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    pub listen: String,
    /// Requests per second each API key may make after its burst (429 beyond).
    pub rate_per_second: f64,
    pub rate_burst: u32,
    /// Accept HS256 JWT bearer tokens signed with this secret (never logged or shown)...
    #[serde(skip_serializing)]
    pub jwt_hs256_secret: Option<SecretString>,
    /// ...or RS256 tokens verified with this PEM public key.
    pub jwt_rs256_public_key_file: Option<std::path::PathBuf>,
    /// When set, tokens must carry this `iss`.
    pub jwt_issuer: Option<String>,
    /// When set, tokens must carry this `aud` (or a list including it).
    pub jwt_audience: Option<String>,
    /// When set, tokens must carry `iat` and be at most this many seconds old.
    pub jwt_max_age_secs: Option<u64>,
    /// Failed authentications each client address may make per second after its burst; beyond,
    /// 429 without looking the credential up.
    pub auth_failures_per_second: f64,
    pub auth_failure_burst: u32,
    /// Refuse jobs of kinds no worker registers (422 naming `kind`) instead of queueing them.
    pub reject_unknown_kinds: bool,
    /// Concurrent single-job submits are inserted together, up to this many per statement and
    /// commit (1 = one commit per request).
    pub submit_group_max: usize,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            rate_per_second: 50.0,
            rate_burst: 200,
            jwt_hs256_secret: None,
            jwt_rs256_public_key_file: None,
            jwt_issuer: None,
            jwt_audience: None,
            jwt_max_age_secs: None,
            auth_failures_per_second: 1.0,
            auth_failure_burst: 20,
            reject_unknown_kinds: true,
            submit_group_max: 500,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// A tracing filter, e.g. `info` or `cowans_queue=debug,info`. `RUST_LOG` wins when set.
    pub filter: String,
    pub json: bool,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            filter: "info,sqlx::postgres::notice=warn".to_owned(),
            json: false,
        }
    }
}

/// A setting that could not be loaded; the message names the key and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(String);

/// Loads settings: defaults, then `file` if given (it must exist), then the environment.
/// `DATABASE_URL` is honoured when `COWANS__DATABASE__URL` is not set.
pub fn load(file: Option<&Path>) -> Result<Settings, SettingsError> {
    let defaults = config::Config::try_from(&Settings::default())
        .map_err(|e| SettingsError(format!("internal: default settings do not serialise: {e}")))?;
    let mut builder = config::Config::builder().add_source(defaults);
    if let Some(path) = file {
        if !path.exists() {
            return Err(SettingsError(format!(
                "settings file {} does not exist (given with --config)",
                path.display()
            )));
        }
        builder = builder.add_source(config::File::from(path));
    }
    builder = builder.add_source(
        config::Environment::with_prefix("COWANS")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("worker.queues")
            .with_list_parse_key("apps")
            .with_list_parse_key("redis.nodes")
            .with_list_parse_key("catalog.notify.emails")
            .with_list_parse_key("catalog.notify.webhooks"),
    );
    if std::env::var_os("COWANS__DATABASE__URL").is_none()
        && let Ok(url) = std::env::var("DATABASE_URL")
    {
        builder = builder
            .set_override("database.url", url)
            .map_err(|e| SettingsError(e.to_string()))?;
    }
    let settings: Settings = builder
        .build()
        .and_then(|c| c.try_deserialize())
        .map_err(|e| {
            SettingsError(format!(
                "bad setting: {e} (settings come from defaults, --config FILE and COWANS__SECTION__KEY variables)"
            ))
        })?;
    settings.validate()?;
    Ok(settings)
}

impl Settings {
    /// The queues whose settings put them in Redis, sorted.
    pub fn redis_queues(&self) -> Vec<String> {
        self.queues
            .iter()
            .filter(|(_, q)| q.backend == cowans_core::queue::Backend::Redis)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Cross-field checks; messages name the setting.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let bad = |key: &str, msg: String| Err(SettingsError(format!("bad setting {key}: {msg}")));
        if self.database.max_connections == 0 {
            return bad("database.max_connections", "must be at least 1".into());
        }
        if let Err(e) = url::Url::parse(self.database.url.expose_secret()) {
            return bad("database.url", format!("not a URL ({e})"));
        }
        if self.worker.concurrency == 0 {
            return bad("worker.concurrency", "must be at least 1".into());
        }
        if self.api.submit_group_max == 0 {
            return bad("api.submit_group_max", "must be at least 1".into());
        }
        if self.api.auth_failures_per_second.is_nan()
            || self.api.auth_failures_per_second <= 0.0
            || self.api.auth_failure_burst == 0
        {
            return bad(
                "api.auth_failures_per_second",
                "auth_failures_per_second and auth_failure_burst must be positive".into(),
            );
        }
        if self.api.rate_per_second <= 0.0 || self.api.rate_burst == 0 {
            return bad(
                "api.rate_per_second",
                "rate_per_second and rate_burst must be positive".into(),
            );
        }
        if self.worker.claim_batch == 0 {
            return bad("worker.claim_batch", "must be at least 1".into());
        }
        for q in &self.worker.queues {
            if let Err(e) = cowans_core::QueueName::new(q.clone()) {
                return bad("worker.queues", e.to_string());
            }
        }
        if let Err(e) = self.worker.retry.validate() {
            return bad("worker.retry", e);
        }
        for (kind, policy) in &self.worker.retry_by_kind {
            if let Err(e) = policy.validate() {
                return bad(&format!("worker.retry_by_kind.{kind}"), e);
            }
        }
        if let Some(a) = &self.worker.autoscale
            && let Err(e) = a.validate()
        {
            return bad("worker.autoscale", e);
        }
        for (queue, l) in &self.worker.limits {
            if let Err(e) = cowans_core::QueueName::new(queue.clone()) {
                return bad("worker.limits", e.to_string());
            }
            if l.concurrency == Some(0) {
                return bad(
                    &format!("worker.limits.{queue}.concurrency"),
                    "must be at least 1".into(),
                );
            }
            if l.rate == Some(0) || (l.rate.is_some() && l.per_ms == 0) {
                return bad(
                    &format!("worker.limits.{queue}.rate"),
                    "rate and per_ms must be at least 1".into(),
                );
            }
        }
        for c in &self.worker.cron {
            if let Err(e) = c.validate() {
                return bad("worker.cron", e);
            }
        }
        for queue in self.queues.keys() {
            if let Err(e) = cowans_core::QueueName::new(queue.clone()) {
                return bad(&format!("queues.{queue}"), e.to_string());
            }
        }
        if self.catalog.budgets == cowans_catalog::BudgetStore::Redis
            && self.redis.url.is_none()
            && self.redis.nodes.is_empty()
        {
            return bad(
                "catalog.budgets",
                "is \"redis\", but neither redis.url nor redis.nodes is set".into(),
            );
        }
        if self.redis.url.is_some() && !self.redis.nodes.is_empty() {
            return bad(
                "redis.nodes",
                "set redis.url (one server) or redis.nodes (a cluster), not both".into(),
            );
        }
        let on_redis = self.redis_queues();
        if !on_redis.is_empty() && self.redis.url.is_none() && self.redis.nodes.is_empty() {
            return bad(
                &format!("queues.{}.backend", on_redis[0]),
                "is \"redis\", but neither redis.url nor redis.nodes is set".into(),
            );
        }
        if let Err(e) = self.engine.validate() {
            return bad("engine", e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Settings::default().validate().expect("defaults validate");
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let mut s = Settings::default();
        s.database.url = "postgres://app:s3cret-db@db.example/cowans".into();
        s.api.jwt_hs256_secret = Some("s3cret-jwt".into());
        s.redis.url = Some("redis://:s3cret-redis@cache.example:6379".into());
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
    }

    #[test]
    fn bad_values_name_their_setting() {
        let mut s = Settings::default();
        s.worker.queues = vec!["Bad Name".into()];
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("worker.queues"), "{e}");
        let mut s = Settings::default();
        s.queues.insert(
            "fast".into(),
            QueueSettings {
                backend: cowans_core::queue::Backend::Redis,
            },
        );
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("queues.fast.backend"), "{e}");
        let mut s = Settings::default();
        s.database.url = "not a url".into();
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("database.url")
        );
    }
}
