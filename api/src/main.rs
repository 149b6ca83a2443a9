//! `cowans-api`: serves the HTTP API (default), manages API keys (`keys create --name N --role
//! viewer|operator|admin` prints the key once), shops (`shops add|list|pull`) and the shops'
//! secrets at rest (`secrets rotate`). Thin: the command line here, the actions in
//! [`cowans_api::commands`].

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};
use cowans_api::commands;
use cowans_catalog::{PullKind, ShopRequest};
use cowans_core::{Actor, Role};
use cowans_service::{apps, settings, shutdown, telemetry};

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
    /// Shops of the catalog (their token from COWANS_SHOP_ACCESS_TOKEN or standard input).
    #[command(subcommand)]
    Shops(Shops),
    /// Shop secrets at rest.
    #[command(subcommand)]
    Secrets(Secrets),
}

#[derive(Subcommand)]
enum Shops {
    /// Add a shop; its access token comes from COWANS_SHOP_ACCESS_TOKEN or standard input, its
    /// webhook secret from COWANS_SHOP_WEBHOOK_SECRET (never from the command line).
    Add {
        #[arg(long)]
        name: String,
        /// `<shop>.myshopify.com`.
        #[arg(long)]
        domain: String,
        #[arg(long, default_value = "2026-10")]
        api_version: String,
        /// Where the Admin API answers when not at https://<domain> (the simulator).
        #[arg(long)]
        admin_url: Option<String>,
        /// When its incremental pull runs (cron, UTC; default catalog.incremental_schedule,
        /// "" for never).
        #[arg(long)]
        incremental_schedule: Option<String>,
    },
    /// List the shops with their catalog's size.
    List,
    /// Pull a shop's catalog (full by default) and, with --follow, print progress until done.
    Pull {
        /// The shop's name or id.
        shop: String,
        #[arg(long)]
        incremental: bool,
        #[arg(long)]
        follow: bool,
    },
    /// Write a shop's products to standard output (or --output) as CSV or JSON Lines.
    Export {
        /// The shop's name or id.
        shop: String,
        /// csv (one row per variant) or jsonl (one product per line).
        #[arg(long, default_value = "csv")]
        format: String,
        /// Write here instead of standard output.
        #[arg(long)]
        output: Option<std::path::PathBuf>,
        /// Only products with this status (active, archived, draft, unlisted).
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        vendor: Option<String>,
        #[arg(long)]
        product_type: Option<String>,
        #[arg(long)]
        tag: Option<String>,
        #[arg(long)]
        sku: Option<String>,
        /// Words in the title or handle.
        #[arg(long)]
        text: Option<String>,
        #[arg(long)]
        include_deleted: bool,
    },
}

#[derive(Subcommand)]
enum Secrets {
    /// Re-seal every shop's secrets under catalog.active_key.
    Rotate,
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
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Keys(Keys::Create { name, role }) => {
            let role = Role::parse(&role)
                .with_context(|| format!("--role {role:?}: must be viewer, operator or admin"))?;
            println!(
                "{}",
                commands::create_key(&settings, &actor, &name, role).await?
            );
            Ok(())
        }
        Command::Keys(Keys::Revoke { id }) => {
            println!("{}", commands::revoke_key(&settings, &actor, id).await?);
            Ok(())
        }
        Command::Shops(Shops::Add {
            name,
            domain,
            api_version,
            admin_url,
            incremental_schedule,
        }) => {
            let (access_token, webhook_secret) =
                commands::shop_secrets(|k| std::env::var(k).ok(), std::io::stdin().lock())?;
            let request = ShopRequest {
                name,
                domain,
                api_version,
                admin_url,
                access_token,
                webhook_secret,
                incremental_schedule,
            };
            println!("{}", commands::add_shop(&settings, &actor, request).await?);
            Ok(())
        }
        Command::Shops(Shops::List) => {
            print!("{}", commands::list_shops(&settings).await?);
            Ok(())
        }
        Command::Shops(Shops::Pull {
            shop,
            incremental,
            follow,
        }) => {
            let kind = if incremental {
                PullKind::Incremental
            } else {
                PullKind::Full
            };
            commands::pull(&settings, &actor, &shop, kind, follow, |l| println!("{l}")).await?;
            Ok(())
        }
        Command::Shops(Shops::Export {
            shop,
            format,
            output,
            status,
            vendor,
            product_type,
            tag,
            sku,
            text,
            include_deleted,
        }) => {
            let filter = cowans_catalog::ProductFilter {
                status,
                vendor,
                product_type,
                tag,
                sku,
                text,
                include_deleted,
            };
            let written =
                commands::export(&settings, &shop, &format, filter, output.as_deref()).await?;
            eprintln!("{written} bytes written");
            Ok(())
        }
        Command::Secrets(Secrets::Rotate) => {
            println!("{}", commands::rotate_secrets(&settings, &actor).await?);
            Ok(())
        }
    }
}

async fn serve(settings: cowans_service::Settings) -> anyhow::Result<()> {
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
