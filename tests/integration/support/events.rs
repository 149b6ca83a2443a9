//! Clients of the live event stream: WebSocket and server-sent events.

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/api/v1/events/ws?{query}` on the API at `base` (`http://…`), with `key` if given.
pub(crate) async fn open_ws(
    base: &str,
    query: &str,
    key: Option<&str>,
) -> Result<Ws, tungstenite::Error> {
    let url = format!("{}/api/v1/events/ws?{query}", base.replace("http", "ws"));
    let mut req = url.into_client_request().unwrap();
    if let Some(k) = key {
        req.headers_mut()
            .insert("authorization", format!("Bearer {k}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

/// Next JSON event on a socket (10 s at most), skipping pings.
pub(crate) async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("an event within 10 s")
            .expect("the socket stays open")
            .unwrap();
        if let tungstenite::Message::Text(text) = msg {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// Reads SSE frames until `want` data lines arrived (or 30 s pass).
pub(crate) async fn sse_events(resp: &mut reqwest::Response, want: usize) -> Vec<(String, Value)> {
    let mut seen = 0;
    sse_until(resp, |_| {
        seen += 1;
        seen >= want
    })
    .await
}

/// Reads SSE frames (event name, data) until one satisfies `last` (or 30 s pass); all of them.
pub(crate) async fn sse_until(
    resp: &mut reqwest::Response,
    mut last: impl FnMut(&(String, Value)) -> bool,
) -> Vec<(String, Value)> {
    let mut buf = String::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("the awaited event within 30 s; got {out:?}"))
            .unwrap()
            .unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let name = frame
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("message")
                .to_owned();
            if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) {
                out.push((name, serde_json::from_str(data).unwrap()));
                if last(out.last().unwrap()) {
                    return out;
                }
            }
        }
    }
}
