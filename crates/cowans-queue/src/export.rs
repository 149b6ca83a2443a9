//! Streamed exports (CSV or JSON Lines) of anything read in keyset pages: jobs, dead letters,
//! the audit log, and applications' own records (the catalog's products). One page is in
//! memory at a time, so an export of any size runs in constant memory; a failure after the
//! first bytes ends the stream with an error (the client sees a truncated transfer, never a
//! short file that looks complete).

use std::future::Future;

use chrono::{DateTime, SecondsFormat, Utc};
use cowans_store::{AuditEntry, JobRecord, StoreError};
use futures::{Stream, stream};
use serde_json::{Value, json};

/// How an export is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// RFC 4180, a header row first.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl ExportFormat {
    /// `csv` or `jsonl` (`ndjson` too), case-insensitive.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(Self::Csv),
            "jsonl" | "ndjson" => Ok(Self::Jsonl),
            _ => Err(format!("is {s:?}; it must be csv or jsonl")),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Jsonl => "application/jsonl",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Jsonl => "jsonl",
        }
    }
}

/// Something an export writes: CSV rows under a fixed header, or one JSON line.
pub trait ExportRecord {
    /// The CSV header.
    fn header() -> &'static [&'static str];
    /// This record's CSV rows (usually one; a product writes one per variant).
    fn csv_rows(&self, rows: &mut Vec<Vec<String>>);
    /// This record as one JSON object.
    fn json(&self) -> Value;
}

/// An error while writing an export.
fn write_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::invalid("export", e.to_string())
}

/// Writes `records` in `format` (the header first when `header`).
pub fn encode<R: ExportRecord>(
    format: ExportFormat,
    records: &[R],
    header: bool,
) -> Result<Vec<u8>, StoreError> {
    match format {
        ExportFormat::Csv => {
            let mut w = csv::WriterBuilder::new()
                .flexible(false)
                .from_writer(Vec::with_capacity(records.len() * 256));
            if header {
                w.write_record(R::header()).map_err(write_error)?;
            }
            let mut rows = Vec::new();
            for r in records {
                rows.clear();
                r.csv_rows(&mut rows);
                for row in &rows {
                    w.write_record(row).map_err(write_error)?;
                }
            }
            w.into_inner().map_err(write_error)
        }
        ExportFormat::Jsonl => {
            let mut out = Vec::with_capacity(records.len() * 512);
            for r in records {
                serde_json::to_writer(&mut out, &r.json()).map_err(write_error)?;
                out.push(b'\n');
            }
            Ok(out)
        }
    }
}

/// The export of every page `next_page` yields, starting from no cursor and continuing with
/// the cursor each page hands back until it hands back none. Yields one chunk per page.
pub fn export_pages<R, F, Fut>(
    format: ExportFormat,
    next_page: F,
) -> impl Stream<Item = Result<Vec<u8>, StoreError>> + Send + 'static
where
    R: ExportRecord + Send + 'static,
    F: FnMut(Option<i64>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(Vec<R>, Option<i64>), StoreError>> + Send + 'static,
{
    // (next page's cursor, whether the header is written, no more pages)
    stream::try_unfold(
        (next_page, None::<i64>, false, false),
        move |(mut next_page, cursor, started, done)| async move {
            if done {
                return Ok(None);
            }
            let (records, next) = next_page(cursor).await?;
            let chunk = encode(format, &records, !started)?;
            Ok(Some((chunk, (next_page, next, true, next.is_none()))))
        },
    )
}

/// The cursor after a page of `limit` keyed by `key`: the last key when the page is full.
pub fn next_cursor<T>(page: &[T], limit: i64, key: impl Fn(&T) -> i64) -> Option<i64> {
    (page.len() as i64 >= limit)
        .then(|| page.last().map(key))
        .flatten()
}

/// RFC 3339 in UTC with microseconds, as the API answers times.
pub fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn opt_time(t: Option<&DateTime<Utc>>) -> String {
    t.map(time).unwrap_or_default()
}

impl ExportRecord for JobRecord {
    fn header() -> &'static [&'static str] {
        &[
            "id",
            "queue",
            "kind",
            "state",
            "priority",
            "attempt",
            "max_attempts",
            "run_at",
            "created_at",
            "attempted_at",
            "finalized_at",
            "unique_key",
            "batch_id",
            "last_error",
            "args",
        ]
    }

    fn csv_rows(&self, rows: &mut Vec<Vec<String>>) {
        rows.push(vec![
            self.id.0.to_string(),
            self.queue.clone(),
            self.kind.clone(),
            self.state.to_string(),
            self.priority.to_string(),
            self.attempt.to_string(),
            self.max_attempts.to_string(),
            time(&self.run_at),
            time(&self.created_at),
            opt_time(self.attempted_at.as_ref()),
            opt_time(self.finalized_at.as_ref()),
            self.unique_key.clone().unwrap_or_default(),
            self.batch_id.map(|b| b.to_string()).unwrap_or_default(),
            self.errors
                .last()
                .map(|e| e.error.clone())
                .unwrap_or_default(),
            self.args.to_string(),
        ]);
    }

    fn json(&self) -> Value {
        json!({
            "id": self.id.0,
            "queue": self.queue,
            "kind": self.kind,
            "args": self.args,
            "state": self.state,
            "priority": self.priority,
            "attempt": self.attempt,
            "max_attempts": self.max_attempts,
            "run_at": time(&self.run_at),
            "created_at": time(&self.created_at),
            "attempted_at": self.attempted_at.as_ref().map(time),
            "finalized_at": self.finalized_at.as_ref().map(time),
            "errors": self.errors,
            "unique_key": self.unique_key,
            "batch_id": self.batch_id,
        })
    }
}

impl ExportRecord for AuditEntry {
    fn header() -> &'static [&'static str] {
        &[
            "id",
            "at",
            "actor",
            "role",
            "action",
            "target",
            "client_addr",
            "details",
        ]
    }

    fn csv_rows(&self, rows: &mut Vec<Vec<String>>) {
        rows.push(vec![
            self.id.to_string(),
            time(&self.at),
            self.actor.clone(),
            self.role.clone(),
            self.action.clone(),
            self.target.clone().unwrap_or_default(),
            self.client_addr.clone().unwrap_or_default(),
            self.details.to_string(),
        ]);
    }

    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "at": time(&self.at),
            "actor": self.actor,
            "role": self.role,
            "action": self.action,
            "target": self.target,
            "client_addr": self.client_addr,
            "details": self.details,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Row(&'static str, i64);

    impl ExportRecord for Row {
        fn header() -> &'static [&'static str] {
            &["name", "n"]
        }
        fn csv_rows(&self, rows: &mut Vec<Vec<String>>) {
            rows.push(vec![self.0.to_owned(), self.1.to_string()]);
        }
        fn json(&self) -> Value {
            json!({"name": self.0, "n": self.1})
        }
    }

    #[tokio::test]
    async fn pages_stream_with_one_header_and_quoting() {
        use futures::TryStreamExt;
        let pages = export_pages(ExportFormat::Csv, |cursor| async move {
            Ok(match cursor {
                None => (vec![Row("a, \"quoted\"", 1), Row("b\nline", 2)], Some(2)),
                Some(2) => (vec![Row("c", 3)], None),
                Some(_) => unreachable!("no third page"),
            })
        });
        let chunks: Vec<Vec<u8>> = pages.try_collect().await.unwrap();
        assert_eq!(chunks.len(), 2);
        let text = String::from_utf8(chunks.concat()).unwrap();
        assert_eq!(
            text,
            "name,n\n\"a, \"\"quoted\"\"\",1\n\"b\nline\",2\nc,3\n"
        );

        let lines = encode(ExportFormat::Jsonl, &[Row("x", 1), Row("y", 2)], true).unwrap();
        let lines: Vec<Value> = String::from_utf8(lines)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines,
            [json!({"name": "x", "n": 1}), json!({"name": "y", "n": 2})]
        );
    }

    #[test]
    fn formats_are_named() {
        assert_eq!(ExportFormat::parse("CSV"), Ok(ExportFormat::Csv));
        assert_eq!(ExportFormat::parse("ndjson"), Ok(ExportFormat::Jsonl));
        assert!(
            ExportFormat::parse("xml")
                .unwrap_err()
                .contains("csv or jsonl")
        );
    }
}
