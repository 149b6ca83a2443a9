//! Bulk operations: start a bulk query, wait for it, and stream its JSONL result line by line.
//! Shopify writes children (`__parentId`) after their parent, though not necessarily right after
//! it (`groupObjects: false`, the default since 2026-01); a child that comes early anyway is held
//! until its parent has been handed out, so a consumer always sees a parent before its children. Memory stays flat in
//! the size of the file: one line, the ids of parents seen (a `u64` each) and the orphans waiting.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::{Client, Gid, ShopifyError};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkOperation {
    pub id: Gid,
    pub status: String,
    pub error_code: Option<String>,
    pub object_count: String,
    pub url: Option<String>,
    /// `QUERY` or `MUTATION`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
}

impl BulkOperation {
    pub fn is_finished(&self) -> bool {
        matches!(
            self.status.as_str(),
            "COMPLETED" | "FAILED" | "CANCELED" | "EXPIRED"
        )
    }
}

/// One object of a bulk result, parents always before their children.
#[derive(Debug, Clone, PartialEq)]
pub enum BulkItem {
    Parent(Value),
    Child { parent: Gid, value: Value },
}

/// What a download saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BulkStats {
    pub lines: u64,
    pub parents: u64,
    pub children: u64,
    /// Most children held at once waiting for their parent.
    pub max_orphans: usize,
    /// Longest line, in bytes.
    pub max_line: usize,
    /// Bytes read.
    pub bytes: u64,
}

const STAGE: &str = "mutation($i: [StagedUploadInput!]!) { stagedUploadsCreate(input: $i) { stagedTargets { url resourceUrl parameters { name value } } userErrors { field message } } }";
const RUN_MUTATION: &str = "mutation($m: String!, $p: String!) { bulkOperationRunMutation(mutation: $m, stagedUploadPath: $p) { bulkOperation { id type status errorCode objectCount url } userErrors { field message code } } }";

const RUN: &str = "mutation($q: String!) { bulkOperationRunQuery(query: $q) { bulkOperation { id type status errorCode objectCount url } userErrors { field message code } } }";
const GET: &str =
    "query($id: ID!) { bulkOperation(id: $id) { id type status errorCode objectCount url } }";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunData {
    bulk_operation_run_query: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetData {
    bulk_operation: Option<BulkOperation>,
}

impl Client {
    /// Starts a bulk query (no cost limit applies to its content).
    pub async fn bulk_query_start(&self, query: &str) -> Result<BulkOperation, ShopifyError> {
        let a = self
            .mutate::<RunData>(RUN, json!({ "q": query }), false)
            .await?;
        let payload = a.data.bulk_operation_run_query;
        Client::check_user_errors(&payload)?;
        crate::metrics::bulk_started(self.shop(), "query");
        serde_json::from_value(payload["bulkOperation"].clone())
            .map_err(|e| ShopifyError::Decode(format!("bulkOperation: {e}")))
    }

    /// Starts a bulk mutation: uploads one line of variables per item (JSONL, built in memory
    /// one line at a time) to a staged-upload target, then runs `mutation` over it. Map the
    /// results back with [`Client::bulk_mutation_results`] (they come back out of order).
    pub async fn bulk_mutation_start(
        &self,
        mutation: &str,
        variables: impl IntoIterator<Item = Value>,
    ) -> Result<BulkOperation, ShopifyError> {
        let mut jsonl = Vec::new();
        for v in variables {
            serde_json::to_writer(&mut jsonl, &v)
                .map_err(|e| ShopifyError::Decode(e.to_string()))?;
            jsonl.push(b'\n');
        }
        let staged = self
            .mutate::<Value>(
                STAGE,
                json!({"i": [{"resource": "BULK_MUTATION_VARIABLES", "filename": "variables.jsonl", "mimeType": "text/jsonl", "httpMethod": "POST"}]}),
                true,
            )
            .await?;
        let payload = &staged.data["stagedUploadsCreate"];
        Client::check_user_errors(payload)?;
        let target = &payload["stagedTargets"][0];
        let url = target["url"]
            .as_str()
            .ok_or_else(|| ShopifyError::Decode("staged target has no url".into()))?;
        let mut form = reqwest::multipart::Form::new();
        let mut path = None;
        for p in target["parameters"].as_array().into_iter().flatten() {
            let (Some(name), Some(value)) = (p["name"].as_str(), p["value"].as_str()) else {
                continue;
            };
            if name == "key" {
                path = Some(value.to_owned());
            }
            form = form.text(name.to_owned(), value.to_owned());
        }
        let path =
            path.ok_or_else(|| ShopifyError::Decode("staged target has no key parameter".into()))?;
        // The file part goes last.
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(jsonl).file_name("variables.jsonl"),
        );
        let uploaded = self
            .http()
            .post(url)
            .multipart(form)
            .timeout(Duration::from_secs(600))
            .send()
            .await
            .map_err(|e| ShopifyError::Transport(e.without_url().to_string()))?;
        if !uploaded.status().is_success() {
            return Err(ShopifyError::Server {
                status: uploaded.status().as_u16(),
            });
        }
        let a = self
            .mutate::<Value>(RUN_MUTATION, json!({"m": mutation, "p": path}), false)
            .await?;
        let payload = &a.data["bulkOperationRunMutation"];
        Client::check_user_errors(payload)?;
        crate::metrics::bulk_started(self.shop(), "mutation");
        serde_json::from_value(payload["bulkOperation"].clone())
            .map_err(|e| ShopifyError::Decode(format!("bulkOperation: {e}")))
    }

    /// Streams a bulk mutation's results to `on_result(line_number, result)`, where the line
    /// number is the index of the variables line it answers.
    pub async fn bulk_mutation_results(
        &self,
        url: &str,
        mut on_result: impl FnMut(usize, Value),
    ) -> Result<BulkStats, ShopifyError> {
        let mut bad = None;
        let stats = self
            .bulk_download(url, |item| {
                if let BulkItem::Parent(mut v) = item {
                    match v
                        .as_object_mut()
                        .and_then(|o| o.remove("__lineNumber"))
                        .and_then(|n| n.as_u64())
                    {
                        Some(n) => on_result(n as usize, v),
                        None => bad = Some(v),
                    }
                }
            })
            .await?;
        match bad {
            Some(v) => Err(ShopifyError::Decode(format!(
                "bulk mutation result without __lineNumber: {v}"
            ))),
            None => Ok(stats),
        }
    }

    /// The newest bulk mutation of this app and shop (`currentBulkOperation(type: MUTATION)`),
    /// to wait for before starting another.
    pub async fn bulk_current_mutation(&self) -> Result<Option<BulkOperation>, ShopifyError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Current {
            current_bulk_operation: Option<BulkOperation>,
        }
        let a = self
            .query::<Current>(
                "{ currentBulkOperation(type: MUTATION) { id type status errorCode objectCount url } }",
                json!({}),
            )
            .await?;
        Ok(a.data.current_bulk_operation)
    }

    pub async fn bulk_operation(&self, id: &Gid) -> Result<BulkOperation, ShopifyError> {
        let a = self
            .query::<GetData>(GET, json!({ "id": id.to_string() }))
            .await?;
        let op = a
            .data
            .bulk_operation
            .ok_or_else(|| ShopifyError::Decode(format!("bulk operation {id} does not exist")))?;
        if op.is_finished() && self.first_sight_of_end(&op.id) {
            crate::metrics::bulk_finished(
                self.shop(),
                op.kind.as_deref().unwrap_or("unknown"),
                &op.status,
            );
        }
        Ok(op)
    }

    /// Polls until the operation is finished (or `timeout` passes).
    pub async fn bulk_wait(
        &self,
        id: &Gid,
        poll: Duration,
        timeout: Duration,
    ) -> Result<BulkOperation, ShopifyError> {
        let start = Instant::now();
        loop {
            let op = self.bulk_operation(id).await?;
            if op.is_finished() {
                return Ok(op);
            }
            if start.elapsed() > timeout {
                return Err(ShopifyError::Decode(format!(
                    "bulk operation {id} still {} after {timeout:?}",
                    op.status
                )));
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// Downloads a bulk result and hands every object to `on_item`, parents before children.
    pub async fn bulk_download(
        &self,
        url: &str,
        mut on_item: impl FnMut(BulkItem),
    ) -> Result<BulkStats, ShopifyError> {
        self.bulk_download_batches(url, 1000, |batch| {
            batch.into_iter().for_each(&mut on_item);
            std::future::ready(Ok(()))
        })
        .await
    }

    /// Downloads a bulk result and hands its objects to `on_batch` in batches of about
    /// `batch_size`, parents before children, waiting for each batch to be handled before
    /// reading on: memory stays one batch (plus the parent ids seen and any orphans waiting),
    /// whatever the size of the file. An error from `on_batch` stops the download.
    pub async fn bulk_download_batches<F, Fut>(
        &self,
        url: &str,
        batch_size: usize,
        mut on_batch: F,
    ) -> Result<BulkStats, ShopifyError>
    where
        F: FnMut(Vec<BulkItem>) -> Fut,
        Fut: std::future::Future<Output = Result<(), ShopifyError>>,
    {
        let mut response = self
            .http()
            .get(url)
            // A large export takes longer than an API call's timeout.
            .timeout(Duration::from_secs(6 * 3600))
            .send()
            .await
            .map_err(|e| ShopifyError::Transport(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(ShopifyError::Server {
                status: response.status().as_u16(),
            });
        }
        let mut assembler = Assembler::default();
        let mut pending: Vec<u8> = Vec::new();
        let batch_size = batch_size.max(1);
        let mut batch: Vec<BulkItem> = Vec::with_capacity(batch_size);
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| ShopifyError::Transport(e.without_url().to_string()))?
        {
            pending.extend_from_slice(&chunk);
            let mut start = 0;
            while let Some(nl) = pending[start..].iter().position(|b| *b == b'\n') {
                assembler.line(&pending[start..start + nl], &mut |item| batch.push(item))?;
                start += nl + 1;
            }
            pending.drain(..start);
            if batch.len() >= batch_size {
                on_batch(std::mem::replace(
                    &mut batch,
                    Vec::with_capacity(batch_size),
                ))
                .await?;
            }
        }
        if !pending.is_empty() {
            let last = std::mem::take(&mut pending);
            assembler.line(&last, &mut |item| batch.push(item))?;
        }
        let stats = assembler.finish()?;
        if !batch.is_empty() {
            on_batch(batch).await?;
        }
        Ok(stats)
    }
}

#[derive(Default)]
struct Assembler {
    /// Ids of the lines handed out, by kind (a product and a variant may share a number; a
    /// `Gid` per line would cost several times the memory).
    seen: HashMap<String, HashSet<u64>>,
    orphans: HashMap<Gid, Vec<Value>>,
    waiting: usize,
    stats: BulkStats,
}

impl Assembler {
    fn line(&mut self, bytes: &[u8], out: &mut impl FnMut(BulkItem)) -> Result<(), ShopifyError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        self.stats.lines += 1;
        self.stats.bytes += bytes.len() as u64 + 1;
        self.stats.max_line = self.stats.max_line.max(bytes.len());
        let mut value: Value = serde_json::from_slice(bytes)
            .map_err(|e| ShopifyError::Decode(format!("bulk line {}: {e}", self.stats.lines)))?;
        let parent = value
            .as_object_mut()
            .and_then(|o| o.remove("__parentId"))
            .and_then(|p| p.as_str().and_then(|s| s.parse::<Gid>().ok()));
        match parent {
            Some(parent) => {
                self.stats.children += 1;
                if self
                    .seen
                    .get(&parent.kind)
                    .is_some_and(|ids| ids.contains(&parent.id))
                {
                    self.emit(BulkItem::Child { parent, value }, out);
                } else {
                    self.orphans.entry(parent).or_default().push(value);
                    self.waiting += 1;
                    self.stats.max_orphans = self.stats.max_orphans.max(self.waiting);
                }
            }
            None => {
                self.stats.parents += 1;
                self.emit(BulkItem::Parent(value), out);
            }
        }
        Ok(())
    }

    /// Hands `item` out, then the lines that were waiting for it (children of a child, such as
    /// a variant's inventory levels, may come before it).
    fn emit(&mut self, item: BulkItem, out: &mut impl FnMut(BulkItem)) {
        let mut ready = vec![item];
        while let Some(item) = ready.pop() {
            let value = match &item {
                BulkItem::Parent(v) | BulkItem::Child { value: v, .. } => v,
            };
            let id = value
                .get("id")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<Gid>().ok());
            out(item);
            if let Some(id) = id {
                if let Some(children) = self.orphans.remove(&id) {
                    self.waiting -= children.len();
                    // Handed out in their order, before anything after them.
                    for value in children.into_iter().rev() {
                        ready.push(BulkItem::Child {
                            parent: id.clone(),
                            value,
                        });
                    }
                }
                match self.seen.get_mut(&id.kind) {
                    Some(ids) => {
                        ids.insert(id.id);
                    }
                    None => {
                        self.seen.insert(id.kind, HashSet::from([id.id]));
                    }
                }
            }
        }
    }

    fn finish(self) -> Result<BulkStats, ShopifyError> {
        if self.waiting > 0 {
            return Err(ShopifyError::Decode(format!(
                "{} children in the bulk result have no parent line",
                self.waiting
            )));
        }
        Ok(self.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_before_their_parent_are_held_until_it_arrives() {
        let mut a = Assembler::default();
        let mut got = Vec::new();
        let lines = [
            r#"{"id":"gid://shopify/ProductVariant/11","__parentId":"gid://shopify/Product/1"}"#,
            r#"{"id":"gid://shopify/Product/1"}"#,
            r#"{"id":"gid://shopify/ProductVariant/12","__parentId":"gid://shopify/Product/1"}"#,
        ];
        for l in lines {
            a.line(l.as_bytes(), &mut |i| got.push(i)).unwrap();
        }
        assert!(matches!(&got[0], BulkItem::Parent(_)));
        assert!(matches!(&got[1], BulkItem::Child { parent, .. } if parent.id == 1));
        assert_eq!(got.len(), 3);
        let stats = a.finish().unwrap();
        assert_eq!(
            (stats.parents, stats.children, stats.max_orphans),
            (1, 2, 1)
        );

        let mut b = Assembler::default();
        b.line(lines[0].as_bytes(), &mut |_| {}).unwrap();
        assert!(
            b.finish().is_err(),
            "an orphan whose parent never came is an error"
        );
    }

    #[test]
    fn grandchildren_follow_their_own_parent_whatever_the_order() {
        let mut a = Assembler::default();
        let mut got = Vec::new();
        let lines = [
            // A level before its variant, the variant before its product; a variant sharing
            // its number with another product is not that product.
            r#"{"location":{"id":"gid://shopify/Location/9"},"__parentId":"gid://shopify/ProductVariant/11"}"#,
            r#"{"id":"gid://shopify/ProductVariant/11","__parentId":"gid://shopify/Product/1"}"#,
            r#"{"id":"gid://shopify/Product/1"}"#,
            r#"{"id":"gid://shopify/ProductVariant/2","__parentId":"gid://shopify/Product/11"}"#,
            r#"{"id":"gid://shopify/Product/11"}"#,
        ];
        for l in lines {
            a.line(l.as_bytes(), &mut |i| got.push(i)).unwrap();
        }
        let order: Vec<String> = got
            .iter()
            .map(|i| match i {
                BulkItem::Parent(v) => v["id"].as_str().unwrap().to_owned(),
                BulkItem::Child { parent, value } => {
                    format!("{}<{parent}", value["id"].as_str().unwrap_or("level"))
                }
            })
            .collect();
        assert_eq!(
            order,
            [
                "gid://shopify/Product/1",
                "gid://shopify/ProductVariant/11<gid://shopify/Product/1",
                "level<gid://shopify/ProductVariant/11",
                "gid://shopify/Product/11",
                "gid://shopify/ProductVariant/2<gid://shopify/Product/11",
            ]
        );
        a.finish().unwrap();
    }
}
