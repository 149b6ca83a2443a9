//! The console's live event stream: the same events as `/api/v1/events`, as Server-Sent Events
//! authenticated by the session cookie (a browser cannot set `Authorization` on an
//! `EventSource` or a WebSocket). The stream ends when the session does — at its expiry, or
//! within [`RECHECK`] of a sign-out or its key's revocation; the browser's reconnect then finds
//! no session and stops.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::State,
    response::sse::{Event as SseEvent, KeepAlive, Sse},
};
use futures::{Stream, StreamExt};

use super::session::Session;
use crate::{
    ApiState,
    events::{EventFilter, sse_events},
};

/// How often a stream looks its session up again.
pub const RECHECK: Duration = Duration::from_secs(30);

/// Returns when the session `token` has ended (expired, signed out, its key revoked).
async fn ended(state: ApiState, token: String, expires_at: chrono::DateTime<chrono::Utc>) {
    loop {
        let left = (expires_at - chrono::Utc::now())
            .to_std()
            .unwrap_or_default();
        if left.is_zero() {
            return;
        }
        tokio::time::sleep(left.min(RECHECK)).await;
        // A database that does not answer ends nothing: the next look decides.
        if let Ok(None) = state.front.console_session(&token).await {
            return;
        }
    }
}

pub async fn events(
    State(state): State<ApiState>,
    session: Session,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let events = sse_events(state.relay.subscribe(), EventFilter::default());
    let end = ended(state, session.token, session.user.expires_at);
    let stream = events.take_until(Box::pin(end));
    Sse::new(stream).keep_alive(KeepAlive::default())
}
