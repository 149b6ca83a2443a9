//! `chaos pool`: connection exhaustion. On a throw-away cluster (`max_connections` 100),
//! `--jobs` queued and drained by `--processes` workers; at a quarter of the drain a hog opens
//! connections until the server refuses more, then for `--pool-hold-seconds` terminates the
//! workers' connections and takes the slots they free, until it holds every slot and the
//! workers' reconnects are refused ("too many clients already"). Then the hog lets go.
//! Figures: the workers' backends during the hold and when they reached 0, completions during
//! the hold, the time from the release to the first completion and to the first second at half
//! the earlier rate. Targets: no worker exits, recovery, 0 lost.

use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::{ConnectOptions, Connection, PgConnection};

use super::{
    Ctx, Report, Stage, cluster::Cluster, fleet::APP_NAME, storm::storm, timeline::Timeline,
};

const WINDOW: Duration = Duration::from_secs(1);

pub async fn run(ctx: &Ctx<'_>) -> anyhow::Result<Report> {
    let cluster = tokio::task::block_in_place(|| Cluster::start(100))
        .context("starting the throw-away Postgres cluster")?;
    let stage = Stage::new("pool", Some(cluster.url())).await?;
    let jobs = ctx.args.jobs;
    super::audit::enqueue(&stage.pool, &stage.q, 0, jobs, ctx.chaos.job_ms).await?;
    let workers = stage.workers(ctx, Vec::new())?;
    let timeline = Timeline::start(stage.pool.clone(), Duration::from_millis(100));
    let settle_limit = Duration::from_secs(ctx.chaos.settle_seconds);
    timeline.wait_for(jobs as u64 / 4, settle_limit).await;

    let hold_at = timeline.now();
    let before = timeline.rate(hold_at.saturating_sub(Duration::from_secs(3)), hold_at);
    let options = (*stage.pool.connect_options())
        .clone()
        .application_name("cowans-bench hog")
        .disable_statement_logging();
    let mut hog: Vec<PgConnection> = Vec::new();
    while let Ok(c) = PgConnection::connect_with(&options).await {
        hog.push(c);
    }
    let full_at = hog.len();
    // The ratchet: terminate the workers' backends, race them for the freed slots with a few
    // connects at once, keep what is won; the hog never lets go, so within a few rounds it
    // holds every slot and the workers' reconnects are refused.
    let (mut terminated, mut fewest, mut most) = (0i64, i64::MAX, 0i64);
    let mut exhausted_after = None;
    let hold = Instant::now();
    while hold.elapsed() < Duration::from_secs(ctx.chaos.pool_hold_seconds) {
        terminated += storm(&stage).await;
        let tries = (0..8).map(|_| PgConnection::connect_with(&options));
        hog.extend(futures::future::join_all(tries).await.into_iter().flatten());
        if let Some(n) = worker_backends(&stage).await {
            fewest = fewest.min(n);
            most = most.max(n);
            if n == 0 && exhausted_after.is_none() {
                exhausted_after = Some(hold.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hog_size = hog.len();
    for c in hog {
        let _ = c.close().await;
    }
    let release_at = timeline.now();

    let (settled, audit) = stage.settle(ctx, jobs as u64, timeline.reader()).await?;
    let during = timeline.count_at(release_at) - timeline.count_at(hold_at);
    let first = timeline.first_progress_after(release_at);
    let back = timeline.back_to(release_at, before * 0.5, WINDOW);
    let fleet = workers.finish(Duration::from_secs(40));
    let mut r = Report::new("pool");
    r.add(format!(
        "jobs={jobs} job_ms={} processes={} concurrency={} max_connections=100 hold_s={} \
         hog_connections_at_full={full_at} hog_connections={hog_size} worker_backends_terminated={terminated} \
         worker_backends_during_hold={}..{most} workers_shut_out_after_ms={} \
         before_jobs_per_s={before:.0} completed_during_hold={during} \
         first_completion_after_release_ms={} half_rate_after_release_ms={}",
        ctx.chaos.job_ms,
        ctx.args.processes,
        ctx.args.concurrency,
        ctx.chaos.pool_hold_seconds,
        if fewest == i64::MAX { 0 } else { fewest },
        super::timeline::ms(exhausted_after),
        super::timeline::ms(first),
        super::timeline::ms(back),
    ));
    r.audit(&audit, settled);
    r.target("recovers", back.is_some());
    r.fleet(&fleet, &ctx.logs.join("pool"));
    stage.drop_database().await;
    drop(cluster);
    Ok(r)
}

/// Backends of the workers now.
async fn worker_backends(stage: &Stage) -> Option<i64> {
    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
        .bind(APP_NAME)
        .fetch_one(&stage.pool)
        .await
        .ok()
}
