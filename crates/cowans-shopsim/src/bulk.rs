//! Bulk operations: a query run executes the bulk query against the real schema a window of
//! products at a time and writes JSONL (children carry `__parentId` and come after their parent)
//! to a file served at `/bulk-results/{id}.jsonl`; at most `concurrency` operations run per shop.

use std::{io::Write, path::PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{model::Search, shop::Shop};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BulkStatus {
    Created,
    Running,
    Completed,
    Failed,
    Canceling,
    Canceled,
}

impl BulkStatus {
    pub fn name(self) -> &'static str {
        match self {
            BulkStatus::Created => "CREATED",
            BulkStatus::Running => "RUNNING",
            BulkStatus::Completed => "COMPLETED",
            BulkStatus::Failed => "FAILED",
            BulkStatus::Canceling => "CANCELING",
            BulkStatus::Canceled => "CANCELED",
        }
    }

    pub fn is_live(self) -> bool {
        matches!(
            self,
            BulkStatus::Created | BulkStatus::Running | BulkStatus::Canceling
        )
    }
}

#[derive(Debug, Clone)]
pub struct BulkOp {
    pub id: u64,
    pub kind: &'static str,
    pub status: BulkStatus,
    pub query: String,
    pub object_count: u64,
    pub root_object_count: u64,
    pub file_size: u64,
    pub file: Option<PathBuf>,
    pub error_code: Option<String>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// The API version of the request that started it (its lines run with that version).
    pub api_version: &'static str,
}

impl BulkOp {
    /// The `bulk_operations/finish` webhook payload (lower-case status and error code).
    pub fn finish_payload(&self) -> serde_json::Value {
        let ts = |d: DateTime<Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        serde_json::json!({
            "admin_graphql_api_id": format!("gid://shopify/BulkOperation/{}", self.id),
            "completed_at": self.completed_at.map(ts),
            "created_at": ts(self.created_at),
            "error_code": self.error_code.as_ref().map(|c| c.to_lowercase()),
            "status": self.status.name().to_lowercase(),
            "type": self.kind.to_lowercase(),
        })
    }
}

/// True for a document holding one mutation operation.
pub fn is_mutation(doc: &str) -> bool {
    cowans_shopify::cost::is_mutation(doc, None).unwrap_or(false)
}

/// A bulk query as the simulator runs it: its text (executed against the real schema, a window
/// of products at a time) and the root's search.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub query: String,
    pub search: Option<String>,
}

/// In the data of a request run for a bulk export: the products of this window. The `products`
/// connection then yields exactly these (paging arguments are ignored, as Shopify does in bulk),
/// and nested connections yield every item.
#[derive(Debug, Clone)]
pub struct BulkWindow(pub Vec<u64>);

/// The most connections a bulk query may hold, and how deep they may nest (Shopify's "operation
/// restrictions").
const MAX_CONNECTIONS: usize = 5;
const MAX_DEPTH: usize = 2;

/// Reads and checks a bulk query as Shopify does: one top-level connection (the simulator runs
/// `products`), at most five connections, nested at most two levels, no `node`/`nodes` at the
/// top. Errors name the problem.
pub fn parse_selection(query: &str) -> Result<Selection, String> {
    use async_graphql::parser::{
        parse_query,
        types::{Field, Selection as S, SelectionSet},
    };
    let doc = parse_query(query).map_err(|e| format!("Invalid bulk query: {e}"))?;
    let op = doc
        .operations
        .iter()
        .next()
        .ok_or("Invalid bulk query: no operation")?
        .1;
    fn fields(set: &SelectionSet) -> Vec<&Field> {
        set.items
            .iter()
            .filter_map(|i| match &i.node {
                S::Field(f) => Some(&f.node),
                _ => None,
            })
            .collect()
    }
    fn is_connection(f: &Field) -> bool {
        fields(&f.selection_set.node)
            .iter()
            .any(|c| matches!(c.name.node.as_str(), "edges" | "nodes"))
    }
    // Counts connections below `f` and the deepest nesting of connections.
    fn walk(f: &Field, depth: usize, count: &mut usize, deepest: &mut usize) {
        let connection = is_connection(f);
        let depth = if connection {
            *count += 1;
            depth + 1
        } else {
            depth
        };
        *deepest = (*deepest).max(depth);
        for c in fields(&f.selection_set.node) {
            walk(c, depth, count, deepest);
        }
    }
    let roots = fields(&op.node.selection_set.node);
    let [root] = roots.as_slice() else {
        return Err("Bulk queries must have exactly one top-level field".into());
    };
    match root.name.node.as_str() {
        "node" | "nodes" => {
            return Err("Bulk queries cannot use the top-level node or nodes fields".into());
        }
        "products" => {}
        other => {
            return Err(format!(
                "The simulator runs bulk queries over products only, not {other}"
            ));
        }
    }
    if !is_connection(root) {
        return Err("Bulk queries must contain at least one connection".into());
    }
    let (mut count, mut deepest) = (0, 0);
    walk(root, 0, &mut count, &mut deepest);
    if count > MAX_CONNECTIONS {
        return Err(format!(
            "Bulk queries cannot contain more than {MAX_CONNECTIONS} connections"
        ));
    }
    // The root connection is level 0; `products { variants }` nests one level.
    if deepest > MAX_DEPTH + 1 {
        return Err(format!(
            "Bulk queries cannot contain connections nested more than {MAX_DEPTH} levels"
        ));
    }
    let search = root
        .arguments
        .iter()
        .find(|(n, _)| n.node == "query")
        .and_then(|(_, v)| match &v.node {
            async_graphql_value::Value::String(s) => Some(s.clone()),
            _ => None,
        });
    Ok(Selection {
        query: query.to_owned(),
        search,
    })
}

/// A connection's items in a result: `{edges: [{node}]}` or `{nodes: [..]}`.
fn connection_items(v: &serde_json::Value) -> Option<Vec<serde_json::Value>> {
    let o = v.as_object()?;
    if let Some(nodes) = o.get("nodes").and_then(|n| n.as_array()) {
        return Some(nodes.clone());
    }
    let edges = o.get("edges")?.as_array()?;
    Some(
        edges
            .iter()
            .filter_map(|e| e.get("node").cloned())
            .collect(),
    )
}

/// Removes the connections of `object` (also those inside its plain objects, such as a
/// variant's `inventoryItem { inventoryLevels }`): their items become lines of their own whose
/// parent is the line `object` is.
fn take_connections(object: &mut serde_json::Value, nested: &mut Vec<Vec<serde_json::Value>>) {
    let Some(o) = object.as_object_mut() else {
        return;
    };
    let keys: Vec<String> = o.keys().cloned().collect();
    for k in keys {
        if let Some(items) = o.get(&k).and_then(connection_items) {
            o.remove(&k);
            nested.push(items);
        } else if let Some(inner) = o.get_mut(&k).filter(|v| v.is_object()) {
            take_connections(inner, nested);
        }
    }
}

/// One object of the export and, after it, the lines of its nested connections (each with
/// `__parentId`, recursively).
fn flatten(
    mut object: serde_json::Value,
    parent: Option<&str>,
    lines: &mut Vec<serde_json::Value>,
    children: &mut Vec<serde_json::Value>,
) {
    let mut nested = Vec::new();
    take_connections(&mut object, &mut nested);
    if let (Some(o), Some(p)) = (object.as_object_mut(), parent) {
        o.insert("__parentId".into(), p.into());
    }
    let id = object.get("id").and_then(|i| i.as_str()).map(str::to_owned);
    lines.push(object);
    for items in nested {
        for item in items {
            // Children of children follow their own parent.
            let mut grand = Vec::new();
            flatten(item, id.as_deref(), children, &mut grand);
            children.extend(grand);
        }
    }
}

/// Runs a query operation to completion in the background: the matching products, a window
/// at a time, through the real schema; objects written one per line, children (with
/// `__parentId`) after their parent — right after it with `group_objects`, else after the
/// window's parents (Shopify's default since 2026-01: after, not necessarily adjacent).
pub fn spawn_query(
    shop: Shop,
    schema: crate::schema::SimSchema,
    id: u64,
    sel: Selection,
    dir: PathBuf,
    group_objects: bool,
) {
    const WINDOW: usize = 250;
    tokio::spawn(async move {
        let delay = shop.lock().faults.bulk_delay_ms;
        let version = shop
            .lock()
            .bulk
            .get(&id)
            .map_or(crate::schema::LATEST, |o| o.api_version);
        if let Some(op) = shop.lock().bulk.get_mut(&id)
            && op.status == BulkStatus::Created
        {
            op.status = BulkStatus::Running;
        }
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        let ids: Vec<u64> = {
            let s = shop.lock();
            let search = sel
                .search
                .as_deref()
                .map(|q| Search::products(q, version))
                .unwrap_or_default();
            s.catalog
                .products
                .values()
                .filter(|p| search.matches(p))
                .map(|p| p.id)
                .collect()
        };
        let path = dir.join(format!("bulk-{id}.jsonl"));
        let written = async {
            let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
            let (mut count, mut roots) = (0u64, 0u64);
            for window in ids.chunks(WINDOW) {
                if shop
                    .lock()
                    .bulk
                    .get(&id)
                    .is_some_and(|o| o.status == BulkStatus::Canceling)
                {
                    return Err(std::io::Error::other("canceled"));
                }
                let req = async_graphql::Request::new(sel.query.clone())
                    .data(BulkWindow(window.to_vec()))
                    .data(crate::schema::ApiVersion(version));
                let resp = schema.execute(req).await;
                if !resp.errors.is_empty() {
                    return Err(std::io::Error::other(format!("{:?}", resp.errors)));
                }
                let data = resp.data.into_json().unwrap_or_default();
                let products = data
                    .as_object()
                    .and_then(|o| o.values().next())
                    .and_then(connection_items)
                    .unwrap_or_default();
                let (mut parents, mut children) = (Vec::new(), Vec::new());
                for p in products {
                    roots += 1;
                    if group_objects {
                        let mut mine = Vec::new();
                        flatten(p, None, &mut parents, &mut mine);
                        parents.append(&mut mine);
                    } else {
                        flatten(p, None, &mut parents, &mut children);
                    }
                }
                for line in parents.iter().chain(&children) {
                    serde_json::to_writer(&mut out, line)?;
                    out.write_all(b"\n")?;
                    count += 1;
                }
            }
            out.flush()?;
            Ok::<_, std::io::Error>((count, roots))
        }
        .await;
        let mut s = shop.lock();
        let now = s.clock.now();
        if let Some(op) = s.bulk.get_mut(&id) {
            match written {
                Ok((count, roots)) => {
                    op.status = BulkStatus::Completed;
                    op.object_count = count;
                    op.root_object_count = roots;
                    op.file_size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                    // No results, no file (Shopify's `url` is null then).
                    op.file = (count > 0).then_some(path);
                }
                Err(e) if e.to_string() == "canceled" => op.status = BulkStatus::Canceled,
                Err(e) => {
                    tracing::warn!(error = %e, "bulk query failed");
                    op.status = BulkStatus::Failed;
                    op.error_code = Some("INTERNAL_SERVER_ERROR".into());
                }
            }
            op.completed_at = Some(now);
            let payload = op.finish_payload();
            s.emit("bulk_operations/finish", payload, None);
        }
    });
}

/// Runs a bulk mutation: every line of the staged JSONL is one set of variables for `mutation`,
/// executed through the normal resolvers (no cost accounting); results are written as
/// `{"data": .., "__lineNumber": n}` (or `"errors"`), deliberately not in input order.
pub fn spawn_mutation(
    shop: Shop,
    schema: crate::schema::SimSchema,
    id: u64,
    mutation: String,
    input: Vec<u8>,
    dir: PathBuf,
) {
    tokio::spawn(async move {
        let version = shop
            .lock()
            .bulk
            .get(&id)
            .map_or(crate::schema::LATEST, |o| o.api_version);
        if let Some(op) = shop.lock().bulk.get_mut(&id) {
            op.status = BulkStatus::Running;
        }
        let text = String::from_utf8_lossy(&input).into_owned();
        let mut results: Vec<String> = Vec::new();
        let mut failed = false;
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let result = match serde_json::from_str::<serde_json::Value>(line) {
                Ok(vars) => {
                    let req = async_graphql::Request::new(mutation.clone())
                        .variables(async_graphql::Variables::from_json(vars))
                        .data(crate::schema::ApiVersion(version));
                    let resp = schema.execute(req).await;
                    let mut out = serde_json::json!({ "__lineNumber": n });
                    if resp.errors.is_empty() {
                        out["data"] = resp.data.into_json().unwrap_or_default();
                    } else {
                        out["errors"] = serde_json::to_value(&resp.errors).unwrap_or_default();
                    }
                    out
                }
                Err(e) => {
                    serde_json::json!({ "__lineNumber": n, "errors": [{"message": format!("line is not JSON: {e}")}] })
                }
            };
            results.push(result.to_string());
        }
        // Out of input order: odd lines first, then even ones, each group reversed.
        let pick = |parity: usize| {
            results
                .iter()
                .enumerate()
                .filter(move |(i, _)| i % 2 == parity)
                .rev()
                .map(|(_, l)| l.clone())
        };
        let ordered: Vec<String> = pick(1).chain(pick(0)).collect();
        let path = dir.join(format!("bulk-{id}.jsonl"));
        if std::fs::write(&path, ordered.join("\n") + "\n").is_err() {
            failed = true;
        }
        let mut s = shop.lock();
        let now = s.clock.now();
        if let Some(op) = s.bulk.get_mut(&id) {
            op.object_count = ordered.len() as u64;
            op.completed_at = Some(now);
            if failed {
                op.status = BulkStatus::Failed;
                op.error_code = Some("INTERNAL_SERVER_ERROR".into());
            } else {
                op.status = BulkStatus::Completed;
                op.file = Some(path);
            }
            // Shopify announces finished bulk mutations too.
            let payload = op.finish_payload();
            s.emit("bulk_operations/finish", payload, None);
        }
    });
}
