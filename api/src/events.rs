//! Live events: every API instance LISTENs on the `cowans_events` channel and fans what arrives
//! out to its subscribers, as Server-Sent Events or over a WebSocket, so any instance serves any
//! client. Publishers: the leader (`batch.progress`, `batch.finished`; `job.dead` from the
//! rescuer), every worker's ack flush (`job.dead`), the cancel and retry statements
//! (`job.cancelled`, `job.retried`) and the API's pause/resume (`queue.paused`,
//! `queue.resumed`). Completions are not announced one by one (that would be a NOTIFY per job at
//! tens of thousands a second); batches and the queue gauges carry progress.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::{
        Query, State,
        ws::{Message, WebSocket, WebSocketUpgrade},
    },
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

/// The next event for this subscriber: a matching one, or `{"type": "lagged", "missed": n}`
/// when a slow client fell behind; `None` once the relay is gone.
async fn next_event(rx: &mut broadcast::Receiver<Value>, filter: &EventFilter) -> Option<Value> {
    loop {
        match rx.recv().await {
            Ok(e) if filter.matches(&e) => return Some(e),
            Ok(_) => continue,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                return Some(serde_json::json!({ "type": "lagged", "missed": n }));
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        }
    }
}

fn filter_from(
    query: Result<Query<EventFilter>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<EventFilter> {
    query.map(|Query(f)| f).map_err(crate::routes::query_error)
}

/// `GET /api/v1/events?queue=&batch=` (viewer): Server-Sent Events, one `data:` JSON per event,
/// the event's `type` as the SSE event name.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(("queue" = Option<String>, Query), ("batch" = Option<i64>, Query)),
    responses((status = 200, description = "text/event-stream: batch.progress, batch.finished, job.dead, job.cancelled, job.retried, queue.paused, queue.resumed, lagged")), security(("api_key" = [])), description = "Role: viewer")]
pub async fn sse(
    State(state): State<ApiState>,
    who: Principal,
    query: Result<Query<EventFilter>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    who.require(Role::Viewer)?;
    let filter = filter_from(query)?;
    let rx = state.events.subscribe();
    let stream = futures::stream::unfold((rx, filter), |(mut rx, filter)| async move {
        let e = next_event(&mut rx, &filter).await?;
        let name = e["type"].as_str().unwrap_or("event").to_owned();
        let event = Event::default().event(name).data(e.to_string());
        Some((Ok(event), (rx, filter)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// `GET /api/v1/events/ws?queue=&batch=` (viewer): the same events over a WebSocket, one JSON
/// text message per event. Pinged every 15 s; closing the socket ends the subscription.
#[utoipa::path(get, path = "/api/v1/events/ws", tag = "events", params(("queue" = Option<String>, Query), ("batch" = Option<i64>, Query)),
    responses((status = 101, description = "WebSocket: one JSON text message per event ({type, ...})")), security(("api_key" = [])), description = "Role: viewer")]
pub async fn websocket(
    State(state): State<ApiState>,
    who: Principal,
    query: Result<Query<EventFilter>, axum::extract::rejection::QueryRejection>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> ApiResult<axum::response::Response> {
    who.require(Role::Viewer)?;
    let filter = filter_from(query)?;
    let upgrade = upgrade.map_err(|e| {
        ApiError::new(
            e.status(),
            "not_websocket",
            format!("{}; open this route as a WebSocket", e.body_text()),
        )
    })?;
    let rx = state.events.subscribe();
    Ok(upgrade.on_upgrade(move |socket| relay_to_socket(socket, rx, filter)))
}

async fn relay_to_socket(
    mut socket: WebSocket,
    mut rx: broadcast::Receiver<Value>,
    filter: EventFilter,
) {
    let mut ping = tokio::time::interval(Duration::from_secs(15));
    ping.tick().await;
    loop {
        let sent = tokio::select! {
            e = next_event(&mut rx, &filter) => match e {
                Some(e) => socket.send(Message::Text(e.to_string().into())).await,
                None => break,
            },
            _ = ping.tick() => socket.send(Message::Ping(Default::default())).await,
            incoming = socket.recv() => match incoming {
                // Pongs and anything the client says are ignored; a close or error ends it.
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => Ok(()),
            },
        };
        if sent.is_err() {
            break;
        }
    }
}
