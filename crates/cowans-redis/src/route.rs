//! Where a job lives. Ids come in blocks of [`BLOCK`] taken for one queue (`{<prefix>}:blocks`,
//! block → queue, written once when the block is taken), so an id names its queue through its
//! block: a lookup per block, cached here for good (a block never changes queue). A process
//! hands out the ids of the blocks it holds, so a single enqueue costs one script, not two.

use std::collections::{BTreeMap, HashMap};

use cowans_core::{
    QueueName,
    queue::{QueueResult, REDIS_FIRST_ID},
};

use crate::{
    RedisDriver, scripts,
    value::{int, map_err},
};

/// Ids per block.
pub(crate) const BLOCK: i64 = 1024;

/// Blocks whose queue is remembered at most; past it the cache starts over.
const CACHE_LIMIT: usize = 1_000_000;

/// The block → queue cache and the ids this process holds, per queue.
#[derive(Default)]
pub(crate) struct Routes {
    blocks: HashMap<i64, String>,
    /// Per queue, the next id to hand out and the end of its block run.
    free: HashMap<String, (i64, i64)>,
}

fn block_of(id: i64) -> Option<i64> {
    (id >= REDIS_FIRST_ID).then(|| (id - REDIS_FIRST_ID) / BLOCK)
}

impl RedisDriver {
    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) async fn known_queues(&self) -> QueueResult<Vec<String>> {
        let mut conn = self.conn.clone();
        let mut queues: Vec<String> = redis::cmd("SMEMBERS")
            .arg(format!("{}:queues", self.global()))
            .query_async(&mut conn)
            .await
            .map_err(map_err)?;
        queues.sort();
        Ok(queues)
    }

    /// Adds `queue` to the known queues (those maintenance passes visit).
    pub(crate) async fn remember_queue(&self, queue: &QueueName) -> QueueResult<()> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("SADD")
            .arg(format!("{}:queues", self.global()))
            .arg(queue.as_str())
            .query_async(&mut conn)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// `n` fresh ids for jobs of `queue`, in increasing order: from the blocks this process
    /// holds, taking new blocks (one script) when they run out.
    pub(crate) async fn take_ids(&self, queue: &str, n: usize) -> QueueResult<Vec<i64>> {
        let mut ids = Vec::with_capacity(n);
        {
            let mut r = self.routes();
            if let Some((next, end)) = r.free.get_mut(queue) {
                while ids.len() < n && *next < *end {
                    ids.push(*next);
                    *next += 1;
                }
            }
        }
        let need = (n - ids.len()) as i64;
        if need == 0 {
            return Ok(ids);
        }
        let blocks = (need + BLOCK - 1) / BLOCK;
        let reply = self
            .run(
                &scripts::BLOCKS,
                &self.global(),
                &[queue.to_owned(), blocks.to_string()],
            )
            .await?;
        let first_block = int(&reply, "first block")?;
        let start = REDIS_FIRST_ID + first_block * BLOCK;
        let end = start + blocks * BLOCK;
        ids.extend(start..start + need);
        let mut r = self.routes();
        if r.blocks.len() > CACHE_LIMIT {
            r.blocks.clear();
        }
        for b in first_block..first_block + blocks {
            r.blocks.insert(b, queue.to_owned());
        }
        r.free.insert(queue.to_owned(), (start + need, end));
        Ok(ids)
    }

    /// Forgets the ids this process holds (their blocks stay taken: ids are plentiful).
    pub(crate) fn forget_routes(&self) {
        *self.routes() = Routes::default();
    }

    /// The queue of each id, from its block. Ids of no known block are left out.
    pub(crate) async fn locate(&self, ids: &[i64]) -> QueueResult<HashMap<i64, String>> {
        let mut found = HashMap::new();
        let mut missing: Vec<i64> = Vec::new();
        {
            let r = self.routes();
            for &id in ids {
                let Some(b) = block_of(id) else { continue };
                match r.blocks.get(&b) {
                    Some(q) => {
                        found.insert(id, q.clone());
                    }
                    None => missing.push(b),
                }
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        missing.sort_unstable();
        missing.dedup();
        let mut conn = self.conn.clone();
        let queues: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(format!("{}:blocks", self.global()))
            .arg(&missing)
            .query_async(&mut conn)
            .await
            .map_err(map_err)?;
        let mut r = self.routes();
        if r.blocks.len() > CACHE_LIMIT {
            r.blocks.clear();
        }
        for (b, q) in missing.into_iter().zip(queues) {
            if let Some(q) = q {
                r.blocks.insert(b, q);
            }
        }
        for &id in ids {
            if let Some(q) = block_of(id).and_then(|b| r.blocks.get(&b)) {
                found.insert(id, q.clone());
            }
        }
        Ok(found)
    }

    /// `items` grouped by their job's queue (jobs of no known queue dropped).
    pub(crate) async fn by_queue<T>(
        &self,
        items: impl IntoIterator<Item = (i64, T)>,
    ) -> QueueResult<BTreeMap<String, Vec<T>>> {
        let items: Vec<(i64, T)> = items.into_iter().collect();
        let ids: Vec<i64> = items.iter().map(|(id, _)| *id).collect();
        let located = self.locate(&ids).await?;
        let mut groups: BTreeMap<String, Vec<T>> = BTreeMap::new();
        for (id, item) in items {
            if let Some(q) = located.get(&id) {
                groups.entry(q.clone()).or_default().push(item);
            }
        }
        Ok(groups)
    }
}
