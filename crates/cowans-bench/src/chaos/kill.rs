//! `chaos kill`: `--jobs` queued, then drained by `--processes` workers of which a random one is
//! SIGKILLed every `--kill-every-ms` (and started again at once) until the backlog is gone.
//! For each kill: the jobs the victim held and how long until none of them is still `running`
//! under its lease (the rescue), against the lease TTL plus one rescue pass (`lease_ttl +
//! rescue_interval`, rounded up to the maintenance loop's tick), seen within `POLL`. Re-runs
//! (attempts beyond the first) may only come from jobs held at a kill.

use std::time::Duration;

use uuid::Uuid;

use super::{
    Ctx, Report, Stage, any_available,
    fleet::{self, Supervised},
    held_by, holding, p50_max,
    timeline::Timeline,
    worker_id,
};

/// Rescues are seen by polling this often (the figures' resolution).
const POLL: Duration = Duration::from_millis(250);

struct Kill {
    at: Duration,
    worker: Option<Uuid>,
    held: usize,
    leader: bool,
    rescued_after: Option<Duration>,
}

pub async fn run(ctx: &Ctx<'_>) -> anyhow::Result<Report> {
    let stage = Stage::new("kill", None).await?;
    let jobs = ctx.args.jobs;
    super::audit::enqueue(&stage.pool, &stage.q, 0, jobs, ctx.chaos.job_ms).await?;
    let workers = stage.workers(ctx, Vec::new())?;
    let timeline = Timeline::start(stage.pool.clone(), Duration::from_millis(200));
    let every = Duration::from_millis(ctx.chaos.kill_every_ms);
    let mut kills: Vec<Kill> = Vec::new();
    let mut next_kill = timeline.now() + every;
    let mut killing = true;
    let settle_limit = Duration::from_secs(ctx.chaos.settle_seconds);
    loop {
        tokio::time::sleep(POLL).await;
        let now = timeline.now();
        if killing && any_available(&stage.pool, &stage.q).await == Some(false) {
            killing = false;
        }
        if killing && now >= next_kill {
            kills.extend(kill_one(&stage, &workers, &timeline).await);
            next_kill = now + every;
        }
        let pending: Vec<Uuid> = kills
            .iter()
            .filter(|k| k.rescued_after.is_none())
            .filter_map(|k| k.worker)
            .collect();
        if let Some(still) = holding(&stage.pool, &pending).await {
            for k in kills.iter_mut().filter(|k| k.rescued_after.is_none()) {
                if k.worker.is_none_or(|w| !still.contains(&w)) {
                    k.rescued_after = Some(timeline.now().saturating_sub(k.at));
                }
            }
        }
        let pending = kills.iter().any(|k| k.rescued_after.is_none());
        if !killing && !pending {
            break;
        }
        if !killing
            && kills
                .last()
                .is_some_and(|k| now.saturating_sub(k.at) > settle_limit)
        {
            break;
        }
    }
    let (settled, audit) = stage.settle(ctx, jobs as u64, timeline.reader()).await?;
    let elapsed = timeline.now();
    let fleet = workers.finish(Duration::from_secs(40));

    let target = ctx.engine.lease_ttl + rescue_period(&ctx.engine);
    let rescues: Vec<Duration> = kills
        .iter()
        .filter(|k| k.held > 0)
        .filter_map(|k| k.rescued_after)
        .collect();
    let unrescued = kills.iter().filter(|k| k.rescued_after.is_none()).count();
    let over = rescues.iter().filter(|r| **r > target + POLL).count();
    let held: usize = kills.iter().map(|k| k.held).sum();
    let (p50, max) = p50_max(rescues);
    let mut r = Report::new("kill");
    r.add(format!(
        "jobs={jobs} job_ms={} processes={} concurrency={} kill_every_ms={} kills={} leader_kills={} \
         held_at_kills={held} rescue_p50_ms={p50} rescue_max_ms={max} rescue_target_ms={} \
         rescues_over_target={over} unrescued={unrescued} lease_ttl_ms={} rescue_every_ms={} \
         jobs_per_s={:.0}",
        ctx.chaos.job_ms,
        ctx.args.processes,
        ctx.args.concurrency,
        ctx.chaos.kill_every_ms,
        kills.len(),
        kills.iter().filter(|k| k.leader).count(),
        target.as_millis(),
        ctx.engine.lease_ttl.as_millis(),
        rescue_period(&ctx.engine).as_millis(),
        jobs as f64 / elapsed.as_secs_f64(),
    ));
    r.audit(&audit, settled);
    r.target("rescue_within_target", over == 0 && unrescued == 0);
    r.target(
        "reruns_only_held_at_kills",
        audit.reattempted <= held as i64,
    );
    r.fleet(&fleet, &ctx.logs.join("kill"));
    stage.drop_database().await;
    Ok(r)
}

/// How often the leader's rescue pass runs: `rescue_interval`, looked at on the maintenance
/// loop's tick (`cowans_queue::maintenance`: the least of a third of `leader_ttl`,
/// `rescue_interval` and `maintenance_interval`), so rounded up to whole ticks.
fn rescue_period(e: &cowans_queue::EngineConfig) -> Duration {
    let tick = (e.leader_ttl / 3)
        .min(e.rescue_interval)
        .min(e.maintenance_interval);
    tick * e
        .rescue_interval
        .as_nanos()
        .div_ceil(tick.as_nanos().max(1)) as u32
}

/// SIGKILLs a random worker (the supervisor starts another); what it held at its death.
async fn kill_one(stage: &Stage, workers: &Supervised, timeline: &Timeline) -> Option<Kill> {
    let n = workers.with(|f| f.len());
    let slot = (rand::random::<u64>() % n as u64) as usize;
    // A slot between processes is skipped (its new process is starting).
    let pid = workers.with(|f| f.pid(slot))?;
    let worker = worker_id(&stage.pool, pid).await;
    let leader = match worker {
        Some(w) => sqlx::query_scalar::<_, bool>(
            "SELECT holder = $1 FROM cowans_leaders WHERE role = 'maintenance'",
        )
        .bind(w)
        .fetch_optional(&stage.pool)
        .await
        .ok()
        .flatten()
        .unwrap_or(false),
        None => false,
    };
    let at = workers.with(|f| {
        let p = f.take(slot)?;
        fleet::kill9(p);
        Some(timeline.now())
    })?;
    // Nothing can change the victim's rows now but the rescuer.
    let held = match worker {
        Some(w) => held_by(&stage.pool, w).await.map_or(0, |h| h.len()),
        None => 0,
    };
    Some(Kill {
        at,
        worker,
        held,
        leader,
        rescued_after: None,
    })
}
