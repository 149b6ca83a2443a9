//! `chaos restart`: on a throw-away cluster, `--jobs` queued and drained by `--processes`
//! workers; at a third of the drain the server is stopped (`--stop-mode`, `fast` by default),
//! left down `--down-seconds`, and started again. Figures: the drain rate before the stop, the
//! time from the server accepting connections again to the first completion and to the first
//! second at half the earlier rate (target ≤ 10 s), 0 lost, no worker exits.

use std::time::Duration;

use anyhow::Context;

use super::{Ctx, Report, Stage, cluster::Cluster, timeline::Timeline};

const BACK_WITHIN: Duration = Duration::from_secs(10);
const WINDOW: Duration = Duration::from_secs(1);

pub async fn run(ctx: &Ctx<'_>) -> anyhow::Result<Report> {
    let cluster = tokio::task::block_in_place(|| Cluster::start(100))
        .context("starting the throw-away Postgres cluster")?;
    let stage = Stage::new("restart", Some(cluster.url())).await?;
    let jobs = ctx.args.jobs;
    super::audit::enqueue(&stage.pool, &stage.q, 0, jobs, ctx.chaos.job_ms).await?;
    let workers = stage.workers(ctx, Vec::new())?;
    let timeline = Timeline::start(stage.pool.clone(), Duration::from_millis(100));
    let settle_limit = Duration::from_secs(ctx.chaos.settle_seconds);
    timeline.wait_for(jobs as u64 / 3, settle_limit).await;

    let stop_at = timeline.now();
    let before = timeline.rate(stop_at.saturating_sub(Duration::from_secs(3)), stop_at);
    tokio::task::block_in_place(|| cluster.stop(&ctx.chaos.stop_mode))?;
    let stopped_after = timeline.now() - stop_at;
    tokio::time::sleep(Duration::from_secs(ctx.chaos.down_seconds)).await;
    tokio::task::block_in_place(|| cluster.start_server())?;
    let up_at = timeline.now();

    let (settled, audit) = stage.settle(ctx, jobs as u64, timeline.reader()).await?;
    let first = timeline.first_progress_after(up_at);
    let back = timeline.back_to(up_at, before * 0.5, WINDOW);
    let after = timeline.rate(up_at, timeline.now());
    let after_start = timeline.windows(up_at, up_at + 15 * WINDOW, WINDOW);
    let fleet = workers.finish(Duration::from_secs(40));
    let mut r = Report::new("restart");
    r.add(format!(
        "jobs={jobs} job_ms={} processes={} concurrency={} stop_mode={} stop_took_ms={} down_s={} \
         before_jobs_per_s={before:.0} first_completion_after_start_ms={} \
         half_rate_after_start_ms={} back_target_ms={} after_restart_jobs_per_s={after:.0} \
         windows_1s_after_start=[{}]",
        ctx.chaos.job_ms,
        ctx.args.processes,
        ctx.args.concurrency,
        ctx.chaos.stop_mode,
        stopped_after.as_millis(),
        ctx.chaos.down_seconds,
        super::timeline::ms(first),
        super::timeline::ms(back),
        BACK_WITHIN.as_millis(),
        after_start
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(","),
    ));
    r.audit(&audit, settled);
    r.target(
        "throughput_back_within_10s",
        back.is_some_and(|b| b <= BACK_WITHIN),
    );
    r.fleet(&fleet, &ctx.logs.join("restart"));
    stage.drop_database().await;
    drop(cluster);
    Ok(r)
}
