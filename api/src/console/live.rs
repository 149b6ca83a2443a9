//! The console's live event stream: the same events as `/api/v1/events`, as Server-Sent Events
//! authenticated by the session cookie (a browser cannot set `Authorization` on an
//! `EventSource` or a WebSocket). The stream ends when the session does; the browser's
//! reconnect then finds no session and stops.

use std::convert::Infallible;

use axum::{
    extract::State,
    response::sse::{Event as SseEvent, KeepAlive, Sse},
};
use futures::{Stream, StreamExt};

use super::session::Session;
use crate::ApiState;

pub async fn events(
    State(state): State<ApiState>,
    session: Session,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let left = (session.user.expires_at - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    let events = state.relay.subscribe();
    let stream = futures::stream::unfold(events, |mut events| async move {
        let e = events.next().await?;
        let sse = SseEvent::default().event(e.name()).data(e.to_json());
        Some((Ok(sse), events))
    })
    .take_until(tokio::time::sleep(left));
    Sse::new(stream).keep_alive(KeepAlive::default())
}
