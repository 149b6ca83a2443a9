//! The one way the store tells the world something happened: wake-ups on `cowans_jobs` (for
//! producers and running handlers) and events on `cowans_events` (for the API's live streams).
//! Payloads are encoded by `cowans_core` (`Wakeup::encode`, serde for `Event`); no SQL builds
//! one.
//!
//! Sent on the caller's connection: inside a transaction they go out at commit, in order, and
//! never on rollback. That is why the functions that change state and announce it run both in
//! one transaction: a client sees a job's events in the order they happened.

use cowans_core::{EVENTS_CHANNEL, Event, WAKEUP_CHANNEL, Wakeup};
use sqlx::{PgConnection, Postgres, pool::PoolConnection};

use crate::Result;

/// Sends `wakeups` then `events`, in order, in one statement.
pub async fn announce(conn: &mut PgConnection, wakeups: &[Wakeup], events: &[Event]) -> Result<()> {
    if wakeups.is_empty() && events.is_empty() {
        return Ok(());
    }
    let n = wakeups.len() + events.len();
    let mut channels: Vec<&str> = Vec::with_capacity(n);
    let mut payloads: Vec<String> = Vec::with_capacity(n);
    for w in wakeups {
        channels.push(WAKEUP_CHANNEL);
        payloads.push(w.encode());
    }
    for e in events {
        channels.push(EVENTS_CHANNEL);
        payloads.push(e.to_json());
    }
    sqlx::query("SELECT count(pg_notify(c, p)) FROM unnest($1::text[], $2::text[]) AS n(c, p)")
        .bind(channels)
        .bind(payloads)
        .execute(conn)
        .await?;
    Ok(())
}

/// Wake-ups for a change that has already committed (an autocommit statement). A failure is
/// logged, not returned: the change stands (a caller retrying it could duplicate it), and
/// producers find the jobs at their next poll anyway.
pub(crate) async fn after_commit(conn: &mut PgConnection, wakeups: &[Wakeup]) {
    if let Err(e) = announce(conn, wakeups, &[]).await {
        tracing::warn!(error = %e, "could not send wake-ups; producers will poll");
    }
}

/// Like [`after_commit`], but sent by a task of its own on `conn`, which goes back to the pool
/// afterwards: the caller does not wait a second round trip for a wake-up once its change is
/// durable. For the enqueue call, whose callers wait on it (the API, handlers enqueueing more
/// work): its latency is the insert's. Should the process exit before the task runs, producers
/// find the jobs at their next poll.
pub(crate) fn after_commit_detached(mut conn: PoolConnection<Postgres>, wakeups: Vec<Wakeup>) {
    if wakeups.is_empty() {
        return;
    }
    tokio::spawn(async move { after_commit(&mut conn, &wakeups).await });
}

/// `Runnable` wake-ups for each distinct queue name, for jobs that became available again.
pub(crate) fn runnable<'a>(queues: impl IntoIterator<Item = &'a str>) -> Vec<Wakeup> {
    let mut seen: Vec<&str> = Vec::new();
    for q in queues {
        if !seen.contains(&q) {
            seen.push(q);
        }
    }
    seen.into_iter()
        .filter_map(|q| cowans_core::QueueName::new(q).ok())
        .map(|queue| Wakeup::Runnable { queue })
        .collect()
}
