//! The backends the suite runs against, each in its own throw-away namespace (a Postgres
//! database; a Redis key prefix). Every harness has a Postgres database too: the applications'
//! handlers keep their own data there whatever backend holds the queues.

use std::sync::Arc;

use cowans_core::queue::Driver;
use cowans_testkit::TestDb;

pub struct Harness {
    pub driver: Arc<dyn Driver>,
    /// The applications' database (dropped with the harness).
    pub db: TestDb,
}

impl Harness {
    pub async fn postgres() -> Harness {
        let db = cowans_tests::demo_db().await;
        Harness {
            driver: Arc::new(cowans_store::PgDriver::new(db.pool.clone())),
            db,
        }
    }

    pub async fn close(self) {}
}
