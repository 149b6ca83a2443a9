//! The event relay: one LISTEN on `cowans_events` per process, fanned out to any number of
//! subscribers (the API's SSE and WebSocket clients, the console). Any instance relays every
//! event, whoever published it.

use std::time::Duration;

use cowans_core::{EVENTS_CHANNEL, Event};
use sqlx::{PgPool, postgres::PgListener};
use tokio::{
    sync::{broadcast, watch},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

/// Events buffered per subscriber; a subscriber further behind gets [`Event::Lagged`].
const BACKLOG: usize = 1024;

/// A running relay. [`EventRelay::ready`] resolves once it listens; [`EventRelay::shutdown`]
/// stops it (subscribers then see the end of their stream).
pub struct EventRelay {
    /// `None` once stopped: with the last sender gone, every subscriber's stream ends.
    tx: std::sync::Mutex<Option<broadcast::Sender<Event>>>,
    listening: watch::Receiver<bool>,
    stop: CancellationToken,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl EventRelay {
    /// Starts relaying (call inside a Tokio runtime). Reconnects on its own when the connection
    /// drops; events published meanwhile are lost (events are live only).
    pub(crate) fn start(pool: PgPool) -> Self {
        let (tx, _) = broadcast::channel(BACKLOG);
        let (set_listening, listening) = watch::channel(false);
        let stop = CancellationToken::new();
        let task = tokio::spawn(relay(pool, tx.clone(), set_listening, stop.clone()));
        Self {
            tx: std::sync::Mutex::new(Some(tx)),
            listening,
            stop,
            task: std::sync::Mutex::new(Some(task)),
        }
    }

    /// A new subscriber: every event from now on (nothing, and an ended stream, once the relay
    /// stopped).
    pub fn subscribe(&self) -> EventStream {
        let rx = match &*self.tx.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(tx) => tx.subscribe(),
            None => broadcast::channel(1).1,
        };
        EventStream { rx }
    }

    /// Resolves once the relay listens (events published from then on reach subscribers).
    pub async fn ready(&self) {
        let mut listening = self.listening.clone();
        let _ = listening.wait_for(|l| *l).await;
    }

    /// Stops relaying; every subscriber's stream ends.
    pub async fn shutdown(&self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.stop.cancel();
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

/// One subscriber's events.
pub struct EventStream {
    rx: broadcast::Receiver<Event>,
}

impl EventStream {
    /// The next event; [`Event::Lagged`] when this subscriber fell behind; `None` once the relay
    /// stopped.
    pub async fn next(&mut self) -> Option<Event> {
        match self.rx.recv().await {
            Ok(e) => Some(e),
            Err(broadcast::error::RecvError::Lagged(missed)) => Some(Event::Lagged { missed }),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

async fn relay(
    pool: PgPool,
    tx: broadcast::Sender<Event>,
    listening: watch::Sender<bool>,
    stop: CancellationToken,
) {
    loop {
        let connected = tokio::select! {
            _ = stop.cancelled() => return,
            l = connect(&pool) => l,
        };
        let mut listener = match connected {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "event relay cannot listen; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        listening.send_replace(true);
        loop {
            let received = tokio::select! {
                _ = stop.cancelled() => return,
                n = listener.recv() => n,
            };
            match received {
                Ok(n) => match serde_json::from_str::<Event>(n.payload()) {
                    // No subscribers is fine.
                    Ok(e) => drop(tx.send(e)),
                    Err(e) => {
                        tracing::debug!(error = %e, "ignoring an event this version does not know")
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "event relay lost its connection; reconnecting");
                    break;
                }
            }
        }
    }
}

async fn connect(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut l = PgListener::connect_with(pool).await?;
    l.listen(EVENTS_CHANNEL).await?;
    Ok(l)
}
