//! One Shopify budget per shop for the whole fleet: catalogs over separate connection pools
//! (as separate worker processes are) pace against the shop's one bucket, in Postgres or in
//! Redis (`catalog.budgets = "redis"`), so together they stay within its restore rate instead
//! of each spending it.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::catalog::{catalog, fixture};

#[tokio::test]
async fn processes_calling_one_shop_share_its_bucket_and_are_hardly_ever_throttled() {
    share_one_bucket(None).await;
}

#[tokio::test]
async fn processes_calling_one_shop_share_its_bucket_in_redis() {
    let prefix = format!("cowans-it-{}", uuid::Uuid::new_v4().simple());
    share_one_bucket(Some(&prefix)).await;
}

/// Redis buckets of the fleet under `prefix` (each call a connection of its own, as another
/// process would have).
async fn redis_buckets(prefix: &str) -> (cowans_redis::RedisDriver, cowans_redis::CostBuckets) {
    let url = cowans_testkit::redis_server::shared_url();
    let driver = cowans_redis::RedisDriver::connect(&url, prefix)
        .await
        .unwrap_or_else(|e| {
            panic!("cannot use Redis at {url} ({e}): start it or set COWANS_TEST_REDIS_URL")
        });
    let buckets = cowans_redis::CostBuckets::new(driver.clone());
    (driver, buckets)
}

async fn share_one_bucket(redis: Option<&str>) {
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
        if let Some(prefix) = redis {
            other.use_redis_budgets(redis_buckets(prefix).await.1);
        }
        let client = other.client(&other.shop(f.shop.id).await.unwrap()).unwrap();
        for _ in 0..3 {
            let client = client.clone();
            callers.push(tokio::spawn(async move {
                let mut answered = 0;
                while t0.elapsed() < Duration::from_secs(4) {
                    client
                        .query::<Value>(
                            "query { products(first: 5) { nodes { id title } } }",
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
    let elapsed = t0.elapsed().as_secs_f64();
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
    // The six callers' first requests (42 points) fit the 100 available; from then on the shared
    // bucket keeps every caller of both "processes" within the restore rate: alone on the
    // machine none or one or two are throttled, on a loaded one (the whole suite on two cores)
    // up to ~5 %. With a bucket per process each spends what the other already took: more than
    // half are throttled (`cowans-bench shop-budget`), far above this 10 % bound.
    assert!(
        throttled * 10 <= log.len(),
        "{throttled} throttled of {} requests",
        log.len()
    );
    // And pacing does not starve them: at least half of what the bucket allowed was spent
    // (a wide margin for a loaded machine; the figure is `cowans-bench shop-budget`'s).
    let spent: f64 = log
        .iter()
        .filter(|r| r["outcome"] == "ok")
        .filter_map(|r| r["actual_cost"].as_f64())
        .sum();
    let allowed = 100.0 + 100.0 * elapsed;
    assert!(
        spent >= 0.5 * allowed,
        "{spent} points spent of {allowed:.0} allowed ({ok} answers)"
    );

    // Another token is another app's bucket: replacing it forgets what was learnt.
    let rows = |pool: sqlx::PgPool| async move {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM cowans_shop_budgets")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let updater = catalog(&f.db);
    let learnt = match redis {
        None => None,
        Some(prefix) => {
            let (driver, buckets) = redis_buckets(prefix).await;
            updater.use_redis_budgets(buckets);
            Some(driver)
        }
    };
    let in_redis = async |d: &cowans_redis::RedisDriver| -> bool {
        let client = redis::Client::open(cowans_testkit::redis_server::shared_url()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let n: i64 = redis::cmd("EXISTS")
            .arg(format!("{{{}:b:shop:{}}}:bucket", d.prefix(), f.shop.id))
            .query_async(&mut c)
            .await
            .unwrap();
        n == 1
    };
    match &learnt {
        None => assert_eq!(rows(f.db.pool.clone()).await, 1),
        Some(d) => {
            assert!(in_redis(d).await, "the bucket lives in Redis");
            assert_eq!(rows(f.db.pool.clone()).await, 0, "and not in Postgres");
        }
    }
    updater
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
    match &learnt {
        None => assert_eq!(rows(f.db.pool.clone()).await, 0),
        Some(d) => {
            assert!(!in_redis(d).await, "forgotten with the old token");
            d.flush_prefix().await.unwrap();
        }
    }
}
