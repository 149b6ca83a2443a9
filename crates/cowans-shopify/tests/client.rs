//! The client's request path against the simulator over real HTTP: a missing or wrong token is a
//! typed error that never shows the token; faults are retried for idempotent calls only, within
//! a bounded budget.

// Test helpers may unwrap: a failure there is a test failure with its location.
#![allow(clippy::unwrap_used)]

mod common;

use cowans_shopify::{Client, ClientConfig, ShopifyError};
use cowans_shopsim::Faults;
use serde_json::{Value, json};

use common::{VERSION, client, faults, sim};

#[tokio::test]
async fn a_missing_or_wrong_token_gets_shopifys_401_and_a_typed_error_without_the_token() {
    let sim = sim(1, 1).await;
    let url = format!("{}/admin/api/{VERSION}/graphql.json", sim.base_url());
    let r = reqwest::Client::new()
        .post(&url)
        .json(&json!({"query": "{ products(first: 1) { nodes { id } } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"errors":"[API] Invalid API key or access token (unrecognized login or wrong password)"}"#
    );
    let secret = "shpat_wrong_secret_value";
    let bad = Client::new(ClientConfig::new(sim.base_url(), VERSION, secret)).unwrap();
    let err = bad
        .query::<Value>("{ products(first: 1) { nodes { id } } }", json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, ShopifyError::Unauthorized), "{err:?}");
    assert!(!format!("{err} {err:?}").contains(secret));
    assert!(!format!("{:?}", ClientConfig::new("u", "v", secret)).contains(secret));
}

#[tokio::test]
async fn faults_are_retried_for_idempotent_calls_and_surfaced_otherwise() {
    let sim = sim(3, 1).await;
    let client = client(&sim);
    let q = "{ products(first: 3) { nodes { id } } }";
    for (f, name) in [
        (
            Faults {
                internal_errors: 2,
                ..Default::default()
            },
            "internal",
        ),
        (
            Faults {
                unavailable: 2,
                ..Default::default()
            },
            "503 html",
        ),
        (
            Faults {
                resets: 2,
                ..Default::default()
            },
            "connection reset",
        ),
        (
            Faults {
                throttles: 2,
                ..Default::default()
            },
            "forced throttle",
        ),
    ] {
        faults(&sim, f).await;
        let a = client
            .query::<Value>(q, json!({}))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(a.attempts, 3, "{name}: two failures, then success");
    }
    // A non-idempotent mutation is not retried: the caller sees the typed error.
    let create_once = async |f: Faults| {
        faults(&sim, f).await;
        client
            .mutate::<Value>(
                "mutation { productCreate(product: {title: \"x\"}) { userErrors { message } } }",
                json!({}),
                false,
            )
            .await
            .unwrap_err()
    };
    let err = create_once(Faults {
        internal_errors: 1,
        ..Default::default()
    })
    .await;
    assert!(matches!(err, ShopifyError::Internal { .. }), "{err:?}");
    let err = create_once(Faults {
        unavailable: 1,
        ..Default::default()
    })
    .await;
    assert!(
        matches!(err, ShopifyError::Server { status: 503 }),
        "{err:?}"
    );
    // The retry budget is bounded.
    faults(
        &sim,
        Faults {
            internal_errors: 10,
            ..Default::default()
        },
    )
    .await;
    let err = client.query::<Value>(q, json!({})).await.unwrap_err();
    match err {
        ShopifyError::RetriesExhausted { attempts, last } => {
            assert_eq!(attempts, 5);
            assert!(matches!(*last, ShopifyError::Internal { .. }));
        }
        other => panic!("{other:?}"),
    }
}

/// Shopify is reached over HTTPS: the client speaks TLS to an `https://` address (here to a
/// server that answers in plain HTTP, so the handshake fails as a connection error, retried and
/// reported), rather than refusing the scheme as a client built without TLS does.
#[tokio::test]
async fn an_https_shop_is_spoken_to_in_tls() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 512];
            let n = socket.read(&mut buf).await.unwrap_or(0);
            record.lock().unwrap().extend_from_slice(&buf[..n]);
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                .await;
        }
    });
    let mut config = ClientConfig::new(format!("https://{addr}"), VERSION, "shpat_x");
    config.retry.max_attempts = 1;
    let err = Client::new(config)
        .unwrap()
        .query::<Value>("{ shop { id } }", json!({}))
        .await
        .unwrap_err();
    let transport = match &err {
        ShopifyError::RetriesExhausted { last, .. } => matches!(**last, ShopifyError::Transport(_)),
        e => matches!(e, ShopifyError::Transport(_)),
    };
    assert!(transport, "{err:?}");
    // What reached the server was a TLS handshake (a ClientHello record), not HTTP.
    let first = seen.lock().unwrap().clone();
    assert_eq!(
        first.first(),
        Some(&0x16),
        "{:?}",
        String::from_utf8_lossy(&first)
    );
}
