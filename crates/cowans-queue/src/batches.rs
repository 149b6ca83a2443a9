//! Batch progress across backends (leader only). A batch lives in Postgres; its jobs may be
//! on Postgres and Redis queues. Each pass counts every open batch's jobs where they are
//! (Postgres by the batch index, Redis in each of the batch's queues there), stores and
//! announces changed counts, and finishes a batch whose jobs are all final exactly once, with
//! its callback job. A batch that could not be counted everywhere is left for the next pass:
//! it is never finished on partial counts.

use std::collections::{BTreeMap, HashSet};

use cowans_core::{
    JobState,
    queue::{Backend, Driver, NewJob, Unique},
};
use cowans_store::{BatchRefresh, OpenBatch, Result};
use sqlx::PgPool;

/// The callback job's unique key on a Redis queue: stored before the batch is marked finished,
/// so a pass that dies between the two (or a racing leader) finds it instead of adding another.
fn callback_key(batch: i64) -> String {
    format!("batch:{batch}:callback")
}

/// One pass over at most `limit` open batches, then the release of finished batches' keys on
/// Redis.
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
        let callback_job = if done {
            callback_on_redis(driver, b, &c).await?
        } else {
            None
        };
        if cowans_store::settle_batch(pool, b, &c, done, callback_job).await? {
            if done {
                out.finished.push(b.id);
            } else {
                out.progressed.push(b.id);
            }
        }
    }
    release(pool, driver, limit).await?;
    Ok(out)
}

/// Stores a finished batch's callback job when its queue is on Redis (once: by its unique key).
async fn callback_on_redis(
    driver: &dyn Driver,
    b: &OpenBatch,
    counts: &cowans_store::Counts,
) -> Result<Option<cowans_core::JobId>> {
    let Some(cb) = &b.callback else {
        return Ok(None);
    };
    if driver.backend_of(cb.queue.as_str()) != Backend::Redis {
        return Ok(None);
    }
    let job = NewJob::new(
        cb.queue.clone(),
        cb.kind.clone(),
        cowans_store::callback_args(b.id, counts, cb),
    )
    .unique(Unique::key(callback_key(b.id)).also_in(&JobState::ALL));
    let done = driver.enqueue(&[job]).await?;
    Ok(done.first().map(|e| e.id))
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
