//! Error tracking: failed attempts grouped by kind and error pattern
//! ([`cowans_core::error_groups`]), counted, with first and last sighting and the latest
//! example (job, queue, message).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cowans_core::{Event, JobId, error_groups};
use sqlx::PgPool;

use crate::Result;

/// One failed attempt to record.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorSample {
    pub queue: String,
    pub kind: String,
    pub job: JobId,
    pub error: String,
}

/// A group of failures of one kind sharing an error pattern.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ErrorGroup {
    pub id: i64,
    pub kind: String,
    pub pattern: String,
    pub class: String,
    pub count: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    #[sqlx(try_from = "i64")]
    pub last_job_id: JobId,
    pub last_queue: String,
    /// The latest occurrence's message, cut to 1,000 characters.
    pub last_error: String,
}

/// Postgres text cannot hold `\0`.
fn storable(s: &str) -> String {
    s.replace('\0', "\u{fffd}")
}

/// Adds `samples` to their groups (one statement; the last sample of a group is its example).
/// Rows are written in `(kind, pattern)` order, so two writers never deadlock on two groups.
pub async fn record_errors(pool: &PgPool, samples: &[ErrorSample]) -> Result<()> {
    if samples.is_empty() {
        return Ok(());
    }
    let mut groups: BTreeMap<(String, String), (i64, &ErrorSample)> = BTreeMap::new();
    for s in samples {
        let key = (
            storable(&s.kind),
            storable(&error_groups::pattern(&s.error)),
        );
        let g = groups.entry(key).or_insert((0, s));
        g.0 += 1;
        g.1 = s;
    }
    let n = groups.len();
    let (mut kinds, mut patterns, mut classes, mut counts) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut jobs, mut queues, mut errors) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for ((kind, pattern), (count, last)) in groups {
        kinds.push(kind);
        patterns.push(pattern);
        classes.push(error_groups::class(&last.error));
        counts.push(count);
        jobs.push(last.job.0);
        queues.push(storable(&last.queue));
        errors.push(storable(&Event::short_error(&last.error)));
    }
    sqlx::query(
        "INSERT INTO cowans_error_groups \
           (kind, pattern, class, count, last_job_id, last_queue, last_error) \
         SELECT k, p, c, n, j, q, e FROM unnest($1::text[], $2::text[], $3::text[], \
             $4::bigint[], $5::bigint[], $6::text[], $7::text[]) WITH ORDINALITY \
             AS t(k, p, c, n, j, q, e, o) ORDER BY o \
         ON CONFLICT (kind, pattern) DO UPDATE SET \
           count = cowans_error_groups.count + excluded.count, last_seen = now(), \
           class = excluded.class, last_job_id = excluded.last_job_id, \
           last_queue = excluded.last_queue, last_error = excluded.last_error",
    )
    .bind(kinds)
    .bind(patterns)
    .bind(classes)
    .bind(counts)
    .bind(jobs)
    .bind(queues)
    .bind(errors)
    .execute(pool)
    .await?;
    Ok(())
}

/// The groups seen most recently first (of `kind` and `class` when given), at most `limit`.
pub async fn list_error_groups(
    pool: &PgPool,
    kind: Option<&str>,
    class: Option<&str>,
    limit: i64,
) -> Result<Vec<ErrorGroup>> {
    Ok(sqlx::query_as(
        "SELECT id, kind, pattern, class, count, first_seen, last_seen, last_job_id, last_queue, \
                last_error \
         FROM cowans_error_groups \
         WHERE ($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR class = $2) \
         ORDER BY last_seen DESC, id DESC LIMIT $3",
    )
    .bind(kind)
    .bind(class)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Deletes the groups not seen for `older_than`; how many.
pub(crate) async fn prune_error_groups(
    pool: &PgPool,
    older_than: std::time::Duration,
) -> Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM cowans_error_groups WHERE last_seen < now() - $1 * interval '1 millisecond'",
    )
    .bind(older_than.as_millis() as f64)
    .execute(pool)
    .await?
    .rows_affected())
}
