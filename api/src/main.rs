//! `cowans-api`: serves the HTTP API (default), or manages API keys
//! (`cowans-api keys create --name N --role viewer|operator|admin` prints the key once).

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};
use cowans_core::{Actor, Role};
use cowans_service::{apps, database, settings, shutdown, telemetry};

#[derive(Parser)]
#[command(name = "cowans-api", version, about = "Cowans HTTP API")]
struct Cli {
    /// TOML settings file (optional; COWANS__SECTION__KEY variables override it).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Listen address (default: api.listen).
    #[arg(long, global = true)]
    listen: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// API keys.
    #[command(subcommand)]
    Keys(Keys),
}

#[derive(Subcommand)]
enum Keys {
    /// Create a key and print it once (only its hash is stored).
    Create {
        #[arg(long)]
        name: String,
        /// viewer, operator or admin.
        #[arg(long)]
        role: String,
    },
    /// Revoke a key by id.
    Revoke {
        #[arg(long)]
        id: i64,
    },
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
    let actor = Actor::cli(&cowans_service::os_user());
    // Key management needs no application's tables.
    let engine_only = apps::migrations(apps::AVAILABLE, &[])?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let metrics = telemetry::install_metrics()?;
            let listener = tokio::net::TcpListener::bind(&settings.api.listen)
                .await
                .with_context(|| format!("cannot listen on api.listen {}", settings.api.listen))?;
            cowans_api::run_api(
                settings,
                apps::AVAILABLE,
                metrics,
                listener,
                // Tests and scripts read this line to find the port.
                |addr| println!("cowans-api ready: http://{addr}"),
                shutdown::signal(),
            )
            .await
        }
        Command::Keys(Keys::Create { name, role }) => {
            let role = Role::parse(&role)
                .with_context(|| format!("--role {role:?}: must be viewer, operator or admin"))?;
            let front = cowans_queue::FrontDoor::builder(
                database::connect(&settings.database, &engine_only).await?,
            )
            .build();
            let (key, row) = front.create_api_key(&actor, &name, role).await?;
            println!(
                "created API key {} ({}, role {}):",
                row.id, row.name, row.role
            );
            println!("{key}");
            println!("store it now: it is not shown again");
            Ok(())
        }
        Command::Keys(Keys::Revoke { id }) => {
            let front = cowans_queue::FrontDoor::builder(
                database::connect(&settings.database, &engine_only).await?,
            )
            .build();
            front.revoke_api_key(&actor, id).await?;
            println!("API key {id} revoked");
            Ok(())
        }
    }
}
