//! Process plumbing shared by the Cowans binaries: typed settings, telemetry, the shutdown
//! signal, the ops endpoints (`/health`, `/ready`, `/metrics`) and connecting with errors an
//! operator can act on.
//!
//! **Architecture Invariant:** only binaries call [`telemetry::init`] and [`settings::load`];
//! libraries receive their sub-configs as values.

pub mod database;
pub mod ops;
pub mod settings;
pub mod shutdown;
pub mod telemetry;

pub use settings::Settings;
