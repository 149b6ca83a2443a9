//! The worker process as a library: [`Worker::start`] connects (migrating the engine's and the
//! enabled applications' tables), applies the configured fleet-wide limits and periodic jobs,
//! starts the engine and the ops endpoints; [`Worker::run`] consumes queues until shutdown.
//! [`ctl`] holds the operator commands, which go through the front door like the API's.

pub mod ctl;

use std::{future::Future, net::SocketAddr, time::Duration};

use anyhow::Context;
use cowans_core::{Actor, QueueName};
use cowans_queue::{App, Engine, FrontDoor, JobSet, QueueConfig, ShutdownReport};
use cowans_service::{Settings, apps, backends, database, ops};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

/// A started worker process: the engine runs, the ops endpoints answer; nothing is consumed
/// until [`Worker::run`].
pub struct Worker {
    engine: Engine,
    jobs: JobSet,
    queues: Vec<QueueConfig>,
    ops_addr: SocketAddr,
    stop_ops: CancellationToken,
    ops_task: JoinHandle<std::io::Result<()>>,
}

impl Worker {
    /// `available`: the applications this build carries (`settings.apps` picks from them);
    /// `ops`: where `/metrics`, `/health` and `/ready` are served.
    pub async fn start(
        settings: Settings,
        available: &[App],
        metrics: PrometheusHandle,
        ops: TcpListener,
    ) -> anyhow::Result<Worker> {
        settings.validate()?;
        if settings.apps.is_empty() {
            anyhow::bail!(
                "no application is enabled, so there is nothing to run: set apps (e.g. COWANS__APPS={})",
                available
                    .iter()
                    .map(|a| a.name)
                    .collect::<Vec<_>>()
                    .join(",")
            );
        }
        let migrations = apps::migrations(available, &settings.apps)?;
        let pool = database::connect(&settings.database, &migrations).await?;
        let jobs = apps::assemble(available, &settings, &pool).await?;
        let names: Vec<QueueName> = if settings.worker.queues.is_empty() {
            jobs.queues()
        } else {
            settings
                .worker
                .queues
                .iter()
                .map(|q| QueueName::new(q.clone()))
                .collect::<Result<_, _>>()
                .context("worker.queues")?
        };
        let queues: Vec<QueueConfig> = names
            .into_iter()
            .map(|name| jobs.configure(queue_config(&settings, name)))
            .collect();
        let routes = backends::connect(&settings, &pool).await?;
        let front = FrontDoor::builder(pool.clone())
            .backends(routes.clone())
            .lease_ttl(settings.engine.lease_ttl)
            .kinds(jobs.registry())
            .build();
        let system = Actor::system("worker");
        for (queue, limits) in &settings.worker.limits {
            let name =
                QueueName::new(queue.clone()).with_context(|| format!("worker.limits.{queue}"))?;
            front
                .set_limits(&system, &name, limits.concurrency, limits.rate_limit())
                .await
                .with_context(|| format!("worker.limits.{queue}"))?;
        }
        for job in &settings.worker.cron {
            cowans_queue::register_cron(&pool, job)
                .await
                .with_context(|| format!("worker.cron {}", job.name))?;
        }
        let engine = Engine::start_routed(
            pool.clone(),
            settings.engine.clone(),
            queues.iter().map(|q| q.queue.to_string()).collect(),
            queues.iter().map(|q| q.concurrency as u32).sum(),
            &routes,
        )
        .await?;
        let ops_addr = ops.local_addr().context("the ops listen address")?;
        let stop_ops = CancellationToken::new();
        let ops_task = tokio::spawn(ops::serve(
            ops,
            ops::router(pool, metrics, &migrations.run, routes.redis().cloned()),
            stop_ops.clone().cancelled_owned(),
        ));
        Ok(Worker {
            engine,
            jobs,
            queues,
            ops_addr,
            stop_ops,
            ops_task,
        })
    }

    /// Where `/metrics`, `/health` and `/ready` answer.
    pub fn ops_addr(&self) -> SocketAddr {
        self.ops_addr
    }

    /// The queues this worker consumes.
    pub fn queues(&self) -> Vec<&QueueName> {
        self.queues.iter().map(|q| &q.queue).collect()
    }

    /// Consumes the queues until `shutdown` resolves, then drains to the engine's deadline and
    /// hands back the rest.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> ShutdownReport {
        let report =
            cowans_queue::run_queues(&self.engine, self.queues, self.jobs.router(), shutdown).await;
        self.stop_ops.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.ops_task).await;
        report
    }
}

/// `cowans-worker migrate`: creates the database if it does not exist and applies the engine's
/// and the enabled applications' pending migrations; says what it did.
pub async fn migrate(mut settings: Settings, available: &[App]) -> anyhow::Result<String> {
    settings.database.auto_migrate = true;
    let shown = database::redact(&settings.database.url);
    let created = database::create_if_missing(&settings.database).await?;
    let migrations = apps::migrations(available, &settings.apps)?;
    database::connect(&settings.database, &migrations).await?;
    let apps: String = settings.apps.iter().map(|a| format!(", {a}")).collect();
    let created = if created { "created, " } else { "" };
    Ok(format!(
        "migrations applied to {shown} ({created}engine{apps})"
    ))
}

/// `cowans-worker demo`: the demo application's producer on `queue` (its table migrated first).
pub async fn demo(settings: &Settings, queue: QueueName, jobs: usize) -> anyhow::Result<()> {
    let migrations = apps::migrations(apps::AVAILABLE, &["demo".to_owned()])?;
    let pool = database::connect(&settings.database, &migrations).await?;
    let front = backends::front_door(settings, &pool).await?.build();
    Ok(cowans_demo::run_producer(&front, queue, jobs).await?)
}

/// One consumed queue as the settings describe it (the job set then adds its kinds' own
/// timeouts and retry policies where the settings name none).
fn queue_config(settings: &Settings, name: QueueName) -> QueueConfig {
    let w = &settings.worker;
    let mut cfg = QueueConfig::new(name)
        .concurrency(w.concurrency)
        .retry(w.retry)
        .timeout((w.timeout_ms > 0).then(|| Duration::from_millis(w.timeout_ms)));
    for (kind, policy) in &w.retry_by_kind {
        cfg = cfg.retry_for(kind, *policy);
    }
    for (kind, ms) in &w.timeout_by_kind {
        cfg = cfg.timeout_for(kind, Duration::from_millis(*ms));
    }
    if let Some(a) = w.autoscale {
        cfg = cfg.autoscale(a);
    }
    cfg.claim_batch = w.claim_batch;
    cfg.prefetch = w.prefetch;
    cfg
}
