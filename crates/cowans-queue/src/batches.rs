//! Batch progress across backends (leader only). A batch lives in Postgres; its jobs may be
//! on Postgres and Redis queues. Each pass counts every open batch's jobs where they are
//! (Postgres by the batch index, Redis in each of the batch's queues there), stores and
//! announces changed counts, and finishes a batch whose jobs are all final exactly once. A
//! batch that could not be counted everywhere is left for the next pass: it is never finished
//! on partial counts.
//!
//! A callback on a Postgres queue is enqueued in the transaction that finishes the batch. One
//! on a Redis queue cannot be: the batch is finished first (so the callback never runs for a
//! batch that is not), then the callback stored with the unique key `batch:<id>:callback` and
//! recorded; a pass that dies in between leaves it pending, and the next pass stores it again
//! (the unique key makes that the same job while it is retained).

use std::collections::{BTreeMap, HashSet};

use cowans_core::{
    JobId, JobState,
    queue::{Backend, Driver, NewJob, Unique},
};
use cowans_store::{BatchCallback, BatchRefresh, Counts, Result};
use sqlx::PgPool;

/// The unique key of a batch's callback job on a Redis queue (a reserved key, like cron's
/// `cron:<name>:<tick>`).
fn callback_key(batch: i64) -> String {
    format!("batch:{batch}:callback")
}

/// One pass over at most `limit` open batches, then the pending callbacks and the release of
/// finished batches' keys on Redis. A Redis failure skips what needs Redis (logged) and never
/// stops the rest of the pass.
pub async fn refresh_batches(
    pool: &PgPool,
    driver: &dyn Driver,
    limit: i64,
) -> Result<BatchRefresh> {
    let open = cowans_store::open_batches(pool, limit).await?;
    let ids: Vec<i64> = open.iter().map(|b| b.id).collect();
    let mut counts = cowans_store::count_batch_jobs(pool, &ids, None).await?;
    let mut on_redis: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for b in &open {
        for q in &b.redis_queues {
            on_redis.entry(q.as_str()).or_default().push(b.id);
        }
    }
    let mut uncounted = HashSet::new();
    for (queue, batches) in on_redis {
        match driver.count_batches(queue, &batches).await {
            Ok(more) => {
                for (id, c) in more {
                    cowans_store::add_counts(counts.entry(id).or_default(), &c);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, queue, ?batches, "could not count batches' jobs on Redis");
                uncounted.extend(batches);
            }
        }
    }
    let mut out = BatchRefresh::default();
    for b in &open {
        if uncounted.contains(&b.id) {
            continue;
        }
        let c = counts.remove(&b.id).unwrap_or_default();
        let done = cowans_store::final_jobs(&c) >= b.total;
        if !done && c == b.counted {
            continue;
        }
        let here = b
            .callback
            .as_ref()
            .is_none_or(|cb| driver.backend_of(cb.queue.as_str()) == Backend::Postgres);
        if cowans_store::settle_batch(pool, b, &c, done, here).await? {
            if done {
                out.finished.push(b.id);
            } else {
                out.progressed.push(b.id);
            }
        }
    }
    for (id, cb, counts) in cowans_store::pending_callbacks(pool, limit).await? {
        if let Err(e) = store_callback(pool, driver, id, &cb, &counts).await {
            tracing::warn!(error = %e, batch = id, queue = %cb.queue, "could not store a finished batch's callback job; trying again next pass");
        }
    }
    release(pool, driver, limit).await?;
    Ok(out)
}

/// Stores a finished batch's pending callback job (wherever its queue is now) and records it.
async fn store_callback(
    pool: &PgPool,
    driver: &dyn Driver,
    id: i64,
    cb: &BatchCallback,
    counts: &Counts,
) -> Result<()> {
    let job = NewJob::new(
        cb.queue.clone(),
        cb.kind.clone(),
        cowans_store::callback_args(id, counts, cb),
    )
    .unique(Unique::key(callback_key(id)).also_in(&JobState::ALL));
    let stored: Option<JobId> = driver.enqueue(&[job]).await?.first().map(|e| e.id);
    if let Some(job) = stored {
        let mut conn = pool.acquire().await?;
        cowans_store::set_callback_job(&mut conn, id, job).await?;
    }
    Ok(())
}

/// Drops the Redis keys that counted finished batches' jobs (their jobs may then be pruned
/// like any other); a batch whose keys could not all be dropped is tried again next pass.
async fn release(pool: &PgPool, driver: &dyn Driver, limit: i64) -> Result<()> {
    for (id, queues) in cowans_store::finished_on_redis(pool, limit).await? {
        let mut all = true;
        for q in &queues {
            if let Err(e) = driver.close_batches(q, &[id]).await {
                tracing::warn!(error = %e, batch = id, queue = %q, "could not release a finished batch's keys on Redis");
                all = false;
            }
        }
        if all {
            cowans_store::released_on_redis(pool, id).await?;
        }
    }
    Ok(())
}
