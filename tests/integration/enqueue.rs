//! Enqueue: one job, ten thousand in one statement, inside the caller's transaction; unique keys
//! (also under concurrent enqueues); bad input refused naming the field; the API's single submits
//! sharing commits, where a payload Postgres cannot store or a job the database refuses fails
//! alone.

use std::time::Duration;

use cowans_core::JobState;
use cowans_store::{self as store, NewJob, Unique};
use cowans_testkit::TestDb;
use cowans_tests::queue;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::api::{Api, api_with, assert_error_shape};
use crate::support::{TTL, complete_all, job};

#[tokio::test]
async fn bulk_enqueue_inserts_ten_thousand_in_one_call_in_order() {
    let db = TestDb::new().await;
    let jobs: Vec<NewJob> = (0..10_000).map(|n| job("bulk", n)).collect();
    let ids = cowans_tests::enqueue_ids(&db.pool, &jobs).await;
    assert_eq!(ids.len(), 10_000);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids come back in input order"
    );
    let last = store::get_job(&db.pool, ids[9_999]).await.unwrap().unwrap();
    assert_eq!(last.args, json!({ "n": 9_999 }));
    assert_eq!(last.state, JobState::Available);
    let counts = store::count_by_state(&db.pool, "bulk").await.unwrap();
    assert!(counts.contains(&(JobState::Available, 10_000)));

    // The autocommit variant (NOTIFY after the commit) answers the same way.
    let mixed = [job("bulk", 1), job("other", 2), job("bulk", 3)];
    let ids = store::enqueue_autocommit(&db.pool, &mixed)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect::<Vec<_>>();
    assert_eq!(ids.len(), 3, "one id per job, no notification rows");
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let second = store::get_job(&db.pool, ids[1]).await.unwrap().unwrap();
    assert_eq!(
        (second.queue.as_str(), second.args.clone()),
        ("other", json!({ "n": 2 }))
    );
}

#[tokio::test]
async fn jobs_alike_but_for_their_arguments_land_with_every_column_as_given() {
    let db = TestDb::new().await;
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    // Alike but for their arguments (the statement takes the shared columns once), then the same
    // jobs with one of another priority (every column as an array): both land as given, in
    // both the autocommit and the in-transaction form.
    let alike: Vec<NewJob> = (0..3)
        .map(|n| {
            job("alike", n)
                .priority(3)
                .run_at(later)
                .max_attempts(7)
                .rate_key("shop-1")
        })
        .collect();
    let mut mixed = alike.clone();
    mixed[1] = mixed[1].clone().priority(4);
    for (jobs, in_tx) in [(&alike, false), (&mixed, false), (&alike, true)] {
        let done = if in_tx {
            store::enqueue_many(&db.pool, jobs).await.unwrap()
        } else {
            store::enqueue_autocommit(&db.pool, jobs).await.unwrap()
        };
        assert_eq!(done.len(), jobs.len());
        for (e, j) in done.iter().zip(jobs.iter()) {
            let got = store::get_job(&db.pool, e.id).await.unwrap().unwrap();
            assert_eq!(
                (
                    got.queue.as_str(),
                    got.kind.as_str(),
                    &got.args,
                    got.priority,
                    got.max_attempts,
                    got.state,
                    got.rate_key.as_deref(),
                    got.unique_key.as_deref(),
                ),
                (
                    "alike",
                    j.kind.as_str(),
                    &j.args,
                    j.priority,
                    7,
                    JobState::Scheduled,
                    Some("shop-1"),
                    None,
                ),
                "in_tx: {in_tx}"
            );
            assert!((got.run_at - later).num_milliseconds().abs() < 1);
        }
    }
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field() {
    let db = TestDb::new().await;
    let mut bad = job("q", 1);
    bad.kind = "Not A Kind".into();
    let err = store::enqueue_many(&db.pool, &[job("q", 0), bad])
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("jobs[1].kind"), "{err}");
    let err = store::enqueue(&db.pool, &job("q", 0).max_attempts(0))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("max_attempts"), "{err}");
    assert!(
        store::count_by_state(&db.pool, "q")
            .await
            .unwrap()
            .iter()
            .all(|(_, n)| *n == 0)
    );
}

#[tokio::test]
async fn enqueue_in_a_rolled_back_transaction_never_appears() {
    let db = TestDb::new().await;
    let q = queue("tx");
    let mut tx = db.pool.begin().await.unwrap();
    let id = store::enqueue(&mut *tx, &job("tx", 1)).await.unwrap().id;
    // Not visible to workers before commit.
    let claimed = store::claim(&db.pool, &q, 10, Uuid::new_v4(), TTL, None)
        .await
        .unwrap();
    assert!(claimed.is_empty());
    tx.rollback().await.unwrap();
    assert!(store::get_job(&db.pool, id).await.unwrap().is_none());

    let mut tx = db.pool.begin().await.unwrap();
    let id = store::enqueue(&mut *tx, &job("tx", 2)).await.unwrap().id;
    tx.commit().await.unwrap();
    let claimed = store::claim(&db.pool, &q, 10, Uuid::new_v4(), TTL, None)
        .await
        .unwrap();
    assert_eq!(claimed.iter().map(|j| j.id).collect::<Vec<_>>(), vec![id.0]);
}

#[tokio::test]
async fn a_duplicate_unique_key_answers_with_the_existing_job_never_an_error() {
    let db = TestDb::new().await;
    let first = store::enqueue(&db.pool, &job("u", 1).unique(Unique::key("sku-1")))
        .await
        .unwrap();
    assert!(!first.duplicate);
    let again = store::enqueue(&db.pool, &job("u", 2).unique(Unique::key("sku-1")))
        .await
        .unwrap();
    assert_eq!((again.id, again.duplicate), (first.id, true));
    // Same key on another queue is another job.
    let other = store::enqueue(&db.pool, &job("u2", 3).unique(Unique::key("sku-1")))
        .await
        .unwrap();
    assert!(!other.duplicate);

    // Bulk: a result per item, duplicates within the call and against the table, in order.
    let bulk = [
        job("u", 10).unique(Unique::key("sku-2")),
        job("u", 11),
        job("u", 12).unique(Unique::key("sku-1")),
        job("u", 13).unique(Unique::key("sku-2")),
        job("u", 14),
    ];
    let res = store::enqueue_autocommit(&db.pool, &bulk).await.unwrap();
    let dup: Vec<bool> = res.iter().map(|r| r.duplicate).collect();
    assert_eq!(dup, [false, false, true, true, false]);
    assert_eq!(res[2].id, first.id);
    assert_eq!(res[3].id, res[0].id);
    assert_eq!(
        store::get_job(&db.pool, res[4].id)
            .await
            .unwrap()
            .unwrap()
            .args,
        json!({ "n": 14 })
    );

    // Once the holder completes, the key is free again (default states)...
    let done = complete_all(&db, "u").await;
    assert!(done.contains(&first.id));
    let fresh = store::enqueue(&db.pool, &job("u", 4).unique(Unique::key("sku-1")))
        .await
        .unwrap();
    assert!(!fresh.duplicate && fresh.id != first.id);
    // ...unless completed is one of the key's states.
    let kept = Unique::key("once").also_in(&[JobState::Completed]);
    let a = store::enqueue(&db.pool, &job("v", 1).unique(kept.clone()))
        .await
        .unwrap();
    complete_all(&db, "v").await;
    let b = store::enqueue(&db.pool, &job("v", 2).unique(kept))
        .await
        .unwrap();
    assert_eq!((b.id, b.duplicate), (a.id, true));

    // States that must always be covered cannot be left out.
    let bad = Unique {
        key: "k".into(),
        states: vec![JobState::Available],
    };
    let err = store::enqueue(&db.pool, &job("u", 9).unique(bad))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unique.states"), "{err}");
}

#[tokio::test]
async fn concurrent_enqueues_of_one_key_insert_exactly_one_job() {
    let db = TestDb::new().await;
    let mut tasks = Vec::new();
    for n in 0..20 {
        let pool = db.pool.clone();
        tasks.push(tokio::spawn(async move {
            store::enqueue_autocommit(&pool, &[job("race", n).unique(Unique::key("same"))])
                .await
                .unwrap()[0]
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let inserted: Vec<_> = results.iter().filter(|r| !r.duplicate).collect();
    assert_eq!(inserted.len(), 1, "{results:?}");
    assert!(results.iter().all(|r| r.id == inserted[0].id));
}

#[tokio::test]
async fn concurrent_single_submits_share_commits_and_each_is_audited_in_its_commit() {
    let api = api_with(cowans_api::ApiOptions {
        rate: cowans_api::rate_limit::RateConfig {
            per_second: 10_000.0,
            burst: 10_000.0,
        },
        ..Default::default()
    })
    .await;
    let clients = 50;
    let per_client = 8;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, base, key) = (api.http.clone(), api.base.clone(), api.operator.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..per_client {
                let r = http
                    .post(format!("{base}/api/v1/jobs"))
                    .bearer_auth(&key)
                    .json(&json!({"queue": "grp", "kind": "g", "args": {"c": c, "i": i}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                ids.push(r.json::<Value>().await.unwrap()["id"].as_i64().unwrap());
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        clients * per_client,
        "every submit got its own job"
    );
    // Rows written by one transaction share xmin: the jobs came in fewer commits than requests,
    // and every job's audit entry was written in the same commit as the job.
    let (jobs, commits, audited): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT j.xmin::text), \
                count(*) FILTER (WHERE a.xmin::text = j.xmin::text) \
         FROM cowans_jobs j LEFT JOIN cowans_audit a \
           ON a.target = 'job:' || j.id AND a.action = 'job.submit' \
         WHERE j.queue = 'grp'",
    )
    .fetch_one(&api.pool)
    .await
    .unwrap();
    assert_eq!(jobs, (clients * per_client) as i64);
    assert_eq!(audited, jobs, "each job audited in its own commit");
    assert!(
        commits * 2 <= jobs,
        "{jobs} submits from {clients} clients took {commits} commits"
    );
    println!("{jobs} concurrent single submits in {commits} commits");

    // Two concurrent submits of one unique key: one job, the other answer points at it.
    let body = json!({"queue": "grp", "kind": "g", "unique_key": "once"});
    let op = Some(api.operator.as_str());
    let (a, b) = tokio::join!(
        api.call(Method::POST, "/api/v1/jobs", op, Some(body.clone())),
        api.call(Method::POST, "/api/v1/jobs", op, Some(body.clone())),
    );
    let mut statuses = [a.0.as_u16(), b.0.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 201], "{a:?} {b:?}");
    assert_eq!(a.1["id"], b.1["id"]);
}

/// `POST /api/v1/jobs` of every body at once (as an operator), answers in input order.
async fn submit_together(
    api: &Api,
    bodies: impl Iterator<Item = Value>,
) -> Vec<(reqwest::StatusCode, Value)> {
    let calls =
        bodies.map(|b| api.call(Method::POST, "/api/v1/jobs", Some(&api.operator), Some(b)));
    futures::future::join_all(calls).await
}

#[tokio::test]
async fn a_payload_postgres_cannot_store_is_refused_alone_without_failing_its_group() {
    let api = api_with(cowans_api::ApiOptions::default()).await;
    // Twenty concurrent submits, one with a NUL character deep in its payload (jsonb refuses it).
    let answers = submit_together(
        &api,
        (0..20).map(|i| {
            let name = if i == 7 { "bad\u{0}name" } else { "fine" };
            json!({"queue": "nul", "kind": "k", "args": {"items": [{"name": "a"}, {"name": name}]}})
        }),
    )
    .await;
    for (i, (s, v)) in answers.iter().enumerate() {
        if i == 7 {
            assert_eq!(s.as_u16(), 422, "{v}");
            assert_eq!(v["error"]["details"]["field"], "args.items[1].name", "{v}");
        } else {
            assert_eq!(s.as_u16(), 201, "submit {i}: {v}");
        }
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM cowans_jobs WHERE queue = 'nul'")
        .fetch_one(&api.pool)
        .await
        .unwrap();
    assert_eq!(stored, 19);
    // The same in a bulk submit names the item.
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/jobs/bulk",
            Some(&api.operator),
            Some(json!([{"queue": "nul", "kind": "k"}, {"queue": "nul", "kind": "k", "args": {"\u{0}": 1}}])),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"]["details"]["field"], "jobs[1].args", "{v}");
}

#[tokio::test]
async fn a_job_the_database_refuses_fails_alone_and_its_group_still_lands() {
    let api = api_with(cowans_api::ApiOptions::default()).await;
    // A rule only the database knows (as a constraint or trigger of an operator's would be).
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.args->>'poison' = 'yes' THEN RAISE EXCEPTION 'poisoned'; END IF; \
         RETURN NEW; END $$; \
         CREATE TRIGGER refuse_poison BEFORE INSERT ON cowans_jobs \
         FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
    )
    .execute(&api.pool)
    .await
    .unwrap();
    let answers = submit_together(
        &api,
        (0..30).map(|i| {
            let poison = if i == 11 { "yes" } else { "no" };
            json!({"queue": "grp", "kind": "k", "args": {"poison": poison, "i": i}})
        }),
    )
    .await;
    for (i, (s, v)) in answers.iter().enumerate() {
        if i == 11 {
            assert_eq!(s.as_u16(), 500, "{v}");
            assert_error_shape(v, "internal");
            assert!(
                !v.to_string().contains("poisoned"),
                "no database text leaks: {v}"
            );
        } else {
            assert_eq!(s.as_u16(), 201, "submit {i}: {v}");
        }
    }
    let (stored, audited): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM cowans_jobs WHERE queue = 'grp'), \
                (SELECT count(*) FROM cowans_audit WHERE action = 'job.submit')",
    )
    .fetch_one(&api.pool)
    .await
    .unwrap();
    assert_eq!(
        (stored, audited),
        (29, 29),
        "every answered 201 is stored and audited"
    );
}

#[tokio::test]
async fn a_group_of_unique_submits_inserts_each_key_once_and_audits_every_submit() {
    let db = TestDb::new().await;
    let held = store::enqueue(&db.pool, &job("g", 0).unique(Unique::key("k3")))
        .await
        .unwrap();
    // How the API's group commit sends concurrent single submits: one call, a submitter each.
    let jobs = [
        job("g", 1).unique(Unique::key("k1")),
        job("g", 2).unique(Unique::key("k2")),
        job("g", 3).unique(Unique::key("k1")),
        job("g", 4).unique(Unique::key("k3")),
        job("g", 5).unique(Unique::key("k4").also_in(&[JobState::Completed])),
    ];
    let who: Vec<cowans_core::Actor> = (0..jobs.len())
        .map(|i| cowans_core::Actor::system(&format!("submitter-{i}")))
        .collect();
    let res = store::enqueue_audited(&db.pool, &jobs, &who).await.unwrap();
    let dup: Vec<bool> = res.iter().map(|r| r.duplicate).collect();
    assert_eq!(dup, [false, false, true, true, false]);
    assert_eq!(
        res[2].id, res[0].id,
        "the second k1 is the first's duplicate"
    );
    assert_eq!(res[3].id, held.id, "k3 was already held");
    for (r, n) in [(res[0], 1), (res[1], 2), (res[4], 5)] {
        let j = store::get_job(&db.pool, r.id).await.unwrap().unwrap();
        assert_eq!(
            j.args,
            json!({ "n": n }),
            "each inserted job is its own submit"
        );
    }
    let counts = store::count_by_state(&db.pool, "g").await.unwrap();
    let available = counts
        .iter()
        .find(|(s, _)| *s == JobState::Available)
        .map_or(0, |(_, n)| *n);
    assert_eq!(available, 4, "k3 (held), k1, k2, k4: each key once");

    // Every submit is audited once, by its submitter, naming its job and whether it was new.
    let audit = store::list_audit(&db.pool, None, 100).await.unwrap();
    let mut entries: Vec<(String, String, bool)> = audit
        .iter()
        .filter(|e| e.action == "job.submit" && e.actor.starts_with("system:submitter-"))
        .map(|e| {
            (
                e.actor.clone(),
                e.target.clone().unwrap_or_default(),
                e.details["duplicate"].as_bool().unwrap(),
            )
        })
        .collect();
    entries.sort();
    let mut expected: Vec<(String, String, bool)> = res
        .iter()
        .zip(&who)
        .map(|(r, w)| (w.name.clone(), format!("job:{}", r.id), r.duplicate))
        .collect();
    expected.sort();
    assert_eq!(entries, expected);
}

/// Pools check a connection only when it sat idle (no round trip before every statement), so a
/// server that dropped the pool's connections while nobody used them (a restart, a proxy's idle
/// timeout) must still cost the next caller nothing: the dead connection is replaced, not
/// handed out.
#[tokio::test]
async fn an_enqueue_after_the_server_dropped_the_pools_idle_connections_succeeds() {
    let db = TestDb::new().await;
    let options = store::connect_options(&db.url()).unwrap();
    let pool = store::connect(options.application_name("dropped"), 2)
        .await
        .unwrap();
    store::enqueue_autocommit(&pool, &[job("dropped", 1)])
        .await
        .unwrap();
    let dropped: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'dropped'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(
        !dropped.is_empty() && dropped.iter().all(|&d| d),
        "the pool's connections were dropped"
    );
    tokio::time::sleep(store::IDLE_BEFORE_CHECK + Duration::from_millis(200)).await;

    let done = store::enqueue_autocommit(&pool, &[job("dropped", 2)])
        .await
        .expect("the next enqueue gets a live connection");
    assert_eq!(
        store::get_job(&db.pool, done[0].id)
            .await
            .unwrap()
            .unwrap()
            .args,
        json!({ "n": 2 })
    );
}
