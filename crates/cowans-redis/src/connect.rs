//! Connecting (one server or a cluster, with the eviction-policy check on every primary) and
//! deleting a prefix's keys.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use cowans_core::queue::{QueueError, QueueResult};
use redis::{
    Value,
    aio::{ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClientBuilder,
};

use crate::{
    RedisDriver,
    conn::{Conn, Node},
    value::{bad, items, map_err, text},
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

fn check_prefix(prefix: &str) -> QueueResult<()> {
    if prefix.is_empty() || prefix.contains(['{', '}']) {
        return Err(QueueError::invalid(
            "redis.prefix",
            "must be non-empty and contain no braces (they delimit cluster hash tags)",
        ));
    }
    Ok(())
}

impl RedisDriver {
    /// Connects to `url` (`redis://host:port/db`); `prefix` namespaces every key and the wake-up
    /// channel. Refuses a server whose `maxmemory-policy` evicts keys; a server where `CONFIG`
    /// is disabled is accepted with a warning.
    pub async fn connect(url: &str, prefix: &str) -> QueueResult<RedisDriver> {
        check_prefix(prefix)?;
        let client = redis::Client::open(url)
            .map_err(|e| QueueError::invalid("redis.url", e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(map_err)?;
        RedisDriver::with(Conn::Single(conn), vec![client], prefix).await
    }

    /// Connects to a Redis Cluster through any of its `nodes` (`redis://host:port` each; the
    /// client learns the rest of the cluster from them). Every script's keys share one hash
    /// tag, so each call goes to the primary of its queue's slot; queues spread over the slots.
    /// Refuses the cluster when any primary's `maxmemory-policy` evicts keys.
    pub async fn connect_cluster(nodes: &[&str], prefix: &str) -> QueueResult<RedisDriver> {
        check_prefix(prefix)?;
        if nodes.is_empty() {
            return Err(QueueError::invalid("redis.nodes", "name at least one node"));
        }
        let seeds = nodes
            .iter()
            .map(|n| redis::Client::open(*n))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| QueueError::invalid("redis.nodes", e.to_string()))?;
        let client = ClusterClientBuilder::new(nodes.to_vec())
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT)
            .build()
            .map_err(|e| QueueError::invalid("redis.nodes", e.to_string()))?;
        let conn = client.get_async_connection().await.map_err(map_err)?;
        RedisDriver::with(Conn::Cluster(conn), seeds, prefix).await
    }

    async fn with(
        conn: Conn,
        subscribers: Vec<redis::Client>,
        prefix: &str,
    ) -> QueueResult<RedisDriver> {
        for node in conn.primaries().await? {
            check_eviction(&conn, &node).await?;
        }
        // Ids without blocks (an earlier Cowans) would be routed nowhere, or collide.
        let mut c = conn.clone();
        let older: i64 = redis::cmd("EXISTS")
            .arg(format!("{{{prefix}}}:ids"))
            .arg(format!("{{{prefix}}}:jobq"))
            .query_async(&mut c)
            .await
            .map_err(map_err)?;
        if older > 0 {
            return Err(QueueError::invalid(
                "redis.prefix",
                format!(
                    "{prefix:?} holds jobs of an earlier Cowans whose ids name no queue: drain and delete them, or choose another prefix"
                ),
            ));
        }
        Ok(RedisDriver {
            conn,
            subscribers: Arc::new(subscribers),
            prefix: prefix.to_owned(),
            routes: Default::default(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Deletes every key of this prefix, on every primary of a cluster (for tests); returns how
    /// many.
    pub async fn flush_prefix(&self) -> QueueResult<u64> {
        let p = glob_escape(&self.prefix);
        let mut conn = self.conn.clone();
        let mut deleted = 0u64;
        for node in self.conn.primaries().await? {
            for pattern in [
                format!("{{{p}}}:*"),
                format!("{{{p}:q:*"),
                format!("{{{p}:b:*"),
            ] {
                let mut cursor = 0u64;
                loop {
                    let reply = self
                        .conn
                        .on(
                            &node,
                            redis::cmd("SCAN")
                                .arg(cursor)
                                .arg("MATCH")
                                .arg(&pattern)
                                .arg("COUNT")
                                .arg(1000),
                        )
                        .await
                        .map_err(map_err)?;
                    let (next, keys): (u64, Vec<String>) =
                        redis::from_redis_value(reply).map_err(|e| bad(e.to_string()))?;
                    // One DEL per hash tag: a cluster refuses keys of several slots in one call.
                    let mut by_tag: BTreeMap<&str, Vec<&String>> = BTreeMap::new();
                    for k in &keys {
                        let tag = k.split_once('}').map_or(k.as_str(), |(t, _)| t);
                        by_tag.entry(tag).or_default().push(k);
                    }
                    for group in by_tag.into_values() {
                        let n: u64 = redis::cmd("DEL")
                            .arg(group)
                            .query_async(&mut conn)
                            .await
                            .map_err(map_err)?;
                        deleted += n;
                    }
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
            }
        }
        self.forget_routes();
        Ok(deleted)
    }
}

async fn check_eviction(conn: &Conn, node: &Node) -> QueueResult<()> {
    let reply = conn
        .on(
            node,
            redis::cmd("CONFIG").arg("GET").arg("maxmemory-policy"),
        )
        .await;
    let reply = match reply {
        Ok(v) => v,
        Err(e) => {
            let err = map_err(e);
            if matches!(err, QueueError::Unavailable { .. }) {
                return Err(err);
            }
            tracing::warn!(error = %err, "cannot read maxmemory-policy (CONFIG disabled?): make sure it is noeviction, or jobs may be evicted");
            return Ok(());
        }
    };
    let policy = match &reply {
        Value::Map(pairs) => pairs.first().map(|(_, v)| text(v, "policy")).transpose()?,
        other => items(other)?
            .get(1)
            .map(|v| text(v, "policy"))
            .transpose()?,
    };
    match policy.as_deref() {
        Some("noeviction") => Ok(()),
        Some(p) => Err(QueueError::invalid(
            "redis.maxmemory-policy",
            format!(
                "is {p}; it must be noeviction, or the server may evict jobs when memory runs short"
            ),
        )),
        None => {
            tracing::warn!(
                "the server did not report maxmemory-policy: make sure it is noeviction"
            );
            Ok(())
        }
    }
}

fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
