//! Connecting (with the eviction-policy check) and deleting a prefix's keys.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use cowans_core::queue::{QueueError, QueueResult};
use redis::{
    Value,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

use crate::{
    RedisDriver,
    value::{items, map_err, text},
};

impl RedisDriver {
    /// Connects to `url` (`redis://host:port/db`); `prefix` namespaces every key and the wake-up
    /// channel. Refuses a server whose `maxmemory-policy` evicts keys; a server where `CONFIG`
    /// is disabled is accepted with a warning.
    pub async fn connect(url: &str, prefix: &str) -> QueueResult<RedisDriver> {
        if prefix.is_empty() || prefix.contains(['{', '}']) {
            return Err(QueueError::invalid(
                "redis.prefix",
                "must be non-empty and contain no braces (they delimit cluster hash tags)",
            ));
        }
        let client = redis::Client::open(url)
            .map_err(|e| QueueError::invalid("redis.url", e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(30)))
            .set_number_of_retries(2);
        let mut conn = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(map_err)?;
        check_eviction(&mut conn).await?;
        Ok(RedisDriver {
            conn,
            client,
            prefix: prefix.to_owned(),
            queues: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Deletes every key of this prefix (for tests); returns how many.
    pub async fn flush_prefix(&self) -> QueueResult<u64> {
        let p = glob_escape(&self.prefix);
        let mut conn = self.conn.clone();
        let mut deleted = 0u64;
        for pattern in [format!("{{{p}}}:*"), format!("{{{p}:q:*")] {
            let mut cursor = 0u64;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn)
                    .await
                    .map_err(map_err)?;
                if !keys.is_empty() {
                    let n: u64 = redis::cmd("DEL")
                        .arg(&keys)
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
        if let Ok(mut cache) = self.queues.lock() {
            cache.clear();
        }
        Ok(deleted)
    }
}

async fn check_eviction(conn: &mut ConnectionManager) -> QueueResult<()> {
    let reply: Result<Value, redis::RedisError> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .query_async(conn)
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
