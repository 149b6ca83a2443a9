//! Live events: every API instance LISTENs on the `cowans_events` channel (batch progress from
//! the leader, queue changes from any API instance) and relays it as Server-Sent Events, so any
//! instance serves any client.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::{Query, State},
    response::sse::{Event, KeepAlive, Sse},
};
use futures::Stream;
use serde::Deserialize;
use serde_json::Value;
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;

use crate::{
    ApiState,
    auth::{Principal, Role},
    error::{ApiError, ApiResult},
};

/// Starts the relay: one LISTEN connection per API process, fanned out to subscribers.
pub fn start_relay(pool: cowans_store::PgPool) -> broadcast::Sender<Value> {
    let (tx, _) = broadcast::channel(1024);
    let sender = tx.clone();
    tokio::spawn(async move {
        loop {
            let mut listener = match PgListener::connect_with(&pool).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "event relay cannot connect; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Err(e) = listener.listen(cowans_store::EVENTS_CHANNEL).await {
                tracing::warn!(error = %e, "event relay cannot LISTEN; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            loop {
                match listener.recv().await {
                    Ok(n) => {
                        if let Ok(v) = serde_json::from_str::<Value>(n.payload()) {
                            // No subscribers is fine.
                            let _ = sender.send(v);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "event relay lost its connection; reconnecting");
                        break;
                    }
                }
            }
        }
    });
    tx
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventFilter {
    pub queue: Option<String>,
    pub batch: Option<i64>,
}

impl EventFilter {
    fn matches(&self, e: &Value) -> bool {
        self.batch.is_none_or(|b| e["batch_id"].as_i64() == Some(b))
            && self
                .queue
                .as_deref()
                .is_none_or(|q| e["queue"].as_str() == Some(q))
    }
}

/// `GET /api/v1/events?queue=&batch=` (viewer): Server-Sent Events, one `data:` JSON per event,
/// the event's `type` as the SSE event name.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(("queue" = Option<String>, Query), ("batch" = Option<i64>, Query)),
    responses((status = 200, description = "text/event-stream: batch.progress, batch.finished, queue.paused, queue.resumed")), security(("api_key" = [])), description = "Role: viewer")]
pub async fn sse(
    State(state): State<ApiState>,
    who: Principal,
    query: Result<Query<EventFilter>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    who.require(Role::Viewer)?;
    let Query(filter) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let rx = state.events.subscribe();
    let stream = futures::stream::unfold((rx, filter), |(mut rx, filter)| async move {
        loop {
            match rx.recv().await {
                Ok(e) if filter.matches(&e) => {
                    let name = e["type"].as_str().unwrap_or("event").to_owned();
                    let event = Event::default().event(name).data(e.to_string());
                    return Some((Ok(event), (rx, filter)));
                }
                Ok(_) => continue,
                // A slow client missed some: tell it, and carry on.
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let event = Event::default()
                        .event("lagged")
                        .data(format!("{{\"missed\":{n}}}"));
                    return Some((Ok(event), (rx, filter)));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
