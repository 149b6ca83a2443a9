//! WebSocket clients of the live event stream.

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
