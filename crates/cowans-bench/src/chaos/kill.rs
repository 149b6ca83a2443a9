//! `chaos kill`: `--jobs` queued, then drained by `--processes` workers of which a random one is
//! SIGKILLed every `--kill-every-ms` (and started again at once) until the backlog is gone.
//! For each kill: the jobs the victim held and how long until none of them is still `running`
//! under its lease (the rescue), against the lease TTL plus one rescue pass (`lease_ttl +
//! rescue_interval`, rounded up to the maintenance loop's tick), seen within `POLL`; rescues
//! that had to wait for a killed leader's successor (up to `leader_ttl`) are also counted
//! apart. Re-runs (attempts beyond the first) may only be attempts the rescuer took back from
//! killed workers.

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
            eprintln!(
                "chaos kill: {:.1}s backlog claimed ({} done), no more kills",
                now.as_secs_f64(),
                timeline.latest()
            );
        }
        if killing && now >= next_kill {
            if let Some(k) = kill_one(&stage, &workers, &timeline).await {
                eprintln!(
                    "chaos kill: {:.1}s killed a worker{} holding {} jobs",
                    k.at.as_secs_f64(),
                    if k.leader { " (the leader)" } else { "" },
                    k.held
                );
                kills.push(k);
            }
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
                    let after = timeline.now().saturating_sub(k.at);
                    k.rescued_after = Some(after);
                    if k.held > 0 {
                        eprintln!(
                            "chaos kill: {:.1}s the {} jobs of the worker killed at {:.1}s rescued after {:.1}s",
                            timeline.now().as_secs_f64(),
                            k.held,
                            k.at.as_secs_f64(),
                            after.as_secs_f64()
                        );
                    }
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

    let period = rescue_period(&ctx.engine);
    let target = ctx.engine.lease_ttl + period;
    // Whether the leader itself was down (killed, its successor not yet in office: up to
    // leader_ttl) at some point between a victim's leases expiring and their rescue.
    let leader_down = |k: &Kill, r: Duration| {
        let expiry = k.at + ctx.engine.lease_ttl;
        kills.iter().any(|l| {
            l.leader && l.at <= k.at + r && l.at + ctx.engine.leader_ttl + period >= expiry
        })
    };
    let rescued: Vec<(&Kill, Duration)> = kills
        .iter()
        .filter(|k| k.held > 0)
        .filter_map(|k| Some((k, k.rescued_after?)))
        .collect();
    let rescues: Vec<Duration> = rescued.iter().map(|(_, r)| *r).collect();
    let leader_alive: Vec<Duration> = rescued
        .iter()
        .filter(|(k, r)| !leader_down(k, *r))
        .map(|(_, r)| *r)
        .collect();
    let unrescued = kills.iter().filter(|k| k.rescued_after.is_none()).count();
    let late = |r: &Duration| *r > target + POLL;
    let over = rescues.iter().filter(|r| late(r)).count();
    let over_leader_alive = leader_alive.iter().filter(|r| late(r)).count();
    let (_, max_leader_alive) = p50_max(leader_alive);
    let lost_attempts = attempts_lost_at_kills(&stage, &kills).await;
    let held: usize = kills.iter().map(|k| k.held).sum();
    let (p50, max) = p50_max(rescues);
    let mut r = Report::new("kill");
    r.add(format!(
        "jobs={jobs} job_ms={} processes={} concurrency={} kill_every_ms={} kills={} leader_kills={} \
         held_at_kills={held} rescue_p50_ms={p50} rescue_max_ms={max} rescue_target_ms={} \
         rescues_over_target={over} rescue_max_ms_leader_alive={max_leader_alive} \
         rescues_over_target_leader_alive={over_leader_alive} unrescued={unrescued} \
         attempts_lost_at_kills={lost_attempts} lease_ttl_ms={} leader_ttl_ms={} rescue_every_ms={} \
         jobs_per_s={:.0}",
        ctx.chaos.job_ms,
        ctx.args.processes,
        ctx.args.concurrency,
        ctx.chaos.kill_every_ms,
        kills.len(),
        kills.iter().filter(|k| k.leader).count(),
        target.as_millis(),
        ctx.engine.lease_ttl.as_millis(),
        ctx.engine.leader_ttl.as_millis(),
        period.as_millis(),
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

/// Attempts the rescuer took back from the killed workers (each leaves an error naming the
/// worker whose lease expired).
async fn attempts_lost_at_kills(stage: &Stage, kills: &[Kill]) -> i64 {
    let victims: Vec<String> = kills
        .iter()
        .filter_map(|k| k.worker.map(|w| w.to_string()))
        .collect();
    sqlx::query_scalar(
        "SELECT count(*) FROM cowans_jobs j, jsonb_array_elements(j.errors) e \
         WHERE j.queue = $1 AND j.errors <> '[]' AND e->>'worker' = ANY($2)",
    )
    .bind(stage.q.as_str())
    .bind(victims)
    .fetch_one(&stage.pool)
    .await
    .unwrap_or(-1)
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
            "SELECT holder = $1 AND expires_at > now() FROM cowans_leaders WHERE role = 'maintenance'",
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
    // Nothing can change the victim's rows now but the rescuer, once a claim it had sent
    // just before dying has committed (the server finishes a statement whose client is gone).
    tokio::time::sleep(Duration::from_millis(200)).await;
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
