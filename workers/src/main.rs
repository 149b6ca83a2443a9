//! `cowans-worker`: runs the enabled applications' queues (`run`), migrates the database
//! (`migrate`), runs operator commands (`ctl`), or feeds the demo application's kinds to a queue
//! and prints progress (`demo`). Thin: command line and settings here, the rest in the library.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};
use cowans_core::{Actor, QueueName};
use cowans_service::{apps, settings, shutdown, telemetry};
use cowans_worker::{Worker, ctl};

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
        /// Comma-separated queue names (default: worker.queues, else every queue the enabled
        /// applications' kinds run on).
        #[arg(long, value_delimiter = ',')]
        queues: Option<Vec<String>>,
        /// Jobs running at once per queue (default: worker.concurrency).
        #[arg(long)]
        concurrency: Option<usize>,
        /// Address for /metrics, /health, /ready (default: worker.ops_listen).
        #[arg(long)]
        ops_listen: Option<String>,
    },
    /// Create the database if it does not exist, apply the engine's and the enabled
    /// applications' pending migrations, and exit.
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
            println!(
                "{}",
                cowans_worker::migrate(settings, apps::AVAILABLE).await?
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
            let metrics = telemetry::install_metrics()?;
            let ops = tokio::net::TcpListener::bind(&settings.worker.ops_listen)
                .await
                .with_context(|| {
                    format!(
                        "cannot listen on worker.ops_listen {}; choose another address with --ops-listen",
                        settings.worker.ops_listen
                    )
                })?;
            let worker = Worker::start(settings, apps::AVAILABLE, metrics, ops).await?;
            // Tests and scripts read this line to find the ops port.
            let queues: Vec<String> = worker.queues().iter().map(|q| q.to_string()).collect();
            println!(
                "cowans-worker ready: queues={} ops=http://{}",
                queues.join(","),
                worker.ops_addr()
            );
            let report = worker.run(shutdown::signal()).await;
            println!(
                "cowans-worker stopped: drained={} released={}",
                report.drained, report.released
            );
            Ok(())
        }
        Command::Ctl(c) => {
            let actor = Actor::cli(&cowans_service::os_user());
            ctl::run(&ctl::front_door(&settings).await?, &actor, c).await
        }
        Command::Demo { queue, jobs } => {
            let queue = QueueName::new(queue).context("--queue")?;
            cowans_worker::demo(&settings, queue, jobs).await
        }
    }
}
