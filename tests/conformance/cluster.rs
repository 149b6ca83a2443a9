//! What only a cluster can show: a driver's queues spread over the primaries.

use std::{collections::BTreeSet, process::Command};

use cowans_core::{QueueName, queue::NewJob};
use serde_json::json;

use crate::backends::Harness;

/// The keys on one node matching `pattern` (`redis-cli --scan`, which asks that node only).
fn keys_on(port: u16, pattern: &str) -> Vec<String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["--scan", "--pattern", pattern])
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn queues_spread_over_the_primaries() {
    let h = Harness::redis_cluster().await;
    // A case first (its one queue), then a dozen queues: each queue lives on its slot's primary.
    crate::cases::claims_come_in_priority_then_enqueue_order(&h).await;
    let jobs: Vec<NewJob> = (0..12)
        .map(|i| {
            NewJob::new(
                QueueName::new(format!("spread-{i}")).unwrap(),
                "k",
                json!({}),
            )
        })
        .collect();
    h.driver.enqueue(&jobs).await.unwrap();
    let cluster = h.cluster.as_ref().unwrap();
    let prefix = h.redis_prefix().unwrap().to_owned();
    let mut holding = BTreeSet::new();
    let mut queues = BTreeSet::new();
    for &port in &cluster.ports {
        let keys = keys_on(port, &format!("{{{prefix}:q:*"));
        for k in &keys {
            let q = k
                .trim_start_matches(&format!("{{{prefix}:q:"))
                .split_once('}')
                .unwrap()
                .0
                .to_owned();
            queues.insert(q.clone());
            holding.insert((port, q));
        }
    }
    assert_eq!(queues.len(), 13, "{queues:?}");
    assert_eq!(
        holding.len(),
        13,
        "a queue's keys are all on one primary: {holding:?}"
    );
    let primaries: BTreeSet<u16> = holding.iter().map(|(p, _)| *p).collect();
    assert!(
        primaries.len() >= 2,
        "all queues landed on one primary: {holding:?}"
    );
    // Every claim still finds its queue's jobs, wherever they live.
    for i in 0..12 {
        let q = QueueName::new(format!("spread-{i}")).unwrap();
        let c = h
            .driver
            .claim(
                &q,
                5,
                uuid::Uuid::new_v4(),
                std::time::Duration::from_secs(30),
                None,
            )
            .await
            .unwrap();
        assert_eq!(c.len(), 1, "{q}");
    }
    // Deleting the prefix clears it on every primary.
    h.flush().await;
    for &port in &cluster.ports {
        assert_eq!(keys_on(port, &format!("*{prefix}*")), Vec::<String>::new());
    }
    h.close().await;
}
