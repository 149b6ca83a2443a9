//! What is particular to Redis, against a real server (`COWANS_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`; throw-away servers for the server settings). The queue semantics
//! every backend shares are tested once, against every backend, in `tests/conformance`. An
//! unreachable server fails the tests: nothing is skipped.

#![allow(clippy::unwrap_used)]

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use cowans_core::{
    JobId, JobState, QueueName, Wakeup,
    queue::{Driver, NewJob, QueueError, Unique, WakeupSink},
};
use cowans_redis::RedisDriver;
use serde_json::json;
use tokio::sync::mpsc;
use uuid::Uuid;

fn url() -> String {
    std::env::var("COWANS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

async fn driver() -> RedisDriver {
    let prefix = format!("cowans-test-{}", Uuid::new_v4());
    match RedisDriver::connect(&url(), &prefix).await {
        Ok(d) => d,
        Err(e) => panic!(
            "cannot use the test Redis at {} ({e}): start redis-server there or set COWANS_TEST_REDIS_URL",
            url()
        ),
    }
}

fn q(name: &str) -> QueueName {
    QueueName::new(name).unwrap()
}

fn job(queue: &str) -> NewJob {
    NewJob::new(q(queue), "test.kind", json!({"n": 1}))
}

const TTL: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_never_share_a_job() {
    let d = driver().await;
    let jobs: Vec<NewJob> = (0..2000).map(|_| job("many")).collect();
    let ids = d.enqueue(&jobs).await.unwrap();
    assert_eq!(ids.len(), 2000);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let d = d.clone();
        tasks.push(tokio::spawn(async move {
            let w = Uuid::new_v4();
            let mut mine = Vec::new();
            loop {
                let c = d.claim(&q("many"), 25, w, TTL, None).await.unwrap();
                if c.is_empty() {
                    return mine;
                }
                let refs: Vec<_> = c.iter().map(|j| j.lease_ref()).collect();
                assert_eq!(d.complete(&refs, true).await.unwrap().len(), refs.len());
                mine.extend(c.into_iter().map(|j| j.id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let expected: Vec<i64> = ids.iter().map(|e| e.id.0).collect();
    assert_eq!(all, expected, "each job claimed exactly once");
    assert!(d.count_by_state("many").await.unwrap().is_empty());
    d.flush_prefix().await.unwrap();
}

/// Acks need a job's queue: its id names it (through the id's block), so a driver that did
/// not enqueue or claim the job (another process) finds, acks and reads it.
#[tokio::test]
async fn jobs_are_found_from_their_id_alone_by_any_process() {
    let d = driver().await;
    let f = d.enqueue(&[job("f"), job("f")]).await.unwrap();
    let g = d.enqueue(&[job("g")]).await.unwrap();
    assert!(f[0].id < f[1].id, "one process's ids of a queue increase");
    let block = |id: JobId| (id.0 - cowans_core::queue::REDIS_FIRST_ID) / 1024;
    assert_ne!(
        block(f[0].id),
        block(g[0].id),
        "a block holds one queue's ids"
    );
    let w = Uuid::new_v4();
    let c = d.claim(&q("f"), 2, w, TTL, None).await.unwrap();
    let other = RedisDriver::connect(&url(), d.prefix()).await.unwrap();
    assert_eq!(
        other.complete(&[c[0].lease_ref()], false).await.unwrap(),
        vec![c[0].job_id()]
    );
    assert_eq!(other.job(c[0].job_id()).await.unwrap().unwrap().queue, "f");
    assert_eq!(other.job(g[0].id).await.unwrap().unwrap().queue, "g");
    assert_eq!(other.cancel(g[0].id).await.unwrap(), JobState::Available);
    d.flush_prefix().await.unwrap();
}

#[tokio::test]
async fn a_prefix_with_braces_is_refused() {
    for prefix in ["a{b", "a}b", ""] {
        let err = RedisDriver::connect(&url(), prefix).await.unwrap_err();
        assert!(
            matches!(&err, QueueError::Invalid { field, .. } if field == "redis.prefix"),
            "{prefix:?}: {err:?}"
        );
    }
}

struct Collect {
    tx: mpsc::UnboundedSender<Option<Wakeup>>,
    missed: Mutex<u32>,
}

impl WakeupSink for Collect {
    fn wake(&self, wakeup: Wakeup) {
        let _ = self.tx.send(Some(wakeup));
    }
    fn missed(&self) {
        *self.missed.lock().unwrap() += 1;
        let _ = self.tx.send(None);
    }
}

async fn next_matching(
    rx: &mut mpsc::UnboundedReceiver<Option<Wakeup>>,
    want: impl Fn(&Option<Wakeup>) -> bool,
) -> Option<Wakeup> {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let got = rx.recv().await.expect("the listener is gone");
            if want(&got) {
                return got;
            }
        }
    })
    .await
    .expect("no such wake-up within 5 s")
}

/// A throw-away server on a free port, killed when dropped.
struct Throwaway(std::process::Child);

impl Drop for Throwaway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a throw-away `redis-server` on a free port (no persistence) with `extra` arguments;
/// returns it with its URL and a connection once it answers.
async fn throwaway(extra: &[&str]) -> (Throwaway, String, redis::aio::MultiplexedConnection) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let port = port.to_string();
    let mut args = vec![
        "--port",
        &port,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ];
    args.extend_from_slice(extra);
    let child = std::process::Command::new("redis-server")
        .args(&args)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server must be installed to run this test");
    let server = Throwaway(child);
    let url = format!("redis://127.0.0.1:{port}");
    let client = redis::Client::open(url.as_str()).unwrap();
    for _ in 0..50 {
        if let Ok(c) = client.get_multiplexed_async_connection().await {
            return (server, url, c);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the throw-away redis-server on port {port} did not start");
}

#[tokio::test]
async fn a_server_that_evicts_keys_is_refused() {
    let (_server, url, mut conn) = throwaway(&["--maxmemory-policy", "allkeys-lru"]).await;
    let err = RedisDriver::connect(&url, "evict").await.unwrap_err();
    assert!(
        matches!(&err, QueueError::Invalid { field, message }
            if field == "redis.maxmemory-policy" && message.contains("allkeys-lru")),
        "{err:?}"
    );
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .query_async(&mut conn)
        .await
        .unwrap();
    RedisDriver::connect(&url, "evict").await.unwrap();
}

#[tokio::test]
async fn a_server_without_config_is_accepted() {
    let (_server, url, _conn) = throwaway(&["--rename-command", "CONFIG", ""]).await;
    let d = RedisDriver::connect(&url, "noconfig").await.unwrap();
    d.enqueue(&[job("x")]).await.unwrap();
}

#[tokio::test]
async fn the_listener_reconnects_and_reports_missed_wakeups() {
    let (_server, url, mut conn) = throwaway(&[]).await;
    let d = RedisDriver::connect(&url, "relisten").await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sink = Arc::new(Collect {
        tx,
        missed: Mutex::new(0),
    });
    let listener = {
        let d = d.clone();
        let sink: Arc<dyn WakeupSink> = sink.clone();
        tokio::spawn(async move { d.listen(sink).await })
    };
    next_matching(&mut rx, Option::is_none).await;
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(killed, 1);
    next_matching(&mut rx, Option::is_none).await;
    assert_eq!(*sink.missed.lock().unwrap(), 2);
    d.set_paused(&q("z"), true).await.unwrap();
    let control = Some(Wakeup::Control { queue: q("z") });
    next_matching(&mut rx, |w| *w == control).await;
    listener.abort();
}

#[tokio::test]
async fn unreadable_job_data_is_reported_and_never_blocks_a_queue() {
    let d = driver().await;
    let id = d.enqueue(&[job("bad")]).await.unwrap()[0].id;
    let client = redis::Client::open(url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{{{}:q:bad}}:job:{}", d.prefix(), id.0);
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("errors")
        .arg("not json")
        .query_async(&mut conn)
        .await
        .unwrap();
    let err = d.job(id).await.unwrap_err();
    assert!(
        matches!(
            err,
            QueueError::Backend {
                backend: "redis",
                ..
            }
        ),
        "{err:?}"
    );
    // A job whose attempt cannot be read is dead-lettered by the claim (naming the problem);
    // the jobs behind it are claimed as usual and nothing is left out of every index.
    let ids: Vec<JobId> = d
        .enqueue(&[job("bad2"), job("bad2")])
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    let key = format!("{{{}:q:bad2}}:job:{}", d.prefix(), ids[0].0);
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("attempt")
        .arg("many")
        .query_async(&mut conn)
        .await
        .unwrap();
    let claimed = d
        .claim(&q("bad2"), 10, Uuid::new_v4(), TTL, None)
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().map(|c| c.job_id()).collect::<Vec<_>>(),
        [ids[1]]
    );
    let dead = d.job(ids[0]).await.unwrap().unwrap();
    assert_eq!(dead.state, JobState::Dead);
    assert!(
        dead.errors[0].error.contains("unreadable job data"),
        "{dead:?}"
    );
    d.flush_prefix().await.unwrap();
}

/// What names a job's queue is one entry per block of 1,024 ids, not one per job: duplicates,
/// deletions and thousands of jobs leave it small.
#[tokio::test]
async fn the_id_to_queue_record_is_one_entry_per_block() {
    let d = driver().await;
    let keyed = || job("uniq").unique(Unique::key("k"));
    let first = d.enqueue(&[keyed()]).await.unwrap()[0];
    for _ in 0..5 {
        assert!(d.enqueue(&[keyed()]).await.unwrap()[0].duplicate);
    }
    let many: Vec<NewJob> = (0..3000).map(|_| job("many")).collect();
    d.enqueue(&many).await.unwrap();
    let c = d
        .claim(&q("uniq"), 1, Uuid::new_v4(), TTL, None)
        .await
        .unwrap();
    assert_eq!(c[0].job_id(), first.id);
    d.complete(&[c[0].lease_ref()], true).await.unwrap();
    let client = redis::Client::open(url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let blocks: i64 = redis::cmd("HLEN")
        .arg(format!("{{{}}}:blocks", d.prefix()))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        blocks,
        1 + 3,
        "one block for uniq, three for 3,000 jobs of many"
    );
    d.flush_prefix().await.unwrap();
}
