//! One Shopify budget per shop for the whole fleet: catalogs over separate connection pools
//! (as separate worker processes are) pace against the shop's one bucket in Postgres, so
//! together they stay within its restore rate instead of each spending it.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::catalog::{catalog, fixture};

#[tokio::test]
async fn processes_calling_one_shop_share_its_bucket_and_are_hardly_ever_throttled() {
    let f = fixture(60, 1).await;
    let http = reqwest::Client::new();
    // A nearly empty Standard bucket (restore 100 points/s): the run is paced from the start.
    let r = http
        .post(format!("{}/__sim/plan", f.sim.base_url()))
        .json(&json!({"plan": "standard", "available": 100.0}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    http.delete(format!("{}/__sim/requests", f.sim.base_url()))
        .send()
        .await
        .unwrap();

    let mut callers = Vec::new();
    let t0 = Instant::now();
    for _process in 0..2 {
        // Its own pool, as another process would have.
        let pool = sqlx::PgPool::connect(&f.db.url()).await.unwrap();
        let other = cowans_catalog::Catalog::new(
            cowans_queue::FrontDoor::builder(pool).build(),
            &crate::support::catalog::settings(),
        )
        .unwrap();
        let client = other.client(&other.shop(f.shop.id).await.unwrap()).unwrap();
        for _ in 0..3 {
            let client = client.clone();
            callers.push(tokio::spawn(async move {
                let mut answered = 0;
                while t0.elapsed() < Duration::from_secs(4) {
                    client
                        .query::<Value>(
                            "query { products(first: 50) { nodes { id title } } }",
                            json!({}),
                        )
                        .await
                        .unwrap();
                    answered += 1;
                }
                answered
            }));
        }
    }
    let mut answered = 0;
    for c in callers {
        answered += c.await.unwrap();
    }
    let log: Vec<Value> = http
        .get(format!("{}/__sim/requests", f.sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let throttled = log.iter().filter(|r| r["outcome"] == "throttled").count();
    let ok = log.iter().filter(|r| r["outcome"] == "ok").count();
    assert_eq!(ok, answered, "every query was answered");
    // Six callers start before anything is learnt (at most six throttles); after that the
    // shared bucket keeps them all within the restore rate.
    assert!(
        throttled <= 6 + ok / 20,
        "{throttled} throttled of {} requests",
        log.len()
    );
    assert!(ok >= 6, "the restore rate was used ({ok} answers)");

    // Another token is another app's bucket: replacing it forgets what was learnt.
    let budget = |pool: sqlx::PgPool| async move {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM cowans_shop_budgets")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    assert_eq!(budget(f.db.pool.clone()).await, 1);
    catalog(&f.db)
        .update_shop(
            &crate::support::catalog::actor(),
            f.shop.id,
            cowans_catalog::ShopUpdate {
                access_token: Some(secrecy::SecretString::from(crate::support::catalog::TOKEN)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(budget(f.db.pool.clone()).await, 0);
}
