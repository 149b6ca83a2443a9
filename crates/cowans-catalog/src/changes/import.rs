//! Imports: a CSV or JSON Lines file in the export's shape turned into staged changes, with a
//! result per row (staged, unchanged, or the error naming the field). A dry run records only
//! the report. Rows in error are skipped; the rest are staged in one transaction with the
//! import's report and audit entry, so an import is never half-staged.
//!
//! - CSV: the export's columns (an unknown column refuses the file). A row with a `Title` is its
//!   product's first row and proposes the product's columns (Handle, Title, Body (HTML), Vendor,
//!   Type, Tags, Status); a row with a `Variant ID` proposes its variant's (Variant SKU, Variant
//!   Barcode, Variant Price — an empty one is left alone —, Variant Compare At Price — empty
//!   removes it). Other columns (options, inventory, weights, dates) are read-only and ignored.
//! - JSON Lines: one product per line, shaped like the API's product (`id` required, fields to
//!   change, `variants: [{"id", …}]`, a variant's `inventory` as quantities by location);
//!   read-only keys are ignored, unknown keys are an error.

use std::collections::HashMap;

use cowans_core::Actor;
use cowans_queue::{StoreError, StoreResult as Result};
use cowans_store::catalog::{self as store, ChangeOrigin, ImportResult, ImportRow};
use serde_json::{Map, Value, json};

use super::Edit;
use crate::Catalog;

/// The most rows one import may have.
pub const MAX_ROWS: usize = 200_000;

/// A file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    Csv,
    Jsonl,
}

impl ImportFormat {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "csv" => Some(Self::Csv),
            "jsonl" => Some(Self::Jsonl),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Jsonl => "jsonl",
        }
    }
}

/// One row of a file: the edits it proposes, or why it cannot be read.
#[derive(Debug)]
struct FileRow {
    row: usize,
    product_id: Option<i64>,
    variant_id: Option<i64>,
    edits: std::result::Result<Vec<Edit>, String>,
}

const CSV_PRODUCT: &[(&str, &str)] = &[
    ("Handle", "handle"),
    ("Title", "title"),
    ("Body (HTML)", "description_html"),
    ("Vendor", "vendor"),
    ("Type", "product_type"),
    ("Tags", "tags"),
    ("Status", "status"),
];
const CSV_VARIANT: &[(&str, &str)] = &[
    ("Variant SKU", "sku"),
    ("Variant Barcode", "barcode"),
    ("Variant Price", "price"),
    ("Variant Compare At Price", "compare_at_price"),
];

/// A `kind` id (decimal or GID) named `what` in errors.
fn id_of(s: &str, kind: &str, what: &str) -> std::result::Result<i64, String> {
    crate::snapshot::shopify_id(s, kind).ok_or_else(|| format!("{what}: {s:?} is not an id"))
}

fn csv_rows(body: &[u8]) -> Result<Vec<FileRow>> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(body);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| StoreError::invalid("file", format!("the CSV header cannot be read: {e}")))?
        .iter()
        .map(str::to_owned)
        .collect();
    for h in &header {
        if !crate::export::HEADER.contains(&h.as_str()) {
            return Err(StoreError::invalid(
                "file",
                format!("unknown column {h:?}; the columns are the export's"),
            ));
        }
    }
    let col = |name: &str| header.iter().position(|h| h == name);
    let pid = col("Product ID")
        .ok_or_else(|| StoreError::invalid("file", "the column \"Product ID\" is required"))?;
    let vid = col("Variant ID");
    let title = col("Title");
    let mut rows = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let row = n + 1;
        if row > MAX_ROWS {
            return Err(StoreError::invalid(
                "file",
                format!("has more than {MAX_ROWS} rows; split it into several imports"),
            ));
        }
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                rows.push(FileRow {
                    row,
                    product_id: None,
                    variant_id: None,
                    edits: Err(format!("the row cannot be read: {e}")),
                });
                continue;
            }
        };
        let cell = |i: Option<usize>| i.and_then(|i| record.get(i)).unwrap_or("");
        let product_id = id_of(cell(Some(pid)), "Product", "Product ID");
        let variant_id = match cell(vid).trim() {
            "" => Ok(None),
            v => id_of(v, "ProductVariant", "Variant ID").map(Some),
        };
        let edits = match (product_id, variant_id) {
            (Ok(p), Ok(v)) => {
                let mut edits = Vec::new();
                if !cell(title).trim().is_empty() {
                    let fields: Map<String, Value> = CSV_PRODUCT
                        .iter()
                        .filter_map(|(c, f)| col(c).map(|i| (f.to_string(), json!(cell(Some(i))))))
                        .collect();
                    edits.push(Edit {
                        product_id: p,
                        variant_id: None,
                        fields,
                    });
                }
                if let Some(v) = v {
                    let fields: Map<String, Value> = CSV_VARIANT
                        .iter()
                        .filter_map(|(c, f)| col(c).map(|i| (*f, cell(Some(i)))))
                        .filter(|(f, v)| !(*f == "price" && v.trim().is_empty()))
                        .map(|(f, v)| (f.to_owned(), json!(v)))
                        .collect();
                    if !fields.is_empty() {
                        edits.push(Edit {
                            product_id: p,
                            variant_id: Some(v),
                            fields,
                        });
                    }
                }
                Ok(edits)
            }
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        rows.push(FileRow {
            row,
            product_id: id_of(cell(Some(pid)), "Product", "").ok(),
            variant_id: id_of(cell(vid), "ProductVariant", "").ok(),
            edits,
        });
    }
    Ok(rows)
}

/// Keys of the API's product and variant shapes an import ignores (nothing to propose there).
const JSON_READ_ONLY: &[&str] = &[
    "gid",
    "options",
    "shopify_updated_at",
    "shopify_created_at",
    "synced_at",
    "deleted_at",
];
const JSON_VARIANT_READ_ONLY: &[&str] = &[
    "gid",
    "title",
    "position",
    "inventory_quantity",
    "inventory_item_id",
    "weight",
    "weight_unit",
    "options",
];

fn json_id(v: Option<&Value>, kind: &str, what: &str) -> std::result::Result<i64, String> {
    match v {
        Some(Value::String(s)) => id_of(s, kind, what),
        Some(Value::Number(n)) => n
            .as_i64()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{what}: {n} is not an id")),
        _ => Err(format!("{what} is required (a decimal string)")),
    }
}

fn json_line(line: &str) -> (Option<i64>, std::result::Result<Vec<Edit>, String>) {
    let mut obj: Map<String, Value> = match serde_json::from_str(line) {
        Ok(Value::Object(o)) => o,
        Ok(_) => return (None, Err("the line is not a JSON object".into())),
        Err(e) => return (None, Err(format!("the line is not JSON: {e}"))),
    };
    let pid = match json_id(obj.remove("id").as_ref(), "Product", "id") {
        Ok(p) => p,
        Err(e) => return (None, Err(e)),
    };
    let variants = obj.remove("variants");
    obj.retain(|k, _| !JSON_READ_ONLY.contains(&k.as_str()));
    let mut edits = Vec::new();
    if !obj.is_empty() {
        edits.push(Edit {
            product_id: pid,
            variant_id: None,
            fields: obj,
        });
    }
    match variants {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for (i, v) in list.into_iter().enumerate() {
                let Value::Object(mut v) = v else {
                    return (Some(pid), Err(format!("variants[{i}] is not an object")));
                };
                let vid = match json_id(
                    v.remove("id").as_ref(),
                    "ProductVariant",
                    &format!("variants[{i}].id"),
                ) {
                    Ok(id) => id,
                    Err(e) => return (Some(pid), Err(e)),
                };
                // `inventory: null` (levels never read) is what an export says; not a proposal.
                v.retain(|k, x| {
                    let ignored = JSON_VARIANT_READ_ONLY.contains(&k.as_str())
                        || (k == "inventory" && x.is_null());
                    !ignored
                });
                if !v.is_empty() {
                    edits.push(Edit {
                        product_id: pid,
                        variant_id: Some(vid),
                        fields: v,
                    });
                }
            }
        }
        Some(_) => return (Some(pid), Err("variants must be a list".into())),
    }
    (Some(pid), Ok(edits))
}

fn jsonl_rows(body: &[u8]) -> Result<Vec<FileRow>> {
    let text =
        std::str::from_utf8(body).map_err(|_| StoreError::invalid("file", "is not UTF-8 text"))?;
    let mut rows = Vec::new();
    for (n, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        if n + 1 > MAX_ROWS {
            return Err(StoreError::invalid(
                "file",
                format!("has more than {MAX_ROWS} lines; split it into several imports"),
            ));
        }
        let (product_id, edits) = json_line(line);
        rows.push(FileRow {
            row: n + 1,
            product_id,
            variant_id: None,
            edits,
        });
    }
    Ok(rows)
}

impl Catalog {
    /// Imports `body` as staged changes of shop `shop_id` (only reports, for a `dry_run`).
    /// Returns the import and its first errors; the whole report is at [`import_results`].
    pub async fn import(
        &self,
        actor: &Actor,
        shop_id: i64,
        format: ImportFormat,
        body: &[u8],
        dry_run: bool,
    ) -> Result<(ImportRow, Vec<ImportResult>)> {
        self.shop(shop_id).await?;
        let rows = match format {
            ImportFormat::Csv => csv_rows(body)?,
            ImportFormat::Jsonl => jsonl_rows(body)?,
        };
        if rows.is_empty() {
            return Err(StoreError::invalid("file", "has no rows"));
        }
        // Every edit, with the row it came from; a target changed by two rows is an error on the
        // later one.
        let mut seen: HashMap<(i64, Option<i64>), usize> = HashMap::new();
        let mut results: Vec<ImportResult> = Vec::with_capacity(rows.len());
        let mut edits: Vec<Edit> = Vec::new();
        let mut edit_row: Vec<usize> = Vec::new();
        for r in rows {
            let mut result = ImportResult {
                row: i32::try_from(r.row).unwrap_or(i32::MAX),
                product_id: r.product_id,
                variant_id: r.variant_id,
                status: "unchanged".into(),
                error: None,
                change_id: None,
            };
            match r.edits {
                Err(e) => {
                    result.status = "error".into();
                    result.error = Some(e);
                }
                Ok(list) => {
                    // A target changed by an earlier row, or twice in this one.
                    let mut own = std::collections::HashSet::new();
                    let dup = list.iter().find_map(|e| {
                        let target = (e.product_id, e.variant_id);
                        seen.get(&target)
                            .copied()
                            .or_else(|| (!own.insert(target)).then_some(r.row))
                            .map(|row| (e, row))
                    });
                    if let Some((e, row)) = dup {
                        result.status = "error".into();
                        result.error = Some(match e.variant_id {
                            Some(v) => format!("variant {v} is changed by row {row} already"),
                            None => {
                                format!("product {} is changed by row {row} already", e.product_id)
                            }
                        });
                    } else {
                        for e in list {
                            seen.insert((e.product_id, e.variant_id), r.row);
                            edits.push(e);
                            edit_row.push(results.len());
                        }
                    }
                }
            }
            results.push(result);
        }
        // A row that proposes nothing must still name a product the catalog has.
        let with_edits: std::collections::HashSet<usize> = edit_row.iter().copied().collect();
        let idle: Vec<i64> = results
            .iter()
            .enumerate()
            .filter(|(i, r)| r.status == "unchanged" && !with_edits.contains(i))
            .filter_map(|(_, r)| r.product_id)
            .collect();
        if !idle.is_empty() {
            let known: std::collections::HashSet<i64> =
                store::products_by_id(self.pool(), shop_id, &idle)
                    .await?
                    .into_iter()
                    .filter(|p| p.deleted_at.is_none())
                    .map(|p| p.id)
                    .collect();
            for (i, r) in results.iter_mut().enumerate() {
                if r.status == "unchanged"
                    && !with_edits.contains(&i)
                    && let Some(p) = r.product_id
                    && !known.contains(&p)
                {
                    r.status = "error".into();
                    r.error = Some(format!(
                        "product_id: product {p} is not in the shop's catalog (or was deleted in Shopify)"
                    ));
                }
            }
        }
        let mut changes = Vec::new();
        let mut change_row = Vec::new();
        for (n, chunk) in edits.chunks(1000).enumerate() {
            let checked = self.check_each(shop_id, chunk, &|_| String::new()).await?;
            for (k, c) in checked.into_iter().enumerate() {
                let row = edit_row[n * 1000 + k];
                match c {
                    Ok(Some(change)) => {
                        changes.push(change);
                        change_row.push(row);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        results[row].status = "error".into();
                        results[row].error = Some(e.to_string());
                    }
                }
            }
        }
        // A row with an error stages nothing, even the part of it that was fine.
        let (mut staged_changes, mut staged_rows) = (Vec::new(), Vec::new());
        for (c, row) in changes.into_iter().zip(change_row) {
            if results[row].status != "error" {
                staged_changes.push(c);
                staged_rows.push(row);
            }
        }
        for row in &staged_rows {
            results[*row].status = "staged".into();
        }
        let mut tx = self.pool().begin().await?;
        let count = |s: &str| results.iter().filter(|r| r.status == s).count() as i64;
        let counts = [
            results.len() as i64,
            count("staged"),
            count("unchanged"),
            count("error"),
        ];
        let id = store::insert_import(
            &mut tx,
            shop_id,
            &actor.name,
            format.as_str(),
            dry_run,
            counts,
        )
        .await?;
        if !dry_run {
            let ids = store::insert_changes(
                &mut tx,
                shop_id,
                ChangeOrigin {
                    author: &actor.name,
                    source: "import",
                    source_id: Some(id),
                },
                &staged_changes,
            )
            .await?;
            for (row, change) in staged_rows.iter().zip(ids) {
                results[*row].change_id.get_or_insert(change);
            }
        }
        store::insert_import_rows(&mut tx, id, &results).await?;
        let recorded = self
            .front()
            .record(
                &mut tx,
                actor,
                "change.import",
                Some(format!("shop:{shop_id}")),
                json!({ "import_id": id, "format": format.as_str(), "dry_run": dry_run,
                        "rows": counts[0], "staged": counts[1], "errors": counts[3] }),
            )
            .await?;
        recorded.commit(tx).await?;
        let first_errors = results
            .into_iter()
            .filter(|r| r.status == "error")
            .take(100)
            .collect();
        let import = store::get_import(self.pool(), id)
            .await?
            .ok_or_else(|| StoreError::not_found(format!("import {id}")))?;
        Ok((import, first_errors))
    }

    /// An import of the shop.
    pub async fn import_record(&self, shop_id: i64, id: i64) -> Result<ImportRow> {
        store::get_import(self.pool(), id)
            .await?
            .filter(|i| i.shop_id == shop_id)
            .ok_or_else(|| StoreError::not_found(format!("import {id} of shop {shop_id}")))
    }

    /// A page of an import's row results after row `after`.
    pub async fn import_results(
        &self,
        shop_id: i64,
        id: i64,
        errors_only: bool,
        after: i32,
        limit: i64,
    ) -> Result<Vec<ImportResult>> {
        self.import_record(shop_id, id).await?;
        store::import_results(self.pool(), id, errors_only, after, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_propose_product_columns_on_the_first_row_and_variant_columns_on_each() {
        let csv = "Handle,Title,Vendor,Tags,Variant Price,Variant Compare At Price,Product ID,Variant ID,Variant Inventory Qty\n\
                   tee,Tee,Acme,\"a, b\",10.00,,7,70,5\n\
                   tee,,,,,12.00,7,71,\n\
                   ,,,,9,,x,72,\n";
        let rows = csv_rows(csv.as_bytes()).unwrap();
        assert_eq!(rows.len(), 3);
        let first = rows[0].edits.as_ref().unwrap();
        assert_eq!(first.len(), 2);
        assert_eq!(first[0].fields["title"], json!("Tee"));
        assert_eq!(first[0].fields["tags"], json!("a, b"));
        assert_eq!(first[1].variant_id, Some(70));
        assert_eq!(
            first[1].fields["compare_at_price"],
            json!(""),
            "empty removes it"
        );
        let second = rows[1].edits.as_ref().unwrap();
        assert_eq!(second.len(), 1, "no product columns without a title");
        assert!(
            !second[0].fields.contains_key("price"),
            "an empty price is left alone"
        );
        assert!(rows[2].edits.as_ref().unwrap_err().contains("Product ID"));
        let e = csv_rows(b"Product ID,Colour\n1,red\n").unwrap_err();
        assert!(e.to_string().contains("Colour"), "{e}");
        assert!(csv_rows(b"Title\nx\n").is_err(), "Product ID is required");
    }

    #[test]
    fn json_lines_name_what_is_wrong() {
        let (p, e) = json_line(
            r#"{"id": "7", "title": "T", "gid": "x", "variants": [{"id": 70, "price": "1", "weight": "2"}]}"#,
        );
        assert_eq!(p, Some(7));
        let e = e.unwrap();
        assert_eq!(e.len(), 2);
        assert!(
            !e[1].fields.contains_key("weight"),
            "read-only keys are ignored"
        );
        assert!(json_line("[1]").1.is_err());
        // Two edits of one variant in a line are caught by the import (`variant … row 1`).
        let (_, twice) = json_line(
            r#"{"id": "7", "variants": [{"id": "70", "price": "1"}, {"id": "70", "price": "2"}]}"#,
        );
        assert_eq!(twice.unwrap().len(), 2);
        assert!(
            json_line(r#"{"title": "no id"}"#)
                .1
                .unwrap_err()
                .contains("id")
        );
        assert!(
            json_line(r#"{"id": "7", "variants": [{"price": "1"}]}"#)
                .1
                .unwrap_err()
                .contains("variants[0].id")
        );
    }
}
