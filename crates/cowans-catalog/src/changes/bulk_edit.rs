//! Bulk edits: operations (price set / ± amount / ± percent with a rounding rule, compare-at
//! price, tags added or removed, status, vendor, product type) over a selection of a shop's
//! products. A preview computes counts and the first diffs without staging anything; a bulk edit
//! runs as a batch of `catalog.bulk_edit` jobs over chunks of the selection (live progress from
//! the batch's events), each staging its chunk's changes — approved at once for an admin's
//! `push: true` — in the transaction that completes its job, so a retried chunk stages nothing
//! twice.

use std::collections::HashMap;

use apalis_core::error::BoxDynError;
use cowans_core::{Actor, JobError, QueueName, Role};
use cowans_queue::{BatchCallback, JobMeta, NewJob, StoreError, StoreResult as Result};
use cowans_store::catalog::{
    self as store, BulkEditRow, ChangeFilter, ChangeOrigin, Decide, ProductFilter, ProductRow,
    VariantRow,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    ChangeState, Targets,
    operations::{Operation, apply, checked_ops},
};
use crate::{Catalog, notify::Notice};

/// The job kind of a bulk edit's chunks, and of its end.
pub const BULK_EDIT: &str = "catalog.bulk_edit";
pub const BULK_EDIT_DONE: &str = "catalog.bulk_edit_done";
/// Products per chunk (one job each).
const CHUNK: usize = 1000;
/// The largest selection of one bulk edit.
const MAX_PRODUCTS: usize = 1_000_000;

/// Which products a bulk edit covers: these ids, or every live product the filter matches.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkSelection {
    /// Product ids (numeric strings or GIDs); when given, the filter is not used.
    pub ids: Option<Vec<String>>,
    pub status: Option<String>,
    pub vendor: Option<String>,
    pub product_type: Option<String>,
    pub tag: Option<String>,
    pub sku: Option<String>,
    /// Words in the title or handle.
    pub q: Option<String>,
}

/// A bulk edit as asked for.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkEditSpec {
    #[serde(default)]
    pub selection: BulkSelection,
    pub operations: Vec<Operation>,
    /// Approve the changes at once so they are pushed (admins only).
    #[serde(default)]
    pub push: bool,
}

/// One field a preview shows changing.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PreviewDiff {
    pub product_id: String,
    pub variant_id: Option<String>,
    pub title: String,
    pub field: String,
    #[schema(value_type = Object)]
    pub from: Value,
    #[schema(value_type = Object)]
    pub to: Value,
}

/// What a bulk edit would do.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BulkPreview {
    /// Products selected.
    pub products: usize,
    /// Products it would change, and the changes it would stage.
    pub products_changed: usize,
    pub changes: usize,
    /// Products an operation cannot apply to (and the first reasons).
    pub skipped: usize,
    pub errors: Vec<Value>,
    /// The first field diffs.
    pub diffs: Vec<PreviewDiff>,
}

/// The arguments of a chunk's job.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkChunkArgs {
    pub bulk_edit_id: i64,
    pub product_ids: Vec<i64>,
}

/// The arguments of the job that ends a bulk edit when its batch has (the engine's batch
/// callback: the batch, its counts, and the bulk edit).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BulkDoneArgs {
    pub batch_id: i64,
    #[serde(default)]
    pub counts: Value,
    pub args: BulkEditRef,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BulkEditRef {
    pub bulk_edit_id: i64,
}

fn gid_or_id(s: &str, at: &str) -> Result<i64> {
    crate::snapshot::shopify_id(s, "Product")
        .ok_or_else(|| StoreError::invalid(at, format!("{s:?} is not a product id")))
}

impl Catalog {
    /// The ids of the products a selection covers, in order.
    async fn selected(&self, shop_id: i64, sel: &BulkSelection) -> Result<Vec<i64>> {
        let ids = match &sel.ids {
            Some(ids) => {
                if ids.is_empty() || ids.len() > MAX_PRODUCTS {
                    return Err(StoreError::invalid(
                        "selection.ids",
                        format!("must list 1 to {MAX_PRODUCTS} products"),
                    ));
                }
                let mut out = ids
                    .iter()
                    .enumerate()
                    .map(|(i, s)| gid_or_id(s, &format!("selection.ids[{i}]")))
                    .collect::<Result<Vec<_>>>()?;
                out.sort_unstable();
                out.dedup();
                out
            }
            None => {
                let filter = crate::catalog::checked(&ProductFilter {
                    status: sel.status.clone(),
                    vendor: sel.vendor.clone(),
                    product_type: sel.product_type.clone(),
                    tag: sel.tag.clone(),
                    sku: sel.sku.clone(),
                    text: sel.q.clone(),
                    include_deleted: false,
                })?;
                store::product_ids(self.pool(), shop_id, &filter).await?
            }
        };
        if ids.len() > MAX_PRODUCTS {
            return Err(StoreError::invalid(
                "selection",
                format!("selects {} products; at most {MAX_PRODUCTS}", ids.len()),
            ));
        }
        Ok(ids)
    }

    /// The products `ids` (live ones) with their variants.
    async fn with_variants(
        &self,
        shop_id: i64,
        ids: &[i64],
    ) -> Result<Vec<(ProductRow, Vec<VariantRow>)>> {
        let products = store::products_by_id(self.pool(), shop_id, ids).await?;
        let mut variants: HashMap<i64, Vec<VariantRow>> = HashMap::new();
        for v in store::variants_of(self.pool(), shop_id, ids).await? {
            variants.entry(v.product_id).or_default().push(v);
        }
        Ok(products
            .into_iter()
            .filter(|p| p.deleted_at.is_none())
            .map(|p| {
                let v = variants.remove(&p.id).unwrap_or_default();
                (p, v)
            })
            .collect())
    }

    /// What `spec` would do, with the first `sample` diffs; stages nothing.
    pub async fn preview_bulk_edit(
        &self,
        shop_id: i64,
        spec: &BulkEditSpec,
        sample: usize,
    ) -> Result<BulkPreview> {
        let ops = checked_ops(&spec.operations)?;
        let ids = self.selected(shop_id, &spec.selection).await?;
        let mut preview = BulkPreview {
            products: ids.len(),
            products_changed: 0,
            changes: 0,
            skipped: 0,
            errors: Vec::new(),
            diffs: Vec::new(),
        };
        for chunk in ids.chunks(CHUNK) {
            let rows = self.with_variants(shop_id, chunk).await?;
            let titles: HashMap<i64, String> =
                rows.iter().map(|(p, _)| (p.id, p.title.clone())).collect();
            let mut edits = Vec::new();
            for (p, vs) in &rows {
                match apply(&ops, p, vs) {
                    Ok(mut e) => edits.append(&mut e),
                    Err(e) => {
                        preview.skipped += 1;
                        if preview.errors.len() < 100 {
                            preview
                                .errors
                                .push(json!({ "product_id": p.id.to_string(), "error": e }));
                        }
                    }
                }
            }
            let changes = Targets::of(rows).staged(&edits, &|_| String::new())?;
            let mut products: Vec<i64> = changes.iter().map(|c| c.product_id).collect();
            products.dedup();
            preview.products_changed += products.len();
            preview.changes += changes.len();
            for c in &changes {
                for (field, f) in c.fields.as_object().into_iter().flatten() {
                    if preview.diffs.len() >= sample {
                        break;
                    }
                    preview.diffs.push(PreviewDiff {
                        product_id: c.product_id.to_string(),
                        variant_id: c.variant_id.map(|v| v.to_string()),
                        title: titles.get(&c.product_id).cloned().unwrap_or_default(),
                        field: field.clone(),
                        from: f["base"].clone(),
                        to: f["proposed"].clone(),
                    });
                }
            }
        }
        Ok(preview)
    }

    /// Starts a bulk edit: its row, and a batch of one job per chunk of the selection (audited
    /// as `bulk_edit.start`). `push: true` needs an admin.
    pub async fn start_bulk_edit(
        &self,
        actor: &Actor,
        shop_id: i64,
        spec: &BulkEditSpec,
    ) -> Result<BulkEditRow> {
        checked_ops(&spec.operations)?;
        if spec.push && actor.role < Role::Admin {
            return Err(StoreError::invalid(
                "push",
                "only an admin may push a bulk edit without review",
            ));
        }
        self.shop(shop_id).await?;
        let ids = self.selected(shop_id, &spec.selection).await?;
        let queue = QueueName::new(crate::QUEUE)
            .map_err(|e| StoreError::invalid("queue", e.to_string()))?;
        let mut stored = spec.clone();
        if stored.selection.ids.is_some() {
            // The ids are in the jobs; the row keeps how many.
            stored.selection.ids = None;
        }
        let mut tx = self.pool().begin().await?;
        let id = store::insert_bulk_edit(
            &mut tx,
            shop_id,
            &actor.name,
            &json!(stored),
            ids.len() as i64,
        )
        .await?;
        let jobs: Vec<NewJob> = ids
            .chunks(CHUNK)
            .map(|chunk| {
                NewJob::new(
                    queue.clone(),
                    BULK_EDIT,
                    json!(BulkChunkArgs {
                        bulk_edit_id: id,
                        product_ids: chunk.to_vec(),
                    }),
                )
            })
            .collect();
        let callback = BatchCallback {
            queue: queue.clone(),
            kind: BULK_EDIT_DONE.to_owned(),
            args: json!(BulkEditRef { bulk_edit_id: id }),
        };
        let batch = self
            .front()
            .create_batch_in(&mut tx, &format!("bulk edit {id}"), &jobs, Some(&callback))
            .await?;
        store::set_bulk_edit_batch(&mut tx, id, batch).await?;
        let recorded = self
            .front()
            .record(
                &mut tx,
                actor,
                "bulk_edit.start",
                Some(format!("shop:{shop_id}")),
                json!({ "bulk_edit_id": id, "batch_id": batch, "products": ids.len(),
                        "operations": spec.operations, "push": spec.push }),
            )
            .await?;
        recorded.commit(tx).await?;
        if jobs.is_empty() {
            let mut conn = self.pool().acquire().await?;
            store::finish_bulk_edit(&mut conn, id, "completed").await?;
        }
        self.bulk_edit(id).await
    }

    pub async fn bulk_edit(&self, id: i64) -> Result<BulkEditRow> {
        store::get_bulk_edit(self.pool(), id)
            .await?
            .ok_or_else(|| StoreError::not_found(format!("bulk edit {id}")))
    }

    pub async fn bulk_edits(&self, shop_id: i64, limit: i64) -> Result<Vec<BulkEditRow>> {
        store::list_bulk_edits(self.pool(), shop_id, limit).await
    }
}

/// A chunk of a bulk edit: its changes staged (and approved, for a push) in the transaction that
/// completes the job.
pub(crate) async fn run_chunk(
    cat: Catalog,
    args: BulkChunkArgs,
    job: JobMeta,
) -> std::result::Result<(), BoxDynError> {
    let Some(edit) = store::get_bulk_edit(cat.pool(), args.bulk_edit_id).await? else {
        return Ok(());
    };
    if edit.state != "running" {
        return Ok(());
    }
    let spec: BulkEditSpec =
        serde_json::from_value(edit.spec.clone()).map_err(JobError::permanent)?;
    let ops = checked_ops(&spec.operations).map_err(JobError::permanent)?;
    let rows = cat.with_variants(edit.shop_id, &args.product_ids).await?;
    let (mut edits, mut errors, mut skipped) = (Vec::new(), Vec::new(), 0i64);
    for (p, vs) in &rows {
        match apply(&ops, p, vs) {
            Ok(mut e) => edits.append(&mut e),
            Err(e) => {
                skipped += 1;
                errors.push(json!({ "product_id": p.id.to_string(), "error": e }));
            }
        }
    }
    let changes = Targets::of(rows).staged(&edits, &|_| String::new())?;
    let mut tx = cat.pool().begin().await?;
    let ids = store::insert_changes(
        &mut tx,
        edit.shop_id,
        ChangeOrigin {
            author: &edit.author,
            source: "bulk_edit",
            source_id: Some(edit.id),
        },
        &changes,
    )
    .await?;
    if spec.push && !ids.is_empty() {
        store::decide_changes(
            &mut tx,
            edit.shop_id,
            &ChangeFilter {
                ids: Some(ids.clone()),
                ..Default::default()
            },
            Decide {
                from: &ChangeState::from_states(ChangeState::Approved),
                to: ChangeState::Approved.as_str(),
                by: &edit.author,
                reason: Some(&format!("bulk edit {} with push", edit.id)),
                not_author: None,
            },
        )
        .await?;
        super::push::enqueue(&cat, &mut tx, edit.shop_id).await?;
    }
    store::record_bulk_chunk(
        &mut tx,
        edit.id,
        args.product_ids.len() as i64,
        ids.len() as i64,
        skipped,
        &Value::Array(errors),
    )
    .await?;
    job.complete_in_tx(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// The end of a bulk edit's batch: the bulk edit completes (or, when its batch was cancelled,
/// is cancelled).
pub(crate) async fn run_done(
    cat: Catalog,
    args: BulkDoneArgs,
) -> std::result::Result<(), BoxDynError> {
    let Some(edit) = store::get_bulk_edit(cat.pool(), args.args.bulk_edit_id).await? else {
        return Ok(());
    };
    let cancelled = cat
        .front()
        .batch(args.batch_id)
        .await?
        .cancelled_at
        .is_some();
    let state = if cancelled { "cancelled" } else { "completed" };
    // The end and its notice commit together: a retry after a crash finds it ended and
    // notified, never ended and silent.
    let mut tx = cat.pool().begin().await?;
    if let Some(edit) = store::finish_bulk_edit(&mut tx, edit.id, state).await?
        && let Some(shop) = store::get_shop(cat.pool(), edit.shop_id).await?
    {
        let notice = Notice {
            topic: "bulk_edit.finished",
            subject: format!(
                "Bulk edit {} of {} {state}: {} changes staged{}",
                edit.id,
                shop.name,
                edit.changes,
                if edit.skipped > 0 {
                    format!(", {} products skipped", edit.skipped)
                } else {
                    String::new()
                }
            ),
            text: format!(
                "Bulk edit {} of shop {} by {} {state}.\n\nProducts selected: {}\nChanges staged: {}\nProducts skipped: {}\n\nReview them with source=bulk_edit&source_id={}.\n",
                edit.id, shop.name, edit.author, edit.products, edit.changes, edit.skipped, edit.id
            ),
            data: json!({ "bulk_edit_id": edit.id, "shop_id": shop.id, "state": state,
                          "products": edit.products, "changes": edit.changes, "skipped": edit.skipped }),
        };
        cat.notify(&mut tx, &shop.name, &notice).await?;
    }
    tx.commit().await?;
    Ok(())
}
