//! `cowans-shopsim --listen 127.0.0.1:PORT [--products N --variants M --plan standard]`.

use clap::Parser;
use cowans_shopsim::{Plan, SimConfig};

#[derive(Parser)]
#[command(name = "cowans-shopsim", about = "Simulated Shopify Admin GraphQL API")]
struct Cli {
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: String,
    /// Products to seed.
    #[arg(long, default_value_t = 100)]
    products: usize,
    /// Variants per product.
    #[arg(long, default_value_t = 3)]
    variants: usize,
    /// standard, advanced, plus or enterprise.
    #[arg(long, default_value = "standard")]
    plan: String,
    /// Accepted access token (repeat for several).
    #[arg(long = "token", default_value = "shpat_sim")]
    tokens: Vec<String>,
    /// App secret for webhook signatures.
    #[arg(
        long,
        env = "COWANS_SHOPSIM_SECRET",
        default_value = "sim-secret",
        hide_env_values = true
    )]
    secret: String,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let plan: Plan = match serde_json::from_value(serde_json::Value::String(cli.plan.clone())) {
        Ok(p) => p,
        Err(_) => {
            eprintln!(
                "cowans-shopsim: --plan {:?} is not one of standard, advanced, plus, enterprise",
                cli.plan
            );
            return std::process::ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(&cli.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "cowans-shopsim: cannot listen on {} ({e}); choose another address with --listen",
                cli.listen
            );
            return std::process::ExitCode::FAILURE;
        }
    };
    let config = SimConfig {
        plan,
        tokens: cli.tokens,
        secret: cli.secret,
        products: cli.products,
        variants: cli.variants,
    };
    let running = match cowans_shopsim::start(listener, &config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cowans-shopsim: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!(
        "cowans-shopsim ready: graphql={}/admin/api/2026-10/graphql.json control={}/__sim products={}",
        running.base_url(),
        running.base_url(),
        config.products
    );
    let _ = tokio::signal::ctrl_c().await;
    std::process::ExitCode::SUCCESS
}
