//! `cowans-worker`: runs queues (`run`), migrates the database (`migrate`), or feeds the demo
//! kinds to a queue and prints progress (`demo`). Thin: settings, telemetry, pool, then a library
//! call.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};
use cowans_core::QueueName;
use cowans_queue::{Engine, QueueConfig};
use cowans_service::{Settings, database, ops, settings, shutdown, telemetry};

mod ctl;
mod demo;

#[derive(Parser)]
#[command(name = "cowans-worker", version, about = "Cowans job-queue worker")]
struct Cli {
    /// TOML settings file (optional; COWANS__SECTION__KEY variables override it).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Consume queues until SIGTERM/SIGINT.
    Run {
        /// Comma-separated queue names (default: worker.queues).
        #[arg(long, value_delimiter = ',')]
        queues: Option<Vec<String>>,
        /// Jobs running at once per queue (default: worker.concurrency).
        #[arg(long)]
        concurrency: Option<usize>,
        /// Address for /metrics, /health, /ready (default: worker.ops_listen).
        #[arg(long)]
        ops_listen: Option<String>,
    },
    /// Create the database if it does not exist, apply pending migrations, and exit.
    Migrate,
    /// Operator commands: queue summary, pause/resume, limits, cancel.
    #[command(subcommand)]
    Ctl(ctl::Ctl),
    /// Enqueue a mix of demo jobs and print progress until they are all finished.
    Demo {
        #[arg(long, default_value = "default")]
        queue: String,
        #[arg(long, default_value_t = 2000)]
        jobs: usize,
    },
}

fn main() -> ExitCode {
    cowans_service::run_main("cowans-worker", run(Cli::parse()))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut settings = settings::load(cli.config.as_deref())?;
    telemetry::init(&settings.log);
    match cli.command {
        Command::Migrate => {
            settings.database.auto_migrate = true;
            if database::create_if_missing(&settings.database).await? {
                println!(
                    "created database {}",
                    database::redact(&settings.database.url)
                );
            }
            database::connect(&settings.database).await?;
            println!(
                "migrations applied to {}",
                database::redact(&settings.database.url)
            );
            Ok(())
        }
        Command::Run {
            queues,
            concurrency,
            ops_listen,
        } => {
            if let Some(q) = queues {
                settings.worker.queues = q;
            }
            if let Some(c) = concurrency {
                settings.worker.concurrency = c;
            }
            if let Some(addr) = ops_listen {
                settings.worker.ops_listen = addr;
            }
            settings.validate()?;
            run_worker(settings).await
        }
        Command::Ctl(c) => {
            let pool = database::connect(&settings.database).await?;
            ctl::run(pool, c, settings.engine.lease_ttl).await
        }
        Command::Demo { queue, jobs } => {
            let queue = QueueName::new(queue).context("--queue")?;
            let pool = database::connect(&settings.database).await?;
            demo::run(pool, queue, jobs).await
        }
    }
}

async fn run_worker(settings: Settings) -> anyhow::Result<()> {
    let metrics = telemetry::install_metrics()?;
    let pool = database::connect(&settings.database).await?;
    let listener = tokio::net::TcpListener::bind(&settings.worker.ops_listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on worker.ops_listen {}; choose another address with --ops-listen",
                settings.worker.ops_listen
            )
        })?;
    let ops_addr = listener.local_addr()?;
    let queues: Vec<QueueConfig> = settings
        .worker
        .queues
        .iter()
        .map(|q| {
            let w = &settings.worker;
            let mut cfg = QueueConfig::new(QueueName::new(q.clone())?)
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
            cfg.claim_batch = settings.worker.claim_batch;
            Ok(cfg)
        })
        .collect::<Result<_, cowans_core::NameError>>()?;
    for (queue, limits) in &settings.worker.limits {
        cowans_store::set_queue_limits(&pool, queue, limits.concurrency, limits.rate_limit())
            .await
            .with_context(|| format!("worker.limits.{queue}"))?;
    }
    for job in &settings.worker.cron {
        cowans_queue::register_cron(&pool, job)
            .await
            .with_context(|| format!("worker.cron {}", job.name))?;
    }
    let engine = Engine::start(
        pool.clone(),
        settings.engine.clone(),
        settings.worker.queues.clone(),
        (settings.worker.concurrency * queues.len()) as u32,
    )
    .await?;
    let stop_ops = tokio_util::sync::CancellationToken::new();
    let ops_task = tokio::spawn(ops::serve(
        listener,
        ops::router(pool.clone(), metrics),
        stop_ops.clone().cancelled_owned(),
    ));
    // Tests and scripts read this line to find the ops port.
    println!(
        "cowans-worker ready: queues={} ops=http://{ops_addr}",
        settings.worker.queues.join(",")
    );
    let report = cowans_queue::run_queues(
        &engine,
        queues,
        cowans_queue::demo::router(pool.clone()),
        shutdown::signal(),
    )
    .await;
    stop_ops.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(2), ops_task).await;
    println!(
        "cowans-worker stopped: drained={} released={}",
        report.drained, report.released
    );
    Ok(())
}
