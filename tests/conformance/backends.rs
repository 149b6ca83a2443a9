//! The backends the suite runs against, each in its own throw-away namespace (a Postgres
//! database; a Redis key prefix; a Redis Cluster of its own, three local primaries started for
//! the test). Every harness has a Postgres database too: the applications'
//! handlers keep their own data there whatever backend holds the queues.

use std::sync::Arc;

use cowans_core::queue::{Driver, Limiter};
use cowans_testkit::{TestDb, redis_cluster::RedisCluster};

pub struct Harness {
    pub driver: Arc<dyn Driver>,
    /// The backend's fleet-wide limits.
    pub limiter: Arc<dyn Limiter>,
    /// The applications' database (dropped with the harness).
    pub db: TestDb,
    /// The Redis driver, to delete its keys at the end.
    redis: Option<cowans_redis::RedisDriver>,
    /// The cluster the test started (stopped when the harness is dropped).
    pub cluster: Option<RedisCluster>,
}

pub use cowans_testkit::redis_server::shared_url as redis_url;

impl Harness {
    pub async fn postgres() -> Harness {
        let db = cowans_tests::demo_db().await;
        Harness {
            driver: Arc::new(cowans_store::PgDriver::new(db.pool.clone())),
            limiter: Arc::new(cowans_queue::PgLimiter::new(db.pool.clone())),
            db,
            redis: None,
            cluster: None,
        }
    }

    /// Queues in Redis under a fresh key prefix (deleted by [`Harness::close`]).
    pub async fn redis() -> Harness {
        let db = cowans_tests::demo_db().await;
        let prefix = format!("cowans-conformance-{}", uuid::Uuid::new_v4().simple());
        let driver = cowans_redis::RedisDriver::connect(&redis_url(), &prefix)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot use the test Redis at {} ({e}): start it (./ops/dev-services.sh) or set COWANS_TEST_REDIS_URL",
                    redis_url()
                )
            });
        Harness {
            driver: Arc::new(driver.clone()),
            limiter: Arc::new(cowans_redis::RedisLimiter::new(driver.clone())),
            db,
            redis: Some(driver),
            cluster: None,
        }
    }

    /// Queues in a Redis Cluster of three primaries started for this test (real `redis-server`
    /// processes; the test fails if Redis is not installed), under a fresh key prefix.
    pub async fn redis_cluster() -> Harness {
        let db = cowans_tests::demo_db().await;
        let cluster = tokio::task::spawn_blocking(RedisCluster::start)
            .await
            .expect("start a Redis Cluster");
        let prefix = format!("cowans-conformance-{}", uuid::Uuid::new_v4().simple());
        let driver = cowans_redis::RedisDriver::connect_cluster(&cluster.node_refs(), &prefix)
            .await
            .unwrap_or_else(|e| panic!("cannot use the test cluster {:?}: {e}", cluster.nodes));
        Harness {
            driver: Arc::new(driver.clone()),
            limiter: Arc::new(cowans_redis::RedisLimiter::new(driver.clone())),
            db,
            redis: Some(driver),
            cluster: Some(cluster),
        }
    }

    /// The Redis key prefix of a Redis harness.
    pub fn redis_prefix(&self) -> Option<&str> {
        self.redis.as_ref().map(|r| r.prefix())
    }

    pub async fn close(self) {
        self.flush().await;
    }

    /// Deletes the test's Redis keys (every primary of a cluster).
    pub async fn flush(&self) {
        if let Some(r) = &self.redis {
            r.flush_prefix()
                .await
                .expect("delete the test's Redis keys");
        }
    }
}
