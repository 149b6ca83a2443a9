//! `chaos`: reliability under faults, with real `cowans-worker` processes. Each scenario gets a
//! fresh database, enqueues `demo.effect` jobs (exactly-once effects, see `audit`), runs
//! `--processes` supervised workers (`fleet`) at `--concurrency`, injects its fault while the
//! queue drains, waits for every job to finish, and prints one line: jobs lost, duplicate
//! effects, jobs stuck, unexpected worker exits, recovery times against their targets, and
//! `ok=` with the targets missed. Scenarios that stop or fill the server run on a throw-away
//! cluster the command starts itself (`cluster`); the others on the server of `DATABASE_URL`.
//!
//! | scenario | fault |
//! |---|---|
//! | `kill` | a random worker SIGKILLed every `--kill-every-ms` while the backlog lasts, restarted at once |
//! | `terminate` | every worker connection `pg_terminate_backend`ed every `--storm-every-ms` |
//! | `restart` | the server stopped (`--stop-mode`) for `--down-seconds` at a third of the drain |
//! | `idle-tx` | a snapshot held `--hold-seconds` while a topped-up queue drains (`idle_tx`) |
//! | `pool` | every free connection slot of the server taken and the workers' connections terminated, for `--pool-hold-seconds` |
//! | `sigterm` | a rolling restart (SIGTERM, one worker after another) with jobs 3× the drain deadline in flight |

mod audit;
mod cluster;
mod fleet;
mod idle;
mod kill;
mod pool;
mod restart;
mod sigterm;
mod storm;
mod timeline;

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use clap::ValueEnum;
use cowans_core::QueueName;
use cowans_queue::EngineConfig;
use cowans_store::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::{Args, Measurement, bench_db::BenchDb};
use audit::Audit;
use fleet::{Fleet, FleetConfig, Supervised};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    Kill,
    Terminate,
    Restart,
    IdleTx,
    Pool,
    Sigterm,
}

#[derive(Debug, clap::Args)]
pub struct ChaosArgs {
    /// `chaos`: the scenarios to run, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "kill,terminate,restart,idle-tx,pool,sigterm"
    )]
    pub scenarios: Vec<Scenario>,
    /// `chaos`: how long each drained job's handler sleeps before its effect, ms.
    #[arg(long, default_value_t = 0)]
    pub job_ms: u64,
    /// `chaos kill`: a worker is SIGKILLed this often.
    #[arg(long, default_value_t = 3000)]
    pub kill_every_ms: u64,
    /// `chaos terminate`: every worker connection is terminated this often.
    #[arg(long, default_value_t = 2000)]
    pub storm_every_ms: u64,
    /// `chaos restart`: how long the server stays down.
    #[arg(long, default_value_t = 5)]
    pub down_seconds: u64,
    /// `chaos restart`: `pg_ctl stop` mode (`fast`, or `immediate`: a crash).
    #[arg(long, default_value = "fast")]
    pub stop_mode: String,
    /// `chaos pool`: how long every connection slot is held.
    #[arg(long, default_value_t = 20)]
    pub pool_hold_seconds: u64,
    /// `chaos sigterm`: the workers' drain deadline (`engine.shutdown_timeout`), ms.
    #[arg(long, default_value_t = 5000)]
    pub shutdown_timeout_ms: u64,
    /// `chaos`: how long a scenario's jobs may take to finish once its faults stop.
    #[arg(long, default_value_t = 300)]
    pub settle_seconds: u64,
    /// `chaos`: where the workers' logs go (default: a new directory in the temp dir).
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
}

/// What every scenario shares: the command line, the engine settings the workers will load
/// (from the same `COWANS__ENGINE__…` variables), the log directory.
pub struct Ctx<'a> {
    pub args: &'a Args,
    pub chaos: &'a ChaosArgs,
    pub engine: EngineConfig,
    pub logs: PathBuf,
}

pub async fn run(args: &Args) -> anyhow::Result<Vec<Measurement>> {
    let settings = cowans_service::settings::load(None)?;
    let logs = args.chaos.log_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "cowans-chaos-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S")
        ))
    });
    let ctx = Ctx {
        args,
        chaos: &args.chaos,
        engine: settings.engine,
        logs,
    };
    let mut out = Vec::new();
    for s in &args.chaos.scenarios {
        let started = Instant::now();
        let report = match s {
            Scenario::Kill => kill::run(&ctx).await?,
            Scenario::Terminate => storm::run(&ctx).await?,
            Scenario::Restart => restart::run(&ctx).await?,
            Scenario::IdleTx => idle::run(&ctx).await?,
            Scenario::Pool => pool::run(&ctx).await?,
            Scenario::Sigterm => sigterm::run(&ctx).await?,
        };
        let m = report.measurement(started.elapsed());
        // Printed as each scenario ends too, so a long run shows its progress.
        eprintln!("chaos: {}", m.extra.as_deref().unwrap_or_default());
        out.push(m);
    }
    Ok(out)
}

/// One scenario's database (dropped at the end), the benchmark's own pool on it (its
/// connections named so storms spare them) and its queue.
pub struct Stage {
    db: Option<BenchDb>,
    pub pool: PgPool,
    pub q: QueueName,
    pub url: String,
    name: &'static str,
}

impl Stage {
    /// A fresh database with the engine's and the demo application's tables, on `server` (a
    /// URL) or on `DATABASE_URL`'s server.
    pub async fn new(name: &'static str, server: Option<String>) -> anyhow::Result<Stage> {
        let db = match server {
            Some(url) => BenchDb::create_on(url).await?,
            None => BenchDb::create().await?,
        };
        let pool = PgPoolOptions::new()
            .max_connections(6)
            .min_connections(4)
            .connect_with(db.options.clone().application_name("cowans-bench chaos"))
            .await?;
        cowans_store::migrate(&pool, &[&cowans_store::demo::MIGRATOR], &[]).await?;
        Ok(Stage {
            url: db.url()?,
            db: Some(db),
            pool,
            q: QueueName::new(audit::QUEUE)?,
            name,
        })
    }

    /// `--processes` supervised workers on this database, with extra settings `env`.
    pub fn workers(
        &self,
        ctx: &Ctx<'_>,
        env: Vec<(&'static str, String)>,
    ) -> anyhow::Result<Supervised> {
        let fleet = Fleet::start(
            FleetConfig {
                url: self.url.clone(),
                queue: audit::QUEUE.to_owned(),
                concurrency: ctx.args.concurrency,
                env,
                log_dir: ctx.logs.join(self.name),
            },
            ctx.args.processes.max(1),
        )?;
        Ok(Supervised::new(fleet))
    }

    /// Waits for every job to finish (at most `--settle-seconds`), then takes the audit.
    pub async fn settle(
        &self,
        ctx: &Ctx<'_>,
        enqueued: u64,
        effects: impl Fn() -> usize,
    ) -> anyhow::Result<(Option<Duration>, Audit)> {
        let limit = Duration::from_secs(ctx.chaos.settle_seconds);
        let took = audit::settle(&self.pool, &self.q, enqueued, effects, limit).await;
        Ok((took, Audit::take(&self.pool, &self.q, enqueued).await?))
    }

    pub async fn drop_database(mut self) {
        self.pool.close().await;
        if let Some(db) = self.db.take() {
            db.drop_database().await;
        }
    }
}

/// One scenario's result line: `scenario=… figures… ok=… missed=[…]`.
pub struct Report {
    figures: Vec<String>,
    missed: Vec<&'static str>,
}

impl Report {
    pub fn new(scenario: &str) -> Report {
        Report {
            figures: vec![format!("scenario={scenario}")],
            missed: Vec::new(),
        }
    }

    pub fn add(&mut self, figures: impl Into<String>) {
        self.figures.push(figures.into());
    }

    /// A target: named in `missed=[…]` when not met.
    pub fn target(&mut self, name: &'static str, met: bool) {
        if !met {
            self.missed.push(name);
        }
    }

    /// The jobs' accounting, and the targets every scenario has: 0 lost, 0 duplicate effects,
    /// 0 stuck, every completion with its effect.
    pub fn audit(&mut self, a: &Audit, settled: Option<Duration>) {
        self.add(a.figures());
        // How long the jobs took to finish once the faults stopped.
        self.add(format!("settle_ms={}", timeline::ms(settled)));
        self.target("lost", a.lost() == 0);
        self.target("duplicates", a.duplicates() == 0);
        self.target("stuck", a.open == 0);
        self.target("effect_and_ack", a.completed_without_effect == 0);
    }

    /// The workers' record: exits nobody caused (target 0), starts, log levels.
    pub fn fleet(&mut self, f: &Fleet, logs: &std::path::Path) {
        let (warn, error) = f.log_levels();
        self.add(format!(
            "worker_exits={} worker_starts={} failed_starts={} final_stop_overruns={} \
             log_warn_lines={warn} log_error_lines={error} logs={}",
            f.exits.len(),
            f.starts,
            f.failed_starts,
            f.stop_overruns,
            logs.display()
        ));
        self.target("worker_exits", f.exits.is_empty());
        self.target("final_stop", f.stop_overruns == 0);
    }

    fn measurement(self, elapsed: Duration) -> Measurement {
        let ok = self.missed.is_empty();
        let line = format!(
            "{} elapsed_s={:.1} ok={ok} missed=[{}]",
            self.figures.join(" "),
            elapsed.as_secs_f64(),
            self.missed.join(",")
        );
        Measurement::custom("chaos", elapsed, line)
    }
}

/// Whether jobs of `q` wait to be claimed (`None` if the server did not answer).
pub async fn any_available(pool: &PgPool, q: &QueueName) -> Option<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM cowans_jobs WHERE queue = $1 AND state = 'available')",
    )
    .bind(q.as_str())
    .fetch_one(pool)
    .await
    .ok()
}

/// The registry id of the worker process `pid` (this host's newest).
pub async fn worker_id(pool: &PgPool, pid: u32) -> Option<uuid::Uuid> {
    sqlx::query_scalar(
        "SELECT id FROM cowans_workers WHERE pid = $1 ORDER BY started_at DESC LIMIT 1",
    )
    .bind(pid as i32)
    .fetch_optional(pool)
    .await
    .ok()
    .flatten()
}

/// Jobs `worker` holds (running under its lease; only running jobs have a lease expiry, which
/// is indexed).
pub async fn held_by(pool: &PgPool, worker: uuid::Uuid) -> Option<Vec<i64>> {
    sqlx::query_scalar(
        "SELECT id FROM cowans_jobs \
         WHERE lease_expires_at IS NOT NULL AND state = 'running' AND worker_id = $1",
    )
    .bind(worker)
    .fetch_all(pool)
    .await
    .ok()
}

/// Which of `workers` still hold jobs.
pub async fn holding(pool: &PgPool, workers: &[uuid::Uuid]) -> Option<Vec<uuid::Uuid>> {
    sqlx::query_scalar(
        "SELECT DISTINCT worker_id FROM cowans_jobs \
         WHERE lease_expires_at IS NOT NULL AND state = 'running' AND worker_id = ANY($1)",
    )
    .bind(workers)
    .fetch_all(pool)
    .await
    .ok()
}

/// p50 and max of durations, in ms.
pub fn p50_max(mut v: Vec<Duration>) -> (String, String) {
    if v.is_empty() {
        return ("-".to_owned(), "-".to_owned());
    }
    v.sort();
    (
        v[v.len() / 2].as_millis().to_string(),
        v[v.len() - 1].as_millis().to_string(),
    )
}
