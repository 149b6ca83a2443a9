//! `chaos terminate`: `--jobs` queued, then drained by `--processes` workers while every
//! `--storm-every-ms`, until the backlog is gone, the server terminates every backend of the
//! workers (their `application_name`, this database) with `pg_terminate_backend`: claims,
//! acks, heartbeats, LISTEN and the handlers' transactions all lose their connection at once.
//! For each storm: how long until the next completion. Targets: no worker exits, 0 lost.

use std::time::Duration;

use super::{Ctx, Report, Stage, any_available, fleet::APP_NAME, p50_max, timeline::Timeline};

const STORM: &str = r#"
SELECT count(pg_terminate_backend(pid))
FROM pg_stat_activity
WHERE datname = current_database() AND application_name = $1 AND pid <> pg_backend_pid()
"#;

pub async fn run(ctx: &Ctx<'_>) -> anyhow::Result<Report> {
    let stage = Stage::new("terminate", None).await?;
    let jobs = ctx.args.jobs;
    super::audit::enqueue(&stage.pool, &stage.q, 0, jobs, ctx.chaos.job_ms).await?;
    let workers = stage.workers(ctx, Vec::new())?;
    let timeline = Timeline::start(stage.pool.clone(), Duration::from_millis(200));
    let every = Duration::from_millis(ctx.chaos.storm_every_ms);
    let mut storms: Vec<Duration> = Vec::new();
    let mut terminated = 0i64;
    loop {
        tokio::time::sleep(every).await;
        if any_available(&stage.pool, &stage.q).await == Some(false) {
            break;
        }
        storms.push(timeline.now());
        terminated += storm(&stage).await;
    }
    let (settled, audit) = stage.settle(ctx, jobs as u64, timeline.reader()).await?;
    let elapsed = timeline.now();
    let fleet = workers.finish(Duration::from_secs(40));

    let recoveries: Vec<Option<Duration>> = storms
        .iter()
        .map(|t| timeline.first_progress_after(*t))
        .collect();
    let never = recoveries.iter().filter(|r| r.is_none()).count();
    let (p50, max) = p50_max(recoveries.into_iter().flatten().collect());
    let mut r = Report::new("terminate");
    r.add(format!(
        "jobs={jobs} job_ms={} processes={} concurrency={} storm_every_ms={} storms={} \
         backends_terminated={terminated} next_completion_p50_ms={p50} next_completion_max_ms={max} \
         storms_without_recovery={never} jobs_per_s={:.0}",
        ctx.chaos.job_ms,
        ctx.args.processes,
        ctx.args.concurrency,
        ctx.chaos.storm_every_ms,
        storms.len(),
        jobs as f64 / elapsed.as_secs_f64(),
    ));
    r.audit(&audit, settled);
    r.target("recovers_after_every_storm", never == 0);
    r.fleet(&fleet, &ctx.logs.join("terminate"));
    stage.drop_database().await;
    Ok(r)
}

/// Terminates every backend of the workers; how many.
pub async fn storm(stage: &Stage) -> i64 {
    sqlx::query_scalar(STORM)
        .bind(APP_NAME)
        .fetch_one(&stage.pool)
        .await
        .unwrap_or(0)
}
