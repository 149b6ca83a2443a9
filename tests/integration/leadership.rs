//! Leadership: one leader at a time, renewals keep the term, a new term after expiry.

use std::time::Duration;

use cowans_store as store;
use cowans_testkit::TestDb;
use uuid::Uuid;

#[tokio::test]
async fn one_leader_at_a_time_and_a_new_term_after_expiry() {
    let db = TestDb::new().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let ttl = Duration::from_millis(1000);
    let t1 = store::try_lead(&db.pool, "m", a, ttl)
        .await
        .unwrap()
        .expect("a leads");
    assert!(
        store::try_lead(&db.pool, "m", b, ttl)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store::try_lead(&db.pool, "m", a, ttl).await.unwrap(),
        Some(t1),
        "renewal keeps the term"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t2 = store::try_lead(&db.pool, "m", b, ttl)
        .await
        .unwrap()
        .expect("b takes over");
    assert!(t2.0 > t1.0);
    store::resign_leader(&db.pool, "m", b).await.unwrap();
    assert!(
        store::try_lead(&db.pool, "m", a, ttl)
            .await
            .unwrap()
            .is_some()
    );
}
