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
    let mut jobs: Vec<JobRecord> = Vec::new();
    let mut cursor = after.map(|a| a.0.to_string()).unwrap_or_default();
    // Until the page is full or the queue has no more jobs: a job deleted between a listing
    // call and the read of its hash is skipped, never allowed to shorten the page.
    while jobs.len() < limit {
        let args = [
            cursor.clone(),
            (limit - jobs.len()).to_string(),
            state.map(|s| s.as_str()).unwrap_or_default().to_owned(),
            kind.unwrap_or_default().to_owned(),
            SCAN_BUDGET.to_string(),
        ];
        let reply = d.run(&scripts::LIST, &base, &args).await?;
        let a = items(&reply)?;
        let next = text(at(a, 0, "cursor")?, "cursor")?;
        let ids = a[1..]
            .iter()
            .map(|v| int(v, "listed id"))
            .collect::<QueueResult<Vec<i64>>>()?;
        if !ids.is_empty() {
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.cmd("HGETALL").arg(format!("{base}:job:{id}"));
            }
            let mut conn = d.conn.clone();
            let hashes: Vec<HashMap<String, String>> =
                pipe.query_async(&mut conn).await.map_err(map_err)?;
            for (id, h) in ids.into_iter().zip(hashes) {
                if !h.is_empty() {
                    jobs.push(job_view(JobId(id), &h)?);
                }
            }
        }
        if next.is_empty() {
            break;
        }
        cursor = next;
    }
    Ok(jobs)
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
    Ok(count)
}
