//! `chaos idle-tx`: the `idle-tx` workload (`crate::idle_tx`: a queue kept topped up, a
//! baseline, a repeatable-read snapshot held `--hold-seconds`, a minute after) with worker
//! processes instead of an in-process engine and `demo.effect` jobs counted from the database,
//! then every job topped up is drained and audited.

use std::time::Duration;

use super::{Ctx, Report, Stage, audit, timeline::Timeline};
use crate::idle_tx::{Filler, hold_phases};

pub async fn run(ctx: &Ctx<'_>) -> anyhow::Result<Report> {
    let stage = Stage::new("idle-tx", None).await?;
    let workers = stage.workers(ctx, Vec::new())?;
    let timeline = Timeline::start(stage.pool.clone(), Duration::from_secs(1));
    let filler = Filler::start(
        &stage.pool,
        &stage.q,
        |q, i| audit::job(q, i, 0),
        timeline.reader(),
    )
    .await?;
    let held = hold_phases(
        &stage.pool,
        Duration::from_secs(ctx.args.hold_seconds),
        timeline.reader(),
    )
    .await?;
    let enqueued = filler.stop().await as u64;
    let (settled, audit) = stage.settle(ctx, enqueued, timeline.reader()).await?;
    let fleet = workers.finish(Duration::from_secs(40));
    let mut r = Report::new("idle-tx");
    r.add(format!(
        "processes={} concurrency={} {}",
        ctx.args.processes,
        ctx.args.concurrency,
        held.figures()
    ));
    r.audit(&audit, settled);
    r.fleet(&fleet, &ctx.logs.join("idle-tx"));
    stage.drop_database().await;
    Ok(r)
}
