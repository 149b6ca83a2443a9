//! The per-process engine: registration, background services, the ack intake, and graceful
//! shutdown.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use apalis_core::worker::context::WorkerContext;
use cowans_core::queue::{Driver, LeaseRef, WorkerInfo};
use cowans_store::{PgDriver, PgPool};
use serde::de::DeserializeOwned;
use tokio::{
    sync::{Notify, RwLock, mpsc},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    Backends, EngineConfig, PgBackend, QueueConfig,
    completer::{self, Ack},
    heartbeat,
    in_flight::InFlight,
    limiter::{Limiter, PgLimiter},
    listener::{self, Signals},
    maintenance,
};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid engine setting: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] cowans_store::StoreError),
    #[error(transparent)]
    Queue(#[from] cowans_core::queue::QueueError),
}

/// How long shutdown waits, after the drain, for the database to take the last acks, the
/// hand-back of unfinished jobs and the deregistration.
pub const FINISH_GRACE: Duration = Duration::from_secs(5);

/// What a shutdown did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Every worker finished its in-flight jobs before the deadline.
    pub drained: bool,
    /// Jobs handed back as available without counting the attempt.
    pub released: usize,
}

pub(crate) struct EngineInner {
    /// The queue backend: every claim, ack, lease, wake-up and maintenance pass of the queues.
    pub(crate) driver: Arc<dyn Driver>,
    /// The engine's own Postgres connections (Postgres-only services: cron, batches, index
    /// upkeep, the Postgres limiter); see `EngineConfig::async_commit`.
    pub(crate) pool: PgPool,
    /// The caller's pool, handed to handlers as is.
    app_pool: PgPool,
    pub(crate) worker_id: Uuid,
    /// What the worker registry says about this process (re-sent by every heartbeat).
    pub(crate) info: WorkerInfo,
    pub(crate) config: EngineConfig,
    pub(crate) in_flight: Arc<InFlight>,
    pub(crate) limiter: Arc<dyn Limiter>,
    pub(crate) metrics: crate::metrics::MetricsCache,
    pub(crate) signals: Arc<Signals>,
    /// Producers stop claiming when this fires.
    pub(crate) stop_claiming: CancellationToken,
    /// `None` once the engine has stopped taking acks (shutdown past its deadline).
    acks: RwLock<Option<mpsc::Sender<Ack>>>,
    workers: Mutex<Vec<WorkerContext>>,
    open_backends: AtomicUsize,
    backend_closed: Notify,
    stop_services: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    completer: Mutex<Option<JoinHandle<()>>>,
}

impl EngineInner {
    /// Hands an ack to the completer and forgets the job. If the engine no longer takes acks
    /// (shutdown past its deadline) the job stays registered so shutdown hands it back.
    pub(crate) async fn ack(&self, ack: Ack) {
        let intake = self.acks.read().await;
        if let Some(tx) = intake.as_ref() {
            let lease = ack.lease;
            if tx.send(ack).await.is_ok() {
                self.in_flight.remove(lease);
            }
        }
    }

    pub(crate) fn backend_opened(&self, worker: &WorkerContext) {
        self.open_backends.fetch_add(1, Ordering::AcqRel);
        self.workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(worker.clone());
    }

    pub(crate) fn backend_closed(&self) {
        self.open_backends.fetch_sub(1, Ordering::AcqRel);
        self.backend_closed.notify_waiters();
    }

    pub(crate) fn spawn(&self, task: JoinHandle<()>) {
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(task);
    }
}

/// One per process. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<EngineInner>,
}

/// What the engine runs on: its driver, the limiter that goes with it (default: Postgres'),
/// and whether the driver spans two backends (then acks are written per backend).
struct EngineDriver {
    driver: Arc<dyn Driver>,
    limiter: Option<Arc<dyn Limiter>>,
    two_backends: bool,
}

impl Engine {
    /// Registers this process and starts the listener, heartbeat, completer and maintenance.
    /// `queues` and `concurrency` are what the process will consume, for the worker registry.
    /// Fleet-wide limits are kept in Postgres ([`PgLimiter`]).
    pub async fn start(
        pool: PgPool,
        config: EngineConfig,
        queues: Vec<String>,
        concurrency: u32,
    ) -> Result<Engine, EngineError> {
        Self::start_with_limiter(pool, config, queues, concurrency, None).await
    }

    /// Like [`Engine::start`], with another [`Limiter`] for fleet-wide limits.
    pub async fn start_with_limiter(
        pool: PgPool,
        config: EngineConfig,
        queues: Vec<String>,
        concurrency: u32,
        limiter: Option<Arc<dyn Limiter>>,
    ) -> Result<Engine, EngineError> {
        Self::start_on(None, pool, config, queues, concurrency, limiter).await
    }

    /// Like [`Engine::start_with_limiter`], with the queues on `driver` (default: Postgres, on
    /// the engine's own pool). `pool` is still the application's Postgres (handlers, and the
    /// Postgres-only services).
    pub async fn start_on(
        driver: Option<Arc<dyn Driver>>,
        pool: PgPool,
        config: EngineConfig,
        queues: Vec<String>,
        concurrency: u32,
        limiter: Option<Arc<dyn Limiter>>,
    ) -> Result<Engine, EngineError> {
        Self::start_inner(
            |engine_pool| {
                let driver = driver.unwrap_or_else(|| Arc::new(PgDriver::new(engine_pool.clone())));
                EngineDriver {
                    driver,
                    limiter: None,
                    two_backends: false,
                }
            },
            pool,
            config,
            queues,
            concurrency,
            limiter,
        )
        .await
    }

    /// Like [`Engine::start`], with each queue on the backend `routes` names (their Postgres
    /// part on the engine's own pool).
    pub async fn start_routed(
        pool: PgPool,
        config: EngineConfig,
        queues: Vec<String>,
        concurrency: u32,
        routes: &Backends,
    ) -> Result<Engine, EngineError> {
        Self::start_inner(
            |engine_pool| {
                let postgres: Arc<dyn Driver> = Arc::new(PgDriver::new(engine_pool.clone()));
                let limiter = routes.limiter(Arc::new(PgLimiter::new(engine_pool.clone())));
                match routes.redis() {
                    Some(_) => EngineDriver {
                        driver: Arc::new(routes.on_postgres(postgres)),
                        limiter: Some(limiter),
                        two_backends: true,
                    },
                    // Nothing to route: no splitting on every ack.
                    None => EngineDriver {
                        driver: postgres,
                        limiter: Some(limiter),
                        two_backends: false,
                    },
                }
            },
            pool,
            config,
            queues,
            concurrency,
            None,
        )
        .await
    }

    async fn start_inner(
        driver: impl FnOnce(&PgPool) -> EngineDriver,
        pool: PgPool,
        config: EngineConfig,
        queues: Vec<String>,
        concurrency: u32,
        limiter: Option<Arc<dyn Limiter>>,
    ) -> Result<Engine, EngineError> {
        config.validate().map_err(EngineError::Config)?;
        let app_pool = pool;
        let pool = engine_pool(&app_pool, &config).await?;
        let EngineDriver {
            driver,
            limiter: routed,
            two_backends,
        } = driver(&pool);
        if limiter.is_none() && routed.is_none() && driver.backend() != "postgres" {
            // Its queues' limits would be counted in Postgres, apart from the fleet's.
            return Err(EngineError::Config(format!(
                "an engine on a {} driver needs that backend's limiter (e.g. RedisLimiter)",
                driver.backend()
            )));
        }
        let limiter = limiter
            .or(routed)
            .unwrap_or_else(|| Arc::new(PgLimiter::new(pool.clone())));
        let worker_id = Uuid::new_v4();
        let info = WorkerInfo {
            id: worker_id,
            hostname: hostname(),
            pid: std::process::id(),
            queues,
            concurrency,
        };
        driver.register_worker(&info).await?;
        let (tx, rx) = mpsc::channel(config.ack_batch * 4);
        let signals = Arc::new(Signals::default());
        let in_flight = signals.in_flight.clone();
        let inner = Arc::new(EngineInner {
            driver: driver.clone(),
            pool: pool.clone(),
            app_pool,
            worker_id,
            info,
            config: config.clone(),
            in_flight,
            limiter: limiter.clone(),
            metrics: Default::default(),
            signals: signals.clone(),
            stop_claiming: CancellationToken::new(),
            acks: RwLock::new(Some(tx)),
            workers: Mutex::new(Vec::new()),
            open_backends: AtomicUsize::new(0),
            backend_closed: Notify::new(),
            stop_services: CancellationToken::new(),
            tasks: Mutex::new(Vec::new()),
            completer: Mutex::new(None),
        });
        let completer = tokio::spawn(completer::run(
            driver.clone(),
            pool.clone(),
            worker_id,
            signals.clone(),
            limiter,
            rx,
            config.ack_batch,
            config.retain_finished.is_zero(),
            two_backends,
        ));
        *inner.completer.lock().unwrap_or_else(|p| p.into_inner()) = Some(completer);
        let stop = inner.stop_services.clone();
        if config.listen {
            inner.spawn(tokio::spawn(listener::run(
                driver.clone(),
                signals,
                stop.clone(),
            )));
        }
        inner.spawn(tokio::spawn(heartbeat::run(inner.clone(), stop.clone())));
        inner.spawn(tokio::spawn(maintenance::run(inner.clone(), stop.clone())));
        inner.spawn(tokio::spawn(maintenance::export_queue_gauges(
            driver,
            inner.config.clone(),
            stop,
        )));
        tracing::info!(%worker_id, "engine started");
        Ok(Engine { inner })
    }

    /// A backend for one apalis worker consuming `queue.queue`, decoding payloads into `Args`.
    pub fn backend<Args>(&self, queue: QueueConfig) -> PgBackend<Args>
    where
        Args: DeserializeOwned + Send + Sync + 'static,
    {
        PgBackend::new(self.inner.clone(), queue)
    }

    /// The pool the engine was started with (for handlers and enqueueing).
    #[allow(clippy::misnamed_getters)] // `inner.pool` is the engine's own, not this one
    pub fn pool(&self) -> &PgPool {
        &self.inner.app_pool
    }

    pub fn worker_id(&self) -> Uuid {
        self.inner.worker_id
    }

    /// Graceful shutdown: stop claiming, let running jobs finish until `shutdown_timeout`, hand
    /// back the rest (buffered or still running) as available without counting the attempt,
    /// flush every ack, resign leadership and deregister. Call once; returns when done, at
    /// most [`FINISH_GRACE`] after the drain even if the database is unreachable.
    pub async fn shutdown(&self) -> ShutdownReport {
        let inner = &self.inner;
        inner.stop_claiming.cancel();
        for w in inner
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            // Errors only mean the worker was not running (never started, or already stopped).
            let _ = w.stop();
        }
        let drained = tokio::time::timeout(inner.config.shutdown_timeout, async {
            loop {
                let closed = inner.backend_closed.notified();
                if inner.open_backends.load(Ordering::Acquire) == 0 {
                    return;
                }
                closed.await;
            }
        })
        .await
        .is_ok();
        if !drained {
            tracing::warn!(
                still_held = inner.in_flight.len(),
                "shutdown deadline passed, handing unfinished jobs back"
            );
        }
        // Stop taking acks: waits for acks being sent right now, so every job is either in the
        // completer's channel (and will be written) or still registered (and will be released).
        inner.acks.write().await.take();
        let completer = inner
            .completer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let tasks: Vec<_> =
            std::mem::take(&mut *inner.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        let aborts: Vec<_> = completer
            .iter()
            .chain(&tasks)
            .map(|t| t.abort_handle())
            .collect();
        // The database gets a bounded time for the last acks, the hand-back and the goodbye:
        // with the server unreachable the process still stops (an ack not written only means
        // the job runs again once its lease expires: at-least-once).
        let finished = tokio::time::timeout(FINISH_GRACE, async {
            if let Some(c) = completer {
                let _ = c.await;
            }
            let leftovers = inner.in_flight.snapshot();
            let released = release_with_retry(&*inner.driver, &leftovers)
                .await
                .unwrap_or_default();
            if let Err(e) = inner.limiter.release_all(inner.worker_id).await {
                tracing::warn!(error = %e, "could not release concurrency permits; they expire");
            }
            inner.stop_services.cancel();
            for t in tasks {
                let _ = t.await;
            }
            if let Err(e) = inner.driver.deregister_worker(inner.worker_id).await {
                tracing::warn!(error = %e, "could not deregister worker");
            }
            released
        })
        .await;
        let released = finished.unwrap_or_else(|_| {
            tracing::warn!(
                grace = ?FINISH_GRACE,
                "the database did not take the last acks in time; they are given up and their \
                 jobs run again once their leases expire"
            );
            inner.stop_services.cancel();
            for a in aborts {
                a.abort();
            }
            0
        });
        // Closing says goodbye to each connection; a server that is gone does not answer.
        let _ = tokio::time::timeout(Duration::from_secs(1), inner.pool.close()).await;
        tracing::info!(drained, released, "engine stopped");
        ShutdownReport { drained, released }
    }
}

/// The engine's own pool: same server and credentials as the caller's, a few connections, no
/// JIT, and (by default) asynchronous commit. See `EngineConfig::async_commit` for why that is
/// safe. JIT compiles a statement whose estimated cost is high (the retention pass's over a
/// large table is estimated at a million) for ~100–250 ms before running it in 0.1 ms; no
/// statement of the engine gains from it.
async fn engine_pool(app: &PgPool, config: &EngineConfig) -> Result<PgPool, EngineError> {
    let mut options = (*app.connect_options()).clone().options([("jit", "off")]);
    if config.async_commit {
        options = options.options([("synchronous_commit", "off")]);
    }
    let pool = cowans_store::pool_options()
        .max_connections(config.engine_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(cowans_store::StoreError::from)?;
    Ok(pool)
}

async fn release_with_retry(driver: &dyn Driver, refs: &[LeaseRef]) -> Option<usize> {
    if refs.is_empty() {
        return Some(0);
    }
    for attempt in 1..=3 {
        match driver.release(refs).await {
            Ok(ids) => return Some(ids.len()),
            Err(e) => {
                tracing::warn!(error = %e, attempt, "could not hand jobs back; their leases will expire");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    None
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".to_owned())
}
