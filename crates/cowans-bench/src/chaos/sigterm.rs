//! `chaos sigterm`: a rolling restart with long jobs in flight. Workers run with a drain
//! deadline of `--shutdown-timeout-ms` (`engine.shutdown_timeout`); `2 × processes ×
//! concurrency` jobs each sleep three deadlines. Once a worker holds running jobs it gets
//! SIGTERM (the supervisor starts its replacement at once), then the next one. Figures per
//! SIGTERM: how long the exit took against the deadline (`shutdown_timeout` + the engine's 5 s
//! finishing grace), its exit status and last line, the jobs it held, and how many of those
//! finished before it exited or ran again on another worker. Targets: every exit within the
//! deadline with status 0, 0 lost, 0 duplicate effects.

use std::time::{Duration, Instant};

use uuid::Uuid;

use super::{Ctx, Report, Stage, fleet, held_by, p50_max, timeline::Timeline, worker_id};

/// `FINISH_GRACE` of `Engine::shutdown`: what the engine allows itself after the drain.
const FINISH_GRACE: Duration = Duration::from_secs(5);

struct Term {
    held: Vec<i64>,
    worker: Uuid,
    stopped: fleet::Stopped,
}

pub async fn run(ctx: &Ctx<'_>) -> anyhow::Result<Report> {
    let stage = Stage::new("sigterm", None).await?;
    let deadline = Duration::from_millis(ctx.chaos.shutdown_timeout_ms);
    let jobs = 2 * ctx.args.processes * ctx.args.concurrency;
    let sleep_ms = 3 * ctx.chaos.shutdown_timeout_ms;
    super::audit::enqueue(&stage.pool, &stage.q, 0, jobs, sleep_ms).await?;
    let workers = stage.workers(
        ctx,
        vec![(
            "COWANS__ENGINE__SHUTDOWN_TIMEOUT",
            ctx.chaos.shutdown_timeout_ms.to_string(),
        )],
    )?;
    let timeline = Timeline::start(stage.pool.clone(), Duration::from_millis(200));
    let mut terms = Vec::new();
    for slot in 0..workers.with(|f| f.len()) {
        if let Some(t) = terminate_busy(&stage, &workers, slot, deadline).await {
            terms.push(t);
        }
    }
    let (settled, audit) = stage.settle(ctx, jobs as u64, timeline.reader()).await?;
    let fleet = workers.finish(Duration::from_secs(40));

    let limit = deadline + FINISH_GRACE;
    let exits: Vec<Duration> = terms.iter().filter_map(|t| t.stopped.after).collect();
    let late = terms.len() - exits.iter().filter(|e| **e <= limit).count();
    let failed = terms
        .iter()
        .filter(|t| t.stopped.status != "exit status: 0")
        .count();
    let (mut finished_before_exit, mut ran_elsewhere) = (0, 0);
    for t in &terms {
        let (mine, other) = finished_by(&stage, &t.held, t.worker).await;
        finished_before_exit += mine;
        ran_elsewhere += other;
    }
    let held: usize = terms.iter().map(|t| t.held.len()).sum();
    let (p50, max) = p50_max(exits);
    let mut r = Report::new("sigterm");
    r.add(format!(
        "jobs={jobs} job_ms={sleep_ms} processes={} concurrency={} shutdown_timeout_ms={} \
         sigterms={} exit_p50_ms={p50} exit_max_ms={max} exit_deadline_ms={} exits_late={late} \
         exits_not_zero={failed} held_at_sigterm={held} finished_before_exit={finished_before_exit} \
         ran_again_elsewhere={ran_elsewhere} last_lines=[{}]",
        ctx.args.processes,
        ctx.args.concurrency,
        deadline.as_millis(),
        terms.len(),
        limit.as_millis(),
        terms
            .iter()
            .map(|t| format!("{:?}", t.stopped.last_line))
            .collect::<Vec<_>>()
            .join(","),
    ));
    r.audit(&audit, settled);
    r.target("exit_within_deadline", late == 0);
    r.target("exit_status_zero", failed == 0);
    r.fleet(&fleet, &ctx.logs.join("sigterm"));
    stage.drop_database().await;
    Ok(r)
}

/// Waits (at most 60 s) until slot `slot`'s worker holds running jobs, then SIGTERMs it.
async fn terminate_busy(
    stage: &Stage,
    workers: &fleet::Supervised,
    slot: usize,
    deadline: Duration,
) -> Option<Term> {
    let waiting = Instant::now();
    while waiting.elapsed() < Duration::from_secs(60) {
        if let Some(pid) = workers.with(|f| f.pid(slot))
            && let Some(worker) = worker_id(&stage.pool, pid).await
            && let Some(held) = held_by(&stage.pool, worker).await
            && !held.is_empty()
        {
            let p = workers.with(|f| f.take(slot))?;
            let stopped = tokio::task::block_in_place(|| {
                fleet::terminate(p, deadline + FINISH_GRACE + Duration::from_secs(30))
            });
            return Some(Term {
                held,
                worker,
                stopped,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

/// Of `ids`, how many `worker` completed and how many another worker completed.
async fn finished_by(stage: &Stage, ids: &[i64], worker: Uuid) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE worker_id = $2), count(*) FILTER (WHERE worker_id <> $2) \
         FROM cowans_jobs WHERE id = ANY($1) AND state = 'completed'",
    )
    .bind(ids)
    .bind(worker)
    .fetch_one(&stage.pool)
    .await
    .unwrap_or((0, 0))
}
