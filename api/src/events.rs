//! Live events over HTTP: the process's [`cowans_queue::EventRelay`] fanned out as Server-Sent
//! Events or over a WebSocket, filtered per client. The events themselves are
//! [`cowans_core::Event`]; their JSON Schema is served at `/api/v1/events/schema.json` and
//! included in the OpenAPI document.

use std::{convert::Infallible, time::Duration};

use axum::{
    Json,
    extract::{
        Query, State,
        ws::{Message, WebSocket, WebSocketUpgrade},
    },
    response::sse::{Event as SseEvent, KeepAlive, Sse},
};
use cowans_core::{Event, Role};
use cowans_queue::EventStream;
use futures::Stream;
use serde::Deserialize;

use crate::{
    ApiState,
    auth::Principal,
    error::{ApiError, ApiResult, ErrorBody},
};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventFilter {
    pub queue: Option<String>,
    pub batch: Option<i64>,
}

impl EventFilter {
    fn matches(&self, e: &Event) -> bool {
        // A subscriber that fell behind is always told.
        matches!(e, Event::Lagged { .. })
            || (self.batch.is_none_or(|b| e.batch_id() == Some(b))
                && self.queue.as_deref().is_none_or(|q| e.queue() == Some(q)))
    }
}

/// The next event for this subscriber, `None` once the relay is gone.
async fn next_event(events: &mut EventStream, filter: &EventFilter) -> Option<Event> {
    loop {
        let e = events.next().await?;
        if filter.matches(&e) {
            return Some(e);
        }
    }
}

fn filter_from(
    query: Result<Query<EventFilter>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<EventFilter> {
    query.map(|Query(f)| f).map_err(crate::routes::query_error)
}

/// `GET /api/v1/events?queue=&batch=` (viewer): Server-Sent Events, one `data:` JSON per event
/// (see the `Event` schema), the event's `type` as the SSE event name.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(("queue" = Option<String>, Query), ("batch" = Option<i64>, Query)),
    responses((status = 200, description = "text/event-stream of Event (batch.progress, batch.finished, job.dead, job.cancelled, job.retried, dead.redriven, dead.purged, queue.paused, queue.resumed, queue.limits, lagged)", content_type = "text/event-stream", body = String),
        (status = 422, body = ErrorBody)), security(("api_key" = [])), description = "Role: viewer")]
pub async fn sse(
    State(state): State<ApiState>,
    who: Principal,
    query: Result<Query<EventFilter>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    who.require(Role::Viewer)?;
    let filter = filter_from(query)?;
    Ok(Sse::new(sse_events(state.relay.subscribe(), filter)).keep_alive(KeepAlive::default()))
}

/// `events` that pass `filter` as Server-Sent Events (the event's `type` as the SSE event
/// name, its JSON as the data): the API's stream and the console's.
pub(crate) fn sse_events(
    events: EventStream,
    filter: EventFilter,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    futures::stream::unfold((events, filter), |(mut events, filter)| async move {
        let e = next_event(&mut events, &filter).await?;
        let sse = SseEvent::default().event(e.name()).data(e.to_json());
        Some((Ok(sse), (events, filter)))
    })
}

/// `GET /api/v1/events/ws?queue=&batch=` (viewer): the same events over a WebSocket, one JSON
/// text message per event. Pinged every 15 s; closing the socket ends the subscription.
#[utoipa::path(get, path = "/api/v1/events/ws", tag = "events", params(("queue" = Option<String>, Query), ("batch" = Option<i64>, Query)),
    responses((status = 101, description = "Switching to WebSocket: one JSON text message per Event"),
        (status = 422, body = ErrorBody), (status = 426, description = "Not a WebSocket upgrade", body = ErrorBody)), security(("api_key" = [])), description = "Role: viewer")]
pub async fn websocket(
    State(state): State<ApiState>,
    who: Principal,
    query: Result<Query<EventFilter>, axum::extract::rejection::QueryRejection>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> ApiResult<axum::response::Response> {
    who.require(Role::Viewer)?;
    let filter = filter_from(query)?;
    let upgrade = upgrade.map_err(|e| {
        ApiError::NotWebSocket(format!("{}; open this route as a WebSocket", e.body_text()))
    })?;
    let events = state.relay.subscribe();
    Ok(upgrade.on_upgrade(move |socket| relay_to_socket(socket, events, filter)))
}

/// `GET /api/v1/events/schema.json` (public): the JSON Schema of every event.
#[utoipa::path(get, path = "/api/v1/events/schema.json", tag = "events",
    responses((status = 200, description = "JSON Schema (draft 2020-12) of Event", body = Object)))]
pub async fn schema() -> Json<serde_json::Value> {
    Json(Event::schema())
}

async fn relay_to_socket(mut socket: WebSocket, mut events: EventStream, filter: EventFilter) {
    let mut ping = tokio::time::interval(Duration::from_secs(15));
    ping.tick().await;
    loop {
        let sent = tokio::select! {
            e = next_event(&mut events, &filter) => match e {
                Some(e) => socket.send(Message::Text(e.to_json().into())).await,
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
