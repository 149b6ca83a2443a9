//! Batches' jobs on Redis: a job enqueued with a batch id joins the member set
//! `Q:batch:<id>` of its queue; a member deleted after it finished (completion without
//! retention, pruning, a purge) leaves the set and is counted by final state in
//! `Q:batch:<id>:gone`, so a batch's counts survive its jobs' deletion. Both keys are dropped
//! when the batch is closed (it has finished; the batch itself lives in Postgres).

use std::collections::HashMap;

use cowans_core::{JobId, event::BatchCounts, queue::QueueResult};

use crate::{
    RedisDriver, scripts,
    value::{at, bad, int, items, text},
};

pub(crate) async fn count(
    d: &RedisDriver,
    queue: &str,
    batches: &[i64],
) -> QueueResult<HashMap<i64, BatchCounts>> {
    if batches.is_empty() {
        return Ok(HashMap::new());
    }
    let args: Vec<String> = batches.iter().map(i64::to_string).collect();
    let reply = d.run(&scripts::BATCH_COUNT, &d.qkey(queue), &args).await?;
    let mut out = HashMap::new();
    for one in items(&reply)? {
        let one = items(one)?;
        let batch = int(at(one, 0, "batch id")?, "batch id")?;
        let flat = items(at(one, 1, "batch counts")?)?;
        if flat.len() % 2 != 0 {
            return Err(bad("batch counts come in state, count pairs"));
        }
        let counts: &mut BatchCounts = out.entry(batch).or_default();
        for pair in flat.chunks(2) {
            let n = int(&pair[1], "batch count")?;
            if n > 0 {
                counts.insert(text(&pair[0], "state")?, n);
            }
        }
    }
    Ok(out)
}

pub(crate) async fn jobs(d: &RedisDriver, queue: &str, batch: i64) -> QueueResult<Vec<JobId>> {
    let reply = d
        .run(&scripts::BATCH_JOBS, &d.qkey(queue), &[batch.to_string()])
        .await?;
    let mut ids = items(&reply)?
        .iter()
        .map(|v| int(v, "job id").map(JobId))
        .collect::<QueueResult<Vec<_>>>()?;
    ids.sort_unstable();
    Ok(ids)
}

pub(crate) async fn close(d: &RedisDriver, queue: &str, batches: &[i64]) -> QueueResult<()> {
    if batches.is_empty() {
        return Ok(());
    }
    let args: Vec<String> = batches.iter().map(i64::to_string).collect();
    d.run(&scripts::BATCH_CLOSE, &d.qkey(queue), &args).await?;
    Ok(())
}
