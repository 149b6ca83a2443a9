//! Listing a queue's jobs in id order (the `Q:jobs` index) and purging its dead letters.

use std::collections::HashMap;

use cowans_core::{
    JobId, JobState,
    queue::{JobRecord, QueueError, QueueResult},
};

use crate::{
    RedisDriver,
    inspect::job_view,
    scripts,
    value::{at, int, items, map_err, text},
};

/// Most jobs one listing call looks at, so a sparse filter over a long queue never blocks the
/// server for long: the listing goes on from the returned cursor in another call.
const SCAN_BUDGET: usize = 5_000;

/// Most jobs one page may hold.
const MAX_PAGE: i64 = 10_000;

pub(crate) async fn list_jobs(
    d: &RedisDriver,
    queue: &str,
    state: Option<JobState>,
    kind: Option<&str>,
    after: Option<JobId>,
    limit: i64,
) -> QueueResult<Vec<JobRecord>> {
    let limit = limit.clamp(0, MAX_PAGE) as usize;
    let base = d.qkey(queue);
    let mut ids: Vec<i64> = Vec::new();
    let mut cursor = after.map(|a| a.0.to_string()).unwrap_or_default();
    while ids.len() < limit {
        let args = [
            cursor.clone(),
            (limit - ids.len()).to_string(),
            state.map(|s| s.as_str()).unwrap_or_default().to_owned(),
            kind.unwrap_or_default().to_owned(),
            SCAN_BUDGET.to_string(),
        ];
        let reply = d.run(&scripts::LIST, &base, &args).await?;
        let a = items(&reply)?;
        let next = text(at(a, 0, "cursor")?, "cursor")?;
        for v in &a[1..] {
            ids.push(int(v, "listed id")?);
        }
        if next.is_empty() {
            break;
        }
        cursor = next;
    }
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for id in &ids {
        pipe.cmd("HGETALL").arg(format!("{base}:job:{id}"));
    }
    let mut conn = d.conn.clone();
    let hashes: Vec<HashMap<String, String>> =
        pipe.query_async(&mut conn).await.map_err(map_err)?;
    ids.into_iter()
        .zip(hashes)
        // A job deleted between the two calls (pruned, completed with deletion) is left out.
        .filter(|(_, h)| !h.is_empty())
        .map(|(id, h)| job_view(JobId(id), &h))
        .collect()
}

pub(crate) async fn purge_dead(
    d: &RedisDriver,
    queue: &str,
    kind: Option<&str>,
    expected: u64,
) -> QueueResult<u64> {
    let args = [kind.unwrap_or_default().to_owned(), expected.to_string()];
    let reply = d.run(&scripts::PURGE, &d.qkey(queue), &args).await?;
    let a = items(&reply)?;
    let done = int(at(a, 0, "purged")?, "purged")? == 1;
    let count = int(at(a, 1, "count")?, "count")?.max(0) as u64;
    if !done {
        return Err(QueueError::Conflict {
            message: format!("{count} dead letters match, not {expected}; nothing was purged"),
            details: serde_json::json!({ "expected": expected, "actual": count }),
        });
    }
    let gone = a[2..]
        .iter()
        .map(|v| int(v, "purged id"))
        .collect::<QueueResult<Vec<i64>>>()?;
    d.forget_queues(&gone).await;
    Ok(count)
}
