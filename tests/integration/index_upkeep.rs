//! Index upkeep: a bloated claim index is rebuilt compact without stopping enqueues and claims
//! (even while a snapshot holds the rebuild back; an old one keeps it from starting), leftovers of an interrupted rebuild are
//! cleared, one rebuild runs at a time fleet-wide, and the leader does it by itself.

use std::time::Duration;

use cowans_core::JobState;
use cowans_queue::EngineConfig;
use cowans_store::{self as store, NewJob, Rebuild};
use cowans_testkit::{TestDb, wait_for};
use cowans_tests::{count, queue};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::support::{TTL, complete_all, engine::engine, engine::fast, job};

const CLAIM: &str = "cowans_jobs_claim";
/// Snapshots older than this keep a rebuild from starting (none is, in these tests).
const OLD: Duration = Duration::from_secs(3600);

/// Runs `n` jobs through the claim index (enqueued, claimed, completed): each leaves an entry
/// behind until VACUUM.
async fn churn(db: &TestDb, q: &str, n: i64) {
    for chunk in 0..n / 1000 {
        let jobs: Vec<NewJob> = (0..1000).map(|i| job(q, chunk * 1000 + i)).collect();
        store::enqueue_many(&db.pool, &jobs).await.unwrap();
        assert_eq!(complete_all(db, q).await.len(), 1000);
    }
}

async fn claim_index(db: &TestDb) -> store::IndexSize {
    store::refresh_queue_stats(&db.pool).await.unwrap();
    store::index_sizes(&db.pool)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.name == CLAIM)
        .expect("the claim index is reported")
}

/// Names of the job table's indexes that are not valid (an interrupted build leaves one).
async fn invalid_indexes(db: &TestDb) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid \
         WHERE x.indrelid = 'cowans_jobs'::regclass AND NOT x.indisvalid",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_bloated_claim_index_is_rebuilt_compact_and_the_queue_keeps_working() {
    let db = TestDb::new().await;
    churn(&db, "up", 20_000).await;
    store::enqueue_many(&db.pool, &[job("up", 1), job("up", 2)])
        .await
        .unwrap();
    let bloated = claim_index(&db).await;
    assert_eq!(bloated.entries, 2, "two jobs wait");
    assert!(
        bloated.bloated(256 << 10),
        "20,000 jobs' entries stay behind: {bloated:?}"
    );
    assert!(
        !bloated.bloated(bloated.bytes + 1),
        "below the size floor nothing is due"
    );

    let Rebuild::Done { before, after } = store::rebuild_index(&db.options(), CLAIM, OLD)
        .await
        .unwrap()
    else {
        panic!("nobody else rebuilds")
    };
    assert_eq!(before, bloated.bytes);
    assert!(
        after * 4 < before,
        "rebuilt compact: {before} -> {after} bytes"
    );
    assert!(!claim_index(&db).await.bloated(256 << 10));
    assert!(invalid_indexes(&db).await.is_empty());
    // The rebuilt index serves claims, in priority order.
    store::enqueue(&db.pool, &job("up", 3).priority(5))
        .await
        .unwrap();
    let claimed = store::claim(&db.pool, &queue("up"), 10, Uuid::new_v4(), TTL, None)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    assert_eq!(claimed[0].priority, 5, "the higher priority first");
}

#[tokio::test]
async fn a_rebuild_waits_for_a_snapshot_without_holding_up_the_queue_and_an_old_one_stops_it() {
    let db = TestDb::new().await;
    churn(&db, "snap", 5_000).await;
    // Another session holds a snapshot open, as a forgotten transaction would.
    let mut idle = PgConnection::connect_with(&db.options()).await.unwrap();
    sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM cowans_jobs")
        .execute(&mut idle)
        .await
        .unwrap();
    // A snapshot older than the given age keeps a rebuild from starting: the copy would bloat
    // as fast as the original.
    assert_eq!(
        store::rebuild_index(&db.options(), CLAIM, Duration::ZERO)
            .await
            .unwrap(),
        Rebuild::SnapshotHeld
    );
    // A younger one is waited for.
    let options = db.options();
    let rebuild = tokio::spawn(async move { store::rebuild_index(&options, CLAIM, OLD).await });
    wait_for(
        "the rebuild to wait for the old snapshot",
        Duration::from_secs(60),
        || async {
            let phase: Option<String> = sqlx::query_scalar(
                "SELECT phase FROM pg_stat_progress_create_index WHERE datname = current_database()",
            )
            .fetch_optional(&db.pool)
            .await
            .unwrap();
            (phase.as_deref() == Some("waiting for old snapshots")).then_some(())
        },
    )
    .await;
    // Meanwhile the queue works.
    store::enqueue_many(&db.pool, &[job("snap", 1), job("snap", 2)])
        .await
        .unwrap();
    assert_eq!(complete_all(&db, "snap").await.len(), 2);
    assert!(!rebuild.is_finished(), "the old snapshot still holds it");
    sqlx::raw_sql("COMMIT").execute(&mut idle).await.unwrap();
    let done = tokio::time::timeout(Duration::from_secs(60), rebuild)
        .await
        .expect("the rebuild ends once the snapshot is gone")
        .unwrap()
        .unwrap();
    assert!(matches!(done, Rebuild::Done { before, after } if after < before));
    assert_eq!(count(&db.pool, "snap", JobState::Completed).await, 5_002);
    assert!(invalid_indexes(&db).await.is_empty());
}

#[tokio::test]
async fn leftovers_of_an_interrupted_rebuild_are_cleared_and_one_rebuild_runs_at_a_time() {
    let db = TestDb::new().await;
    churn(&db, "left", 1_000).await;
    // An interrupted rebuild leaves an invalid copy named after the index (here: one whose
    // build failed half-way).
    let failed = sqlx::raw_sql(
        "CREATE INDEX CONCURRENTLY cowans_jobs_claim_ccnew ON cowans_jobs ((1 / (id - id)))",
    )
    .execute(&db.pool)
    .await;
    assert!(failed.is_err(), "division by zero fails the build");
    assert_eq!(invalid_indexes(&db).await, vec!["cowans_jobs_claim_ccnew"]);

    // Another process holds the fleet's rebuild lock: nothing happens.
    let mut other = PgConnection::connect_with(&db.options()).await.unwrap();
    let locked: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('cowans_index_upkeep'))")
            .fetch_one(&mut other)
            .await
            .unwrap();
    assert!(locked);
    assert_eq!(
        store::rebuild_index(&db.options(), CLAIM, OLD)
            .await
            .unwrap(),
        Rebuild::Busy
    );
    assert_eq!(invalid_indexes(&db).await.len(), 1, "untouched while busy");
    other.close().await.unwrap();

    assert!(matches!(
        store::rebuild_index(&db.options(), CLAIM, OLD)
            .await
            .unwrap(),
        Rebuild::Done { .. }
    ));
    assert!(
        invalid_indexes(&db).await.is_empty(),
        "the leftover is gone"
    );
    // Only the upkept indexes can be named.
    let err = store::rebuild_index(&db.options(), "cowans_jobs_pkey", OLD)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("index"), "{err}");
}

#[tokio::test]
async fn the_leader_rebuilds_a_bloated_claim_index_by_itself() {
    let db = TestDb::new().await;
    churn(&db, "lead", 10_000).await;
    let before = claim_index(&db).await.bytes;
    let config = EngineConfig {
        maintenance_interval: Duration::from_millis(200),
        stats_interval: Duration::from_millis(200),
        index_rebuild_min_bytes: 64 << 10,
        ..fast()
    };
    let engine = engine(&db, config).await;
    // REINDEX CONCURRENTLY swaps the compact copy in before it drops the old one (left invalid
    // for a moment), so "done" is both: the named index is compact and no invalid one is left.
    let after = wait_for("the leader's rebuild", Duration::from_secs(60), || async {
        let s = claim_index(&db).await;
        (s.bytes * 4 < before && invalid_indexes(&db).await.is_empty()).then_some(s.bytes)
    })
    .await;
    assert!(after < before);
    engine.shutdown().await;
}
