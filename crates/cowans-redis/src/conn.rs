//! The connection a driver talks through: one server (a connection manager) or a Redis Cluster
//! (the cluster client's connection, which routes every command by the slot of its first key).
//! Both are `ConnectionLike`, so commands and scripts are written once.

use redis::{
    Cmd, Pipeline, RedisFuture, Value,
    aio::{ConnectionLike, ConnectionManager},
    cluster_async::ClusterConnection,
    cluster_routing::{RoutingInfo, SingleNodeRoutingInfo},
};

use cowans_core::queue::QueueResult;

use crate::value::{bad, int, items, map_err, text};

#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// One server of the deployment: the only one, or a cluster primary by address.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    Only,
    Primary { host: String, port: u16 },
}

impl Conn {
    /// The servers that hold keys: the one server, or every cluster primary (from
    /// `CLUSTER SLOTS`).
    pub(crate) async fn primaries(&self) -> QueueResult<Vec<Node>> {
        let Conn::Cluster(c) = self else {
            return Ok(vec![Node::Only]);
        };
        let reply = c
            .clone()
            .route_command(
                redis::cmd("CLUSTER").arg("SLOTS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await
            .map_err(map_err)?;
        let mut out: Vec<(String, u16)> = Vec::new();
        for range in items(&reply)? {
            let r = items(range)?;
            let primary = items(r.get(2).ok_or_else(|| bad("CLUSTER SLOTS: no primary"))?)?;
            let host = text(
                primary
                    .first()
                    .ok_or_else(|| bad("CLUSTER SLOTS: no host"))?,
                "host",
            )?;
            let port = int(
                primary
                    .get(1)
                    .ok_or_else(|| bad("CLUSTER SLOTS: no port"))?,
                "port",
            )?;
            let port = u16::try_from(port).map_err(|_| bad(format!("bad port {port}")))?;
            if !out.contains(&(host.clone(), port)) {
                out.push((host, port));
            }
        }
        out.sort();
        Ok(out
            .into_iter()
            .map(|(host, port)| Node::Primary { host, port })
            .collect())
    }

    /// Runs `cmd` on one server (a command of no key, like `SCAN` or `CONFIG`).
    pub(crate) async fn on(&self, node: &Node, cmd: &Cmd) -> redis::RedisResult<Value> {
        match (self, node) {
            (Conn::Cluster(c), Node::Primary { host, port }) => {
                c.clone()
                    .route_command(
                        cmd.clone(),
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port: *port,
                        }),
                    )
                    .await
            }
            (conn, _) => cmd.query_async(&mut conn.clone()).await,
        }
    }
}
