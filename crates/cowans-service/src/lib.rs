//! Process plumbing shared by the Cowans binaries: typed settings, the applications this build
//! carries, telemetry, the shutdown signal, the ops endpoints (`/health`, `/ready`, `/metrics`)
//! and connecting with errors an operator can act on.
//!
//! **Architecture Invariant:** only binaries call [`telemetry::init`] and [`settings::load`];
//! libraries receive their sub-configs as values.

pub mod apps;
pub mod backends;
pub mod database;
pub mod ops;
pub mod settings;
pub mod shutdown;
pub mod telemetry;

pub use settings::Settings;

/// Runs a binary's async entry point on a fresh runtime. A failure is printed as one line
/// (`<binary>: <cause: cause ...>`) with exit code 1: no panic, no stack trace.
pub fn run_main(
    binary: &str,
    main: impl std::future::Future<Output = anyhow::Result<()>>,
) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{binary}: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{binary}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The operating-system user running this process (`USER`, `LOGNAME`), for the audit log's
/// `cli:<user>` actors; "unknown" when neither is set.
pub fn os_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_owned())
}
