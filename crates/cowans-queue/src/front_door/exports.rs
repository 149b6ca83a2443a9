//! Streamed exports of jobs, dead letters and the audit log (see [`crate::export`]).

use cowans_core::JobId;
use cowans_store::{DeadLetterFilter, JobFilter, StoreError};
use futures::Stream;

use super::FrontDoor;
use crate::export::{ExportFormat, export_pages, next_cursor};

/// Rows read per page of an export.
const PAGE: i64 = 1000;

/// A streamed export: chunks of CSV or JSON Lines.
pub type ExportStream = std::pin::Pin<Box<dyn Stream<Item = Result<Vec<u8>, StoreError>> + Send>>;

impl FrontDoor {
    /// Every job matching `filter`, in id order (from the queue's backend).
    pub fn export_jobs(&self, filter: JobFilter, format: ExportFormat) -> ExportStream {
        let door = self.clone();
        Box::pin(export_pages(format, move |after| {
            let (door, filter) = (door.clone(), filter.clone());
            async move {
                let page = door.jobs(&filter, after.map(JobId), PAGE).await?;
                let next = next_cursor(&page, PAGE, |j| j.id.0);
                Ok((page, next))
            }
        }))
    }

    /// Every dead letter matching `filter`, oldest id first.
    pub fn export_dead(&self, filter: DeadLetterFilter, format: ExportFormat) -> ExportStream {
        let door = self.clone();
        Box::pin(export_pages(format, move |after| {
            let (door, filter) = (door.clone(), filter.clone());
            async move {
                let page = door.dead_letters(&filter, after.map(JobId), PAGE).await?;
                let next = next_cursor(&page, PAGE, |j| j.id.0);
                Ok((page, next))
            }
        }))
    }

    /// The whole audit log, newest first.
    pub fn export_audit(&self, format: ExportFormat) -> ExportStream {
        let pool = self.inner.pool.clone();
        Box::pin(export_pages(format, move |before| {
            let pool = pool.clone();
            async move {
                let page = cowans_store::list_audit(&pool, before, PAGE).await?;
                let next = next_cursor(&page, PAGE, |e| e.id);
                Ok((page, next))
            }
        }))
    }
}
