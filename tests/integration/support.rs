//! Helpers shared by several capability files: jobs for the store-level tests (here), an
//! in-process engine running the demo kinds (`engine`), one running the control kinds that obey,
//! ignore or sleep through a cancellation (`control_kinds`), the HTTP API served on port 0
//! (`api`), a headless Chromium for the console (`browser`), the catalog against a simulated shop (`catalog`) and WebSocket clients of its live events (`events`). Helpers used by one file live in it; process helpers are in `cowans_tests`.

pub(crate) mod api;
pub(crate) mod browser;
pub(crate) mod catalog;
pub(crate) mod control_kinds;
pub(crate) mod engine;
pub(crate) mod events;

use std::time::Duration;

use cowans_core::{JobId, JobState};
use cowans_store::{self as store, LeaseRef, NewJob};
use cowans_testkit::TestDb;
use cowans_tests::queue;
use serde_json::json;
use uuid::Uuid;

pub(crate) const TTL: Duration = Duration::from_secs(30);

pub(crate) fn job(q: &str, n: i64) -> NewJob {
    NewJob::new(queue(q), "test.job", json!({ "n": n }))
}

pub(crate) async fn state_of(db: &TestDb, id: JobId) -> JobState {
    store::get_job(&db.pool, id).await.unwrap().unwrap().state
}

pub(crate) async fn complete_all(db: &TestDb, q: &str) -> Vec<JobId> {
    let claimed = store::claim(&db.pool, &queue(q), 1000, Uuid::new_v4(), TTL, None)
        .await
        .unwrap();
    let refs: Vec<LeaseRef> = claimed.iter().map(|j| j.lease_ref()).collect();
    store::complete(&db.pool, &refs, false).await.unwrap()
}

pub(crate) fn sleeps(q: &str, n: usize, ms: u64) -> Vec<NewJob> {
    (0..n)
        .map(|_| NewJob::new(queue(q), "demo.sleep", json!({"ms": ms})))
        .collect()
}

/// One batch progress pass, as the leader of a fleet with Postgres queues only runs it.
pub(crate) async fn refresh_batches(pool: &sqlx::PgPool) -> store::Result<store::BatchRefresh> {
    let driver = store::PgDriver::new(pool.clone());
    cowans_queue::refresh_batches(pool, &driver, 100).await
}
