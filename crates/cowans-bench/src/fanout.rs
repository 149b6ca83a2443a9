//! `fanout`: `--subscribers` Server-Sent-Events subscribers of one `cowans-api` process's live
//! stream (`/api/v1/events`, the relay the console's stream shares), and `--events` events
//! published one at a time through Postgres, as the engine and the catalog publish theirs. For
//! each event, the time from just before its publishing commit until each subscriber has read
//! it: p50 and p99 over every delivery, deliveries missed, and the API's resident memory with
//! every subscriber connected. The subscribers run in this process, on the same two cores.

use std::time::{Duration, Instant};

use anyhow::bail;
use cowans_core::{Actor, Event, Role};
use tokio::sync::mpsc;

use crate::{Args, Measurement, bench_db::BenchDb, percentiles, procs::Proc};

/// The event numbered `i`.
fn event(i: usize) -> Event {
    Event::QueuePaused {
        queue: format!("fanout-{i}"),
    }
}

/// Reads one subscriber's stream, reporting `(event number, when read)`.
async fn subscribe(
    http: reqwest::Client,
    url: String,
    key: String,
    seen: mpsc::UnboundedSender<(usize, Instant)>,
) -> anyhow::Result<()> {
    let res = http.get(&url).bearer_auth(&key).send().await?;
    if !res.status().is_success() {
        bail!("subscribing answered {}", res.status());
    }
    let mut res = res;
    let mut buf = Vec::new();
    // Connected: the first report (usize::MAX) says so.
    let _ = seen.send((usize::MAX, Instant::now()));
    while let Some(chunk) = res.chunk().await? {
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            let Some(data) = line.strip_prefix(b"data:") else {
                continue;
            };
            let at = Instant::now();
            let e: serde_json::Value = serde_json::from_slice(data)?;
            if let Some(n) = e["queue"]
                .as_str()
                .and_then(|q| q.strip_prefix("fanout-"))
                .and_then(|n| n.parse().ok())
            {
                let _ = seen.send((n, at));
            }
        }
    }
    Ok(())
}

pub async fn run(args: &Args, db: &BenchDb) -> anyhow::Result<Vec<Measurement>> {
    let pool = db.pool(4).await?;
    cowans_store::migrate(&pool, &[], &[]).await?;
    let (key, _) = cowans_queue::FrontDoor::builder(pool.clone())
        .build()
        .create_api_key(&Actor::system("bench"), "fanout", Role::Viewer)
        .await?;
    // The per-key request limit is not what this measures.
    let api = Proc::spawn(
        "cowans-api",
        &["serve", "--listen", "127.0.0.1:0"],
        &[
            ("COWANS__DATABASE__URL", db.url()?),
            ("COWANS__API__RATE_PER_SECOND", "1000000".to_owned()),
            ("COWANS__API__RATE_BURST", "1000000".to_owned()),
        ],
        Duration::from_secs(60),
    )?;
    let url = format!("{}/api/v1/events", api.base_url()?);
    let n = args.subscribers;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(n)
        .build()?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (http, url, key, tx) = (http.clone(), url.clone(), key.clone(), tx.clone());
        tasks.push(tokio::spawn(subscribe(http, url, key, tx)));
    }
    drop(tx);
    let mut connected = 0;
    while connected < n {
        match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
            Ok(Some((usize::MAX, _))) => connected += 1,
            Ok(Some(_)) => {}
            _ => bail!("only {connected} of {n} subscribers connected"),
        }
    }
    let rss_mib = api.rss_mib();

    let started = Instant::now();
    let mut latencies_us = Vec::with_capacity(n * args.events);
    let mut missed = 0usize;
    for i in 0..args.events {
        let mut tx = pool.begin().await?;
        let at = Instant::now();
        cowans_store::announce(&mut tx, &[], &[event(i)]).await?;
        tx.commit().await?;
        // Every subscriber's copy, or give up on the rest after 10 s.
        let mut got = 0usize;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while got < n {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                // A late copy of an earlier event was already counted as missed.
                Ok(Some((j, read))) if j == i => {
                    latencies_us.push(read.duration_since(at).as_micros() as u64);
                    got += 1;
                }
                Ok(Some(_)) => {}
                Ok(None) => bail!("every subscriber's stream ended"),
                Err(_) => break,
            }
        }
        missed += n - got;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    for t in tasks {
        t.abort();
    }
    let deliveries = latencies_us.len();
    let (p50, p99) = percentiles(latencies_us);
    Ok(vec![Measurement::custom(
        "fanout",
        elapsed,
        format!(
            "subscribers={n} events={} deliveries={deliveries} missed={missed} \
             p50_ms={p50:.2} p99_ms={p99:.2} api_rss_mib={rss_mib:.0}",
            args.events
        ),
    )])
}
