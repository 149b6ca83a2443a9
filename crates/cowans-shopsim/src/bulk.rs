//! Bulk operations: a query run writes JSONL (children carry `__parentId` and, with
//! `children_first`, come before their parent, as Shopify allows since 2026-01) to a file served
//! at `/bulk-results/{id}.jsonl`; at most `concurrency` operations run per shop.

use std::{io::Write, path::PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{
    model::{Product, Search},
    shop::Shop,
};

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
    pub file: Option<PathBuf>,
    pub error_code: Option<String>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// True for a document holding one mutation operation.
pub fn is_mutation(doc: &str) -> bool {
    cowans_shopify::cost::is_mutation(doc, None).unwrap_or(false)
}

/// What a bulk query asks for: product fields, and variant fields if it selects variants.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub search: Option<String>,
    pub product_fields: Vec<String>,
    pub variant_fields: Vec<String>,
}

/// Reads a bulk query: `{ products(query: "...") { edges { node { <fields> variants { edges {
/// node { <fields> } } } } } } }` (edges/node or nodes both accepted). Errors name the problem.
pub fn parse_selection(query: &str) -> Result<Selection, String> {
    use async_graphql::parser::{parse_query, types::Selection as S};
    let doc = parse_query(query).map_err(|e| format!("Invalid bulk query: {e}"))?;
    let op = doc
        .operations
        .iter()
        .next()
        .ok_or("Invalid bulk query: no operation")?
        .1;
    let fields = |set: &async_graphql::parser::types::SelectionSet| -> Vec<async_graphql::parser::types::Field> {
        set.items
            .iter()
            .filter_map(|i| match &i.node {
                S::Field(f) => Some(f.node.clone()),
                _ => None,
            })
            .collect()
    };
    // Unwrap `edges { node { .. } }` or `nodes { .. }` to the node's fields.
    let node_fields =
        |f: &async_graphql::parser::types::Field| -> Vec<async_graphql::parser::types::Field> {
            let mut out = Vec::new();
            for c in fields(&f.selection_set.node) {
                match c.name.node.as_str() {
                    "nodes" => out.extend(fields(&c.selection_set.node)),
                    "edges" => {
                        for e in fields(&c.selection_set.node) {
                            if e.name.node == "node" {
                                out.extend(fields(&e.selection_set.node));
                            }
                        }
                    }
                    _ => {}
                }
            }
            out
        };
    let roots = fields(&op.node.selection_set.node);
    let [root] = roots.as_slice() else {
        return Err("Bulk queries must have exactly one top-level field".into());
    };
    if root.name.node != "products" {
        return Err(format!(
            "The simulator runs bulk queries over products only, not {}",
            root.name.node
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
    let mut sel = Selection {
        search,
        ..Default::default()
    };
    for f in node_fields(root) {
        if f.name.node == "variants" {
            sel.variant_fields = node_fields(&f)
                .iter()
                .map(|v| v.name.node.to_string())
                .collect();
        } else if f.selection_set.node.items.is_empty() {
            sel.product_fields.push(f.name.node.to_string());
        }
    }
    Ok(sel)
}

fn product_json(p: &Product, fields: &[String]) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    for f in fields {
        let v = match f.as_str() {
            "id" => format!("gid://shopify/Product/{}", p.id).into(),
            "legacyResourceId" => p.id.to_string().into(),
            "title" => p.title.clone().into(),
            "handle" => p.handle.clone().into(),
            "status" => p.status.clone().into(),
            "vendor" => p.vendor.clone().into(),
            "productType" => p.product_type.clone().into(),
            "tags" => serde_json::json!(p.tags),
            "updatedAt" => p
                .updated_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                .into(),
            "createdAt" => p
                .created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                .into(),
            _ => continue,
        };
        m.insert(f.clone(), v);
    }
    m
}

fn variant_json(
    p: &Product,
    i: usize,
    fields: &[String],
) -> serde_json::Map<String, serde_json::Value> {
    let v = &p.variants[i];
    let mut m = serde_json::Map::new();
    for f in fields {
        let val = match f.as_str() {
            "id" => format!("gid://shopify/ProductVariant/{}", v.id).into(),
            "sku" => serde_json::json!(v.sku),
            "price" => v.price.clone().into(),
            "title" => v.title.clone().into(),
            "inventoryQuantity" => v.inventory_quantity.into(),
            _ => continue,
        };
        m.insert(f.clone(), val);
    }
    m.insert(
        "__parentId".into(),
        format!("gid://shopify/Product/{}", p.id).into(),
    );
    m
}

/// Runs a query operation to completion in the background: snapshot, write, publish.
pub fn spawn_query(shop: Shop, id: u64, sel: Selection, dir: PathBuf, children_first: bool) {
    tokio::spawn(async move {
        let delay = shop.lock().faults.bulk_delay_ms;
        if let Some(op) = shop.lock().bulk.get_mut(&id)
            && op.status == BulkStatus::Created
        {
            op.status = BulkStatus::Running;
        }
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        let snapshot: Vec<Product> = {
            let s = shop.lock();
            let search = sel.search.as_deref().map(Search::parse).unwrap_or_default();
            s.catalog
                .products
                .values()
                .filter(|p| search.matches(p))
                .cloned()
                .collect()
        };
        let path = dir.join(format!("bulk-{id}.jsonl"));
        let write = tokio::task::spawn_blocking({
            let path = path.clone();
            let shop = shop.clone();
            move || -> std::io::Result<u64> {
                let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
                let mut count = 0u64;
                for (n, p) in snapshot.iter().enumerate() {
                    if n % 1000 == 0
                        && shop
                            .lock()
                            .bulk
                            .get(&id)
                            .is_some_and(|o| o.status == BulkStatus::Canceling)
                    {
                        return Err(std::io::Error::other("canceled"));
                    }
                    let parent =
                        serde_json::Value::Object(product_json(p, &sel.product_fields)).to_string();
                    let children: Vec<String> = if sel.variant_fields.is_empty() {
                        vec![]
                    } else {
                        (0..p.variants.len())
                            .map(|i| {
                                serde_json::Value::Object(variant_json(p, i, &sel.variant_fields))
                                    .to_string()
                            })
                            .collect()
                    };
                    // Every other product's children come first: out-of-order output.
                    let early = children_first && n % 2 == 1;
                    if !early {
                        writeln!(out, "{parent}")?;
                    }
                    for c in &children {
                        writeln!(out, "{c}")?;
                    }
                    if early {
                        writeln!(out, "{parent}")?;
                    }
                    count += 1 + children.len() as u64;
                }
                out.flush()?;
                Ok(count)
            }
        })
        .await;
        let mut s = shop.lock();
        let now = s.clock.now();
        if let Some(op) = s.bulk.get_mut(&id) {
            match write {
                Ok(Ok(count)) => {
                    op.status = BulkStatus::Completed;
                    op.object_count = count;
                    op.file = Some(path);
                }
                Ok(Err(e)) if e.to_string() == "canceled" => op.status = BulkStatus::Canceled,
                _ => {
                    op.status = BulkStatus::Failed;
                    op.error_code = Some("INTERNAL_SERVER_ERROR".into());
                }
            }
            op.completed_at = Some(now);
            let payload = serde_json::json!({
                "admin_graphql_api_id": format!("gid://shopify/BulkOperation/{id}"),
                "completed_at": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "created_at": op.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "error_code": op.error_code.as_ref().map(|c| c.to_lowercase()),
                "status": op.status.name().to_lowercase(),
                "type": op.kind.to_lowercase(),
            });
            s.emit("bulk_operations/finish", payload);
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
                        .variables(async_graphql::Variables::from_json(vars));
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
        }
    });
}
