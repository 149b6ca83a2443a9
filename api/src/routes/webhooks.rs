//! `POST /webhooks/shopify`: Shopify's deliveries. No API credentials: a delivery is
//! authenticated by its `X-Shopify-Hmac-Sha256` over the raw body with its shop's webhook
//! secret, checked before anything is parsed. Verified deliveries are answered once their job
//! is committed; nothing else happens on the request's path. Refusals are logged with the shop
//! domain and topic, never the body.

use std::net::SocketAddr;

use axum::{
    Json,
    body::Bytes,
    extract::{ConnectInfo, Request, State},
};
use cowans_catalog::webhooks::{Received, WebhookRefused};
use cowans_shopify::webhook::WebhookHeaders;
use serde::Serialize;

use crate::{
    ApiState,
    error::{ApiError, ApiResult, ErrorBody},
};

/// A delivery accepted.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookReceived {
    /// The job that applies it (`null` for a topic the catalog does not use).
    pub job_id: Option<i64>,
    /// This delivery (`X-Shopify-Webhook-Id`) had been received before; nothing new was queued.
    pub duplicate: bool,
}

/// `POST /webhooks/shopify` (public; signed by Shopify).
#[utoipa::path(post, path = "/webhooks/shopify", tag = "webhooks",
    request_body(content = String, description = "Shopify's JSON payload, verified byte for byte", content_type = "application/json"),
    params(("X-Shopify-Hmac-Sha256" = String, Header), ("X-Shopify-Shop-Domain" = String, Header), ("X-Shopify-Topic" = String, Header), ("X-Shopify-Webhook-Id" = String, Header)),
    responses((status = 200, body = WebhookReceived), (status = 401, description = "Unsigned, wrongly signed, or from a shop this catalog does not know", body = ErrorBody),
        (status = 404, description = "The catalog application is not enabled", body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)),
    description = "Public: authenticated by the delivery's signature")]
pub async fn shopify(
    State(state): State<ApiState>,
    request: Request,
) -> ApiResult<Json<WebhookReceived>> {
    let (parts, body) = request.into_parts();
    // What can be refused without the body is refused before reading it.
    let catalog = super::shops::catalog(&state)?;
    let headers = &parts.headers;
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let parsed = WebhookHeaders::parse(get).map_err(|missing| {
        if missing.0 == "x-shopify-hmac-sha256" || missing.0 == "x-shopify-shop-domain" {
            ApiError::Unauthorized("the delivery is not signed by a shop this catalog knows".into())
        } else {
            ApiError::invalid(missing.0, "the header is missing")
        }
    })?;
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().copied();
    let body: Bytes = axum::body::to_bytes(body, crate::BODY_LIMIT)
        .await
        .map_err(|_| {
            ApiError::TooLarge(format!(
                "the body is larger than {} bytes",
                crate::BODY_LIMIT
            ))
        })?;
    let client = peer.map(|ConnectInfo(a)| a.ip().to_string());
    match catalog.receive_webhook(&parsed, &body, client).await {
        Ok(Received { job_id, duplicate }) => {
            metrics::counter!("cowans_webhooks_received_total", "topic" => topic_label(&parsed.topic), "outcome" => if duplicate { "duplicate" } else { "accepted" }).increment(1);
            Ok(Json(WebhookReceived { job_id, duplicate }))
        }
        Err(WebhookRefused::Unauthenticated) => {
            metrics::counter!("cowans_webhooks_received_total", "topic" => topic_label(&parsed.topic), "outcome" => "refused").increment(1);
            tracing::warn!(shop = %parsed.shop, topic = %parsed.topic, webhook_id = %parsed.webhook_id, "refused a webhook delivery: not signed by a known shop's secret");
            Err(ApiError::Unauthorized(
                "the delivery is not signed by a shop this catalog knows".into(),
            ))
        }
        Err(WebhookRefused::Malformed(why)) => {
            tracing::warn!(shop = %parsed.shop, topic = %parsed.topic, webhook_id = %parsed.webhook_id, %why, "refused a signed webhook delivery");
            Err(ApiError::invalid("body", why))
        }
        Err(WebhookRefused::Store(e)) => Err(e.into()),
    }
}

/// A bounded label for a topic (anything unknown is `other`).
fn topic_label(topic: &str) -> &'static str {
    cowans_catalog::webhooks::TOPICS
        .iter()
        .find(|(_, t)| *t == topic)
        .map_or("other", |(_, t)| t)
}
