//! Where a job lives: the claim cache, the global id → queue map and the known queues.

use std::collections::{BTreeMap, HashMap};

use cowans_core::{QueueName, queue::QueueResult};

use crate::{RedisDriver, value::map_err};

/// Ids whose queue is remembered from claims at most; past it the cache starts over. Every ack
/// (complete, settle, release, defer) forgets its ids whatever its outcome, so the cache holds
/// about what this process has in flight; the bound is a safety net.
const CACHE_LIMIT: usize = 100_000;

impl RedisDriver {
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

    pub(crate) fn remember(&self, queue: &str, ids: impl Iterator<Item = i64>) {
        if let Ok(mut cache) = self.queues.lock() {
            if cache.len() > CACHE_LIMIT {
                cache.clear();
            }
            for id in ids {
                cache.insert(id, queue.to_owned());
            }
        }
    }

    pub(crate) fn forget(&self, ids: impl Iterator<Item = i64>) {
        if let Ok(mut cache) = self.queues.lock() {
            for id in ids {
                cache.remove(&id);
            }
        }
    }

    /// Drops the id -> queue entries of jobs that no longer exist (best effort: a stale entry
    /// only costs a lookup that finds nothing).
    pub(crate) async fn forget_queues(&self, ids: &[i64]) {
        if ids.is_empty() {
            return;
        }
        let mut conn = self.conn.clone();
        let cleaned: Result<i64, _> = redis::cmd("HDEL")
            .arg(format!("{}:jobq", self.global()))
            .arg(ids)
            .query_async(&mut conn)
            .await;
        if let Err(e) = cleaned {
            tracing::debug!(error = %e, "cannot forget the queue of gone jobs");
        }
    }

    /// The queue of each id: from the claim cache, else the global id → queue hash. Ids of no
    /// known job are left out.
    pub(crate) async fn locate(&self, ids: &[i64]) -> QueueResult<HashMap<i64, String>> {
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        if let Ok(cache) = self.queues.lock() {
            for id in ids {
                match cache.get(id) {
                    Some(q) => {
                        found.insert(*id, q.clone());
                    }
                    None => missing.push(*id),
                }
            }
        } else {
            missing.extend_from_slice(ids);
        }
        if !missing.is_empty() {
            let mut conn = self.conn.clone();
            let queues: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(format!("{}:jobq", self.global()))
                .arg(&missing)
                .query_async(&mut conn)
                .await
                .map_err(map_err)?;
            for (id, q) in missing.into_iter().zip(queues) {
                if let Some(q) = q {
                    found.insert(id, q);
                }
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
