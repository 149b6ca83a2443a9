//! Applications on the engine. A job kind is registered once, as a [`JobKind`]: its name,
//! payload type, handler, default queue, timeout, retry policy and description. An [`App`] is a
//! named set of kinds plus the migrations of its tables. A process assembles the applications
//! its settings enable into a [`JobSet`], from which both sides are derived: the validating
//! [`KindRegistry`] (the API checks payloads and shows their JSON Schema) and the worker's
//! dispatch ([`KindRouter`], per-kind timeouts and retry policies, the queues to consume). The
//! two can therefore never disagree about a kind.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use apalis_core::{error::BoxDynError, task::Task};
use cowans_core::{KindRegistry, KindSpec, QueueName, RetryPolicy};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use sqlx::{PgPool, migrate::Migrator};
use tower::Service;

use crate::{QueueConfig, router::Route};

/// The queue a kind runs on unless it says otherwise.
pub const DEFAULT_QUEUE: &str = "default";

/// One job kind, complete: what producers need (name, payload type, defaults) and what workers
/// need (handler, timeout, retry policy).
pub struct JobKind {
    spec: KindSpec,
    queue: String,
    timeout: Option<Duration>,
    retry: Option<RetryPolicy>,
    route: Route,
}

impl JobKind {
    /// A kind named `name` whose jobs `handler` runs. The payload type `P` is the handler's
    /// argument (e.g. `task_fn(|args: Resize, job: JobMeta| ...)`): submits are checked against
    /// it, its JSON Schema is published, and the worker decodes into it.
    pub fn new<P, S>(name: &str, description: &str, handler: S) -> Self
    where
        P: DeserializeOwned + JsonSchema + Send + 'static,
        S: Service<Task<P>> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxDynError>,
        S::Future: Send + 'static,
    {
        Self {
            spec: KindSpec::of::<P>(name, description).default_queue(DEFAULT_QUEUE),
            queue: DEFAULT_QUEUE.to_owned(),
            timeout: None,
            retry: None,
            route: crate::router::route_of::<P, S>(name, handler),
        }
    }

    /// The queue jobs of this kind go to when their producer names none, and that a worker
    /// running the kind's application consumes by default.
    pub fn queue(mut self, queue: &str) -> Self {
        self.queue = queue.to_owned();
        self.spec = self.spec.default_queue(queue);
        self
    }

    /// An attempt running longer fails (and is retried per the policy); the queue's timeout
    /// otherwise.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How failed attempts are retried; the queue's policy otherwise. Its `max_attempts` is the
    /// default for submits that do not name one.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self.spec = self.spec.default_max_attempts(policy.max_attempts);
        self
    }

    pub fn name(&self) -> &str {
        self.spec.name()
    }
}

/// What an application's handlers may use, handed to [`App::kinds`] when a process assembles
/// its job set: the pool, and typed values the process provides (an application's own
/// settings, secrets included, inserted by the binary that knows them).
#[derive(Clone)]
#[non_exhaustive]
pub struct AppContext {
    /// The process's database pool (the caller's, synchronous commit).
    pub pool: PgPool,
    values: Arc<std::collections::HashMap<std::any::TypeId, Arc<dyn std::any::Any + Send + Sync>>>,
}

impl AppContext {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            values: Arc::default(),
        }
    }

    /// Adds a value applications can ask for by type (one per type).
    pub fn with<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        Arc::make_mut(&mut self.values).insert(std::any::TypeId::of::<T>(), Arc::new(value));
        self
    }

    /// The value of type `T`, if the process provided one.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.values
            .get(&std::any::TypeId::of::<T>())
            .and_then(|v| v.downcast_ref::<T>())
    }
}

/// An application: a named set of job kinds and the migrations of its tables (applied only
/// where it is enabled).
#[derive(Clone, Copy)]
pub struct App {
    pub name: &'static str,
    pub description: &'static str,
    /// The application's tables (`migrations/<app>/`, embedded by the store).
    pub migrations: Option<&'static Migrator>,
    /// Its kinds, built with the process's context; an error (a missing setting, a key that
    /// does not decrypt) stops the process at start with the message.
    pub kinds: fn(&AppContext) -> Result<Vec<JobKind>, String>,
}

impl App {
    /// The application named `name` among `available`; the error lists the available ones.
    pub fn find<'a>(available: &'a [App], name: &str) -> Result<&'a App, JobSetError> {
        available
            .iter()
            .find(|a| a.name == name)
            .ok_or_else(|| JobSetError::UnknownApp {
                name: name.to_owned(),
                available: available
                    .iter()
                    .map(|a| a.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Why a set of applications cannot be assembled; the message names the culprit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobSetError {
    #[error("apps: {name:?} is not an application of this build; available: {available}")]
    UnknownApp { name: String, available: String },
    #[error("job kind {kind:?} is registered by both {first} and {second}")]
    DuplicateKind {
        kind: String,
        first: String,
        second: String,
    },
    #[error("application {app}: {problem}")]
    App { app: String, problem: String },
    #[error("job kind {kind:?} of {app}: {problem}")]
    BadKind {
        kind: String,
        app: String,
        problem: String,
    },
}

struct Entry {
    app: &'static str,
    kind: JobKind,
}

/// The job kinds of the enabled applications: the one source of truth for validation, schemas,
/// dispatch, per-kind timeouts and retries, default queues and migrations.
#[derive(Clone, Default)]
pub struct JobSet {
    apps: Vec<&'static str>,
    kinds: Arc<BTreeMap<String, Entry>>,
    migrations: Vec<&'static Migrator>,
}

impl std::fmt::Debug for JobSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobSet")
            .field("apps", &self.apps)
            .field("kinds", &self.kinds.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl JobSet {
    /// The applications named in `enabled`, picked from `available` (the build's applications),
    /// with their kinds built in `ctx`.
    pub fn assemble(
        available: &[App],
        enabled: &[String],
        ctx: &AppContext,
    ) -> Result<JobSet, JobSetError> {
        let mut apps = Vec::with_capacity(enabled.len());
        for name in enabled {
            let app = App::find(available, name)?;
            if !apps.iter().any(|a: &App| a.name == app.name) {
                apps.push(*app);
            }
        }
        Self::of(&apps, ctx)
    }

    /// Exactly these applications.
    pub fn of(apps: &[App], ctx: &AppContext) -> Result<JobSet, JobSetError> {
        let mut kinds: BTreeMap<String, Entry> = BTreeMap::new();
        for app in apps {
            let built = (app.kinds)(ctx).map_err(|problem| JobSetError::App {
                app: app.name.to_owned(),
                problem,
            })?;
            for kind in built {
                let bad = |problem: String| JobSetError::BadKind {
                    kind: kind.name().to_owned(),
                    app: app.name.to_owned(),
                    problem,
                };
                cowans_core::validate_kind(kind.name()).map_err(|e| bad(e.to_string()))?;
                QueueName::new(kind.queue.clone()).map_err(|e| bad(e.to_string()))?;
                if let Some(p) = &kind.retry {
                    p.validate().map_err(bad)?;
                }
                if let Some(other) = kinds.get(kind.name()) {
                    return Err(JobSetError::DuplicateKind {
                        kind: kind.name().to_owned(),
                        first: other.app.to_owned(),
                        second: app.name.to_owned(),
                    });
                }
                kinds.insert(
                    kind.name().to_owned(),
                    Entry {
                        app: app.name,
                        kind,
                    },
                );
            }
        }
        Ok(JobSet {
            apps: apps.iter().map(|a| a.name).collect(),
            kinds: Arc::new(kinds),
            migrations: apps.iter().filter_map(|a| a.migrations).collect(),
        })
    }

    /// The enabled applications, by name.
    pub fn apps(&self) -> &[&'static str] {
        &self.apps
    }

    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }

    /// The registry producers validate against (and whose schemas `GET /kinds` shows).
    pub fn registry(&self) -> KindRegistry {
        self.kinds
            .values()
            .fold(KindRegistry::new(), |r, e| r.insert(e.kind.spec.clone()))
    }

    /// Dispatch for a worker: every kind of the set, on whichever queue its job arrives.
    pub fn router(&self) -> crate::KindRouter {
        self.kinds
            .iter()
            .fold(crate::KindRouter::new(), |r, (name, e)| {
                r.insert(name, e.kind.route.clone())
            })
    }

    /// The queues the kinds run on by default (what a worker consumes when told no queues).
    pub fn queues(&self) -> Vec<QueueName> {
        let mut queues: Vec<QueueName> = self
            .kinds
            .values()
            .filter_map(|e| QueueName::new(e.kind.queue.clone()).ok())
            .collect();
        queues.sort();
        queues.dedup();
        queues
    }

    /// `queue` with the kinds' own timeouts and retry policies added, where the queue's settings
    /// do not already name one for that kind (operators' settings win over code).
    pub fn configure(&self, mut queue: QueueConfig) -> QueueConfig {
        for (name, e) in self.kinds.iter() {
            if let Some(t) = e.kind.timeout
                && !queue.timeout_by_kind.contains_key(name)
            {
                queue = queue.timeout_for(name, t);
            }
            if let Some(p) = e.kind.retry
                && !queue.retry_by_kind.contains_key(name)
            {
                queue = queue.retry_for(name, p);
            }
        }
        queue
    }

    /// The migrations of the enabled applications.
    pub fn migrations(&self) -> &[&'static Migrator] {
        &self.migrations
    }
}

#[cfg(test)]
mod tests {
    use apalis_core::task::task_fn::task_fn;
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Resize {
        #[allow(dead_code)]
        width: u32,
    }

    fn kinds(_: &AppContext) -> Result<Vec<JobKind>, String> {
        Ok(vec![
            JobKind::new(
                "img.resize",
                "resizes",
                task_fn(|_: Resize| async { Ok::<(), BoxDynError>(()) }),
            )
            .queue("images")
            .timeout(Duration::from_secs(7))
            .retry(RetryPolicy {
                max_attempts: 3,
                ..RetryPolicy::default()
            }),
        ])
    }

    const IMAGES: App = App {
        name: "images",
        description: "test",
        migrations: None,
        kinds,
    };

    fn ctx() -> AppContext {
        // A pool that never connects: building kinds must not touch the database.
        AppContext::new(
            sqlx::postgres::PgPoolOptions::new()
                .connect_lazy("postgres://nobody@127.0.0.1:1/none")
                .expect("lazy pool"),
        )
    }

    #[tokio::test]
    async fn one_registration_feeds_validation_dispatch_and_queue_settings() {
        let set = JobSet::assemble(&[IMAGES], &["images".to_owned()], &ctx()).unwrap();
        let registry = set.registry().reject_unknown(true);
        assert_eq!(
            registry.check("img.resize", &mut json!({"width": 3})),
            cowans_core::KindCheck::Valid
        );
        assert!(matches!(
            registry.check("img.resize", &mut json!({"width": "wide"})),
            cowans_core::KindCheck::Invalid(e) if e.path == "width"
        ));
        let spec = registry.get("img.resize").unwrap();
        assert_eq!(spec.queue(), Some("images"));
        assert_eq!(spec.max_attempts(), Some(3));
        assert_eq!(set.router().kinds().collect::<Vec<_>>(), vec!["img.resize"]);
        assert_eq!(set.queues(), vec![QueueName::new("images").unwrap()]);
        let q = set.configure(
            QueueConfig::new(QueueName::new("images").unwrap())
                .timeout_for("other", Duration::from_secs(1)),
        );
        assert_eq!(q.timeout_of("img.resize"), Some(Duration::from_secs(7)));
        assert_eq!(q.policy_for("img.resize").max_attempts, 3);
        let operator = set.configure(
            QueueConfig::new(QueueName::new("images").unwrap())
                .timeout_for("img.resize", Duration::from_secs(60)),
        );
        assert_eq!(
            operator.timeout_of("img.resize"),
            Some(Duration::from_secs(60)),
            "settings win over the kind's own"
        );
    }

    #[tokio::test]
    async fn unknown_apps_and_duplicate_kinds_are_refused_by_name() {
        let e = JobSet::assemble(&[IMAGES], &["nope".to_owned()], &ctx()).unwrap_err();
        assert!(
            e.to_string().contains("\"nope\"") && e.to_string().contains("images"),
            "{e}"
        );
        let twin = App {
            name: "twin",
            ..IMAGES
        };
        let e = JobSet::of(&[IMAGES, twin], &ctx()).unwrap_err();
        assert_eq!(
            e,
            JobSetError::DuplicateKind {
                kind: "img.resize".into(),
                first: "images".into(),
                second: "twin".into()
            }
        );
    }
}
