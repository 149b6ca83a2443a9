//! One integration test binary: the store against real Postgres, the engine (apalis workers in
//! process), and real `cowans-worker` processes. Every test makes its own database.

// Test helpers may unwrap: a failure there is a test failure with its location.
#![allow(clippy::unwrap_used)]

mod api;
mod api_live;
mod control_engine;
mod control_process;
mod control_store;
mod engine;
mod process;
mod store;
