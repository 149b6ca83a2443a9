//! One integration test binary, a file per capability: each capability's store-level statements
//! (real Postgres), its engine in process (apalis workers over `PgBackend`), its real
//! `cowans-worker` processes and its HTTP API sit together. Every test makes its own database.
//! Helpers shared by several files are in `support` (and process helpers in `cowans_tests`).
//!
//! The Shopify client's tests live in `crates/cowans-shopify/tests`, the simulator's fidelity
//! tests in `crates/cowans-shopsim/tests`.

// Test helpers may unwrap: a failure there is a test failure with its location.
#![allow(clippy::unwrap_used)]

mod support;

mod api_admin;
mod api_auth;
mod api_contract;
mod api_events;
mod api_fuzz;
mod api_hostile;
mod api_jobs;
mod apps;
mod batches;
mod catalog_budget;
mod catalog_bulk_edits;
mod catalog_changes;
mod catalog_export;
mod catalog_imports;
mod catalog_inventory;
mod catalog_notify;
mod catalog_pull;
mod catalog_shops;
mod catalog_webhooks;
mod chaos;
mod claim_and_ack;
mod console;
mod console_review;
mod control;
mod cron;
mod enqueue;
mod error_tracking;
mod index_upkeep;
mod leadership;
mod limits;
mod ops_deploy;
mod ops_live;
mod ops_prometheus;
mod prefetch;
mod redis_queues;
mod retention_and_stats;
mod retries_and_dead_letters;
mod shutdown;
mod wakeups;
mod worker_process;
