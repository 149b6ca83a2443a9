//! `cowans-api`: serves the HTTP API (default), or manages API keys
//! (`cowans-api keys create --name N --role viewer|operator|admin` prints the key once).

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};
use cowans_service::{database, settings, shutdown, telemetry};

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
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let metrics = telemetry::install_metrics()?;
            let pool = database::connect(&settings.database).await?;
            let listener = tokio::net::TcpListener::bind(&settings.api.listen)
                .await
                .with_context(|| format!("cannot listen on api.listen {}", settings.api.listen))?;
            println!("cowans-api ready: http://{}", listener.local_addr()?);
            let rate = cowans_api::rate_limit::RateConfig {
                per_second: settings.api.rate_per_second,
                burst: f64::from(settings.api.rate_burst),
            };
            let jwt = match (
                &settings.api.jwt_hs256_secret,
                &settings.api.jwt_rs256_public_key_file,
            ) {
                (Some(secret), None) => Some(cowans_api::auth::JwtConfig::hs256(secret.as_bytes())),
                (None, Some(file)) => {
                    let pem = std::fs::read(file).with_context(|| {
                        format!("api.jwt_rs256_public_key_file {}", file.display())
                    })?;
                    Some(
                        cowans_api::auth::JwtConfig::rs256_pem(&pem)
                            .map_err(|e| anyhow::anyhow!("api.jwt_rs256_public_key_file: {e}"))?,
                    )
                }
                (Some(_), Some(_)) => anyhow::bail!(
                    "set only one of api.jwt_hs256_secret and api.jwt_rs256_public_key_file"
                ),
                (None, None) => None,
            };
            let kinds = cowans_queue::demo::kinds(cowans_core::KindRegistry::new())
                .reject_unknown(settings.api.reject_unknown_kinds);
            let options = cowans_api::ApiOptions {
                rate,
                jwt,
                kinds,
                submit_group_max: settings.api.submit_group_max,
                lease_ttl: settings.engine.lease_ttl,
            };
            let pool_for_gauges = pool.clone();
            let app = cowans_api::router_with(pool, metrics, options)
                .into_make_service_with_connect_info::<SocketAddr>();
            // The queue gauges on this process's /metrics, as on every worker's.
            let stop = tokio_util::sync::CancellationToken::new();
            tokio::spawn(cowans_queue::export_queue_gauges(
                pool_for_gauges,
                settings.engine.clone(),
                stop.clone(),
            ));
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown::signal())
                .await?;
            stop.cancel();
            Ok(())
        }
        Command::Keys(Keys::Create { name, role }) => {
            let pool = database::connect(&settings.database).await?;
            let (key, hash, prefix) = cowans_api::auth::generate_key();
            let row = cowans_store::create_api_key(&pool, &name, &role, &hash, &prefix).await?;
            println!(
                "created API key {} ({}, role {}):",
                row.id, row.name, row.role
            );
            println!("{key}");
            println!("store it now: it is not shown again");
            Ok(())
        }
        Command::Keys(Keys::Revoke { id }) => {
            let pool = database::connect(&settings.database).await?;
            if cowans_store::revoke_api_key(&pool, id).await? {
                println!("API key {id} revoked");
                Ok(())
            } else {
                anyhow::bail!("no live API key with id {id}")
            }
        }
    }
}
