//! The backends the suite runs against, each in its own throw-away namespace (a Postgres
//! database; a Redis key prefix).

use std::sync::Arc;

use cowans_core::queue::Driver;
use cowans_testkit::TestDb;

pub struct Harness {
    pub driver: Arc<dyn Driver>,
    /// Kept alive for the test (dropped: the database is dropped).
    _db: Option<TestDb>,
}

impl Harness {
    pub async fn postgres() -> Harness {
        let db = TestDb::new().await;
        Harness {
            driver: Arc::new(cowans_store::PgDriver::new(db.pool.clone())),
            _db: Some(db),
        }
    }

    pub async fn close(self) {}
}
