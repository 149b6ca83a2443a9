//! `cowans-api`: the HTTP API process. For now it serves the ops endpoints (`/health`, `/ready`,
//! `/metrics`); the job API arrives with its own issue.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::Parser;
use cowans_service::{database, ops, settings, shutdown, telemetry};

#[derive(Parser)]
#[command(name = "cowans-api", version, about = "Cowans HTTP API")]
struct Cli {
    /// TOML settings file (optional; COWANS__SECTION__KEY variables override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Listen address (default: api.listen).
    #[arg(long)]
    listen: Option<String>,
}

fn main() -> ExitCode {
    cowans_service::run_main("cowans-api", run(Cli::parse()))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut settings = settings::load(cli.config.as_deref())?;
    if let Some(listen) = cli.listen {
        settings.api.listen = listen;
    }
    telemetry::init(&settings.log);
    let metrics = telemetry::install_metrics()?;
    let pool = database::connect(&settings.database).await?;
    let listener = tokio::net::TcpListener::bind(&settings.api.listen)
        .await
        .with_context(|| format!("cannot listen on api.listen {}", settings.api.listen))?;
    println!("cowans-api ready: http://{}", listener.local_addr()?);
    ops::serve(listener, ops::router(pool, metrics), shutdown::signal()).await?;
    Ok(())
}
