//! The GraphQL transport: cost check, pacing, one POST, typed errors, retries.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};

use crate::{
    CostBucket, Gid, GraphqlError, LocalBucket, ShopifyError,
    cost::{self, MAX_QUERY_COST},
};

/// Where and as whom to talk. The token is never printed (`Debug` hides it).
#[derive(Clone)]
pub struct ClientConfig {
    /// `https://{shop}.myshopify.com` or the simulator's `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// `YYYY-MM`.
    pub api_version: String,
    pub access_token: String,
    pub retry: RetryPolicy,
    pub timeout: Duration,
    /// The `shop` label of the client's metrics (the catalog uses the shop's domain); by
    /// default the host of `base_url`.
    pub shop: String,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("api_version", &self.api_version)
            .field("shop", &self.shop)
            .field("access_token", &"***")
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    pub fn new(
        base_url: impl Into<String>,
        api_version: impl Into<String>,
        token: impl Into<String>,
    ) -> Self {
        let base_url = base_url.into();
        let shop = reqwest::Url::parse(&base_url)
            .ok()
            .and_then(|u| {
                let host = u.host_str()?.to_owned();
                Some(match u.port() {
                    Some(p) => format!("{host}:{p}"),
                    None => host,
                })
            })
            .unwrap_or_else(|| base_url.clone());
        Self {
            base_url,
            api_version: api_version.into(),
            access_token: token.into(),
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(30),
            shop,
        }
    }
}

/// Retries of retryable errors (throttles, 5xx, internal errors, connection failures) for
/// idempotent operations.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThrottleStatus {
    pub maximum_available: f64,
    pub currently_available: f64,
    pub restore_rate: f64,
}

/// `extensions.cost` of a response.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cost {
    pub requested_query_cost: Option<f64>,
    pub actual_query_cost: Option<f64>,
    pub throttle_status: ThrottleStatus,
}

/// A successful answer: the decoded `data`, what it cost, and how many attempts it took.
#[derive(Debug, Clone)]
pub struct Answer<T> {
    pub data: T,
    pub cost: Option<Cost>,
    pub attempts: u32,
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    config: Arc<ClientConfig>,
    bucket: Arc<dyn CostBucket>,
    /// Bulk operations this client has seen finished (each is counted once).
    bulk_ended: Arc<Mutex<HashSet<Gid>>>,
}

impl Client {
    /// A client with its own in-process bucket.
    pub fn new(config: ClientConfig) -> Result<Self, ShopifyError> {
        Self::with_bucket(config, Arc::new(LocalBucket::new()))
    }

    /// A client pacing against a shared bucket (every worker of a shop should share one).
    pub fn with_bucket(
        config: ClientConfig,
        bucket: Arc<dyn CostBucket>,
    ) -> Result<Self, ShopifyError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| ShopifyError::Transport(e.to_string()))?;
        crate::metrics::register(&config.shop);
        Ok(Self {
            http,
            config: Arc::new(config),
            bucket,
            bulk_ended: Arc::default(),
        })
    }

    /// The `shop` label of this client's metrics.
    pub(crate) fn shop(&self) -> &str {
        &self.config.shop
    }

    /// True the first time this client sees bulk operation `id` finished.
    pub(crate) fn first_sight_of_end(&self, id: &Gid) -> bool {
        self.bulk_ended
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone())
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    fn endpoint(&self) -> String {
        format!(
            "{}/admin/api/{}/graphql.json",
            self.config.base_url.trim_end_matches('/'),
            self.config.api_version
        )
    }

    /// A query: idempotent, so retried on retryable errors.
    pub async fn query<T: DeserializeOwned>(
        &self,
        query: &str,
        variables: Value,
    ) -> Result<Answer<T>, ShopifyError> {
        self.execute(query, variables, true).await
    }

    /// A mutation: retried only when `idempotent` (e.g. `productSet` of a whole product, or an
    /// inventory change carrying an idempotency key). `userErrors` are not checked here; see
    /// [`check_user_errors`](Self::check_user_errors).
    pub async fn mutate<T: DeserializeOwned>(
        &self,
        query: &str,
        variables: Value,
        idempotent: bool,
    ) -> Result<Answer<T>, ShopifyError> {
        self.execute(query, variables, idempotent).await
    }

    /// Turns a payload's non-empty `userErrors` into [`ShopifyError::UserErrors`].
    pub fn check_user_errors(payload: &Value) -> Result<(), ShopifyError> {
        match payload.get("userErrors") {
            Some(Value::Array(list)) if !list.is_empty() => Err(ShopifyError::UserErrors(
                serde_json::from_value(Value::Array(list.clone()))
                    .map_err(|e| ShopifyError::Decode(format!("userErrors: {e}")))?,
            )),
            _ => Ok(()),
        }
    }

    async fn execute<T: DeserializeOwned>(
        &self,
        query: &str,
        variables: Value,
        retry: bool,
    ) -> Result<Answer<T>, ShopifyError> {
        let requested = cost::requested_cost(query, &variables, None).map_err(|e| {
            ShopifyError::Graphql(vec![GraphqlError {
                message: e.to_string(),
                extensions: None,
            }])
        })?;
        if requested > MAX_QUERY_COST {
            return Err(ShopifyError::MaxCostExceeded {
                cost: requested,
                max: MAX_QUERY_COST,
            });
        }
        let body = json!({ "query": query, "variables": variables });
        let policy = self.config.retry;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let wait = self.bucket.reserve(requested).await;
            crate::metrics::waited(self.shop(), wait.as_secs_f64());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            let (result, status) = self.send_once(&body, requested).await;
            let status: Option<ThrottleStatus> = status;
            self.bucket.settle(requested, status).await;
            self.observe(&result, status, requested);
            let err = match result {
                Ok((data, cost)) => {
                    let data = serde_json::from_value(data)
                        .map_err(|e| ShopifyError::Decode(format!("data: {e}")))?;
                    return Ok(Answer {
                        data,
                        cost,
                        attempts: attempt,
                    });
                }
                Err(e) => e,
            };
            // A query costing more than the whole bucket can never run: say so instead of waiting.
            if let (ShopifyError::Throttled { .. }, Some(t)) = (&err, status)
                && requested > t.maximum_available
            {
                return Err(ShopifyError::MaxCostExceeded {
                    cost: requested,
                    max: t.maximum_available,
                });
            }
            // A throttled request was refused before it ran, so even a mutation is safe to send
            // again; other retryable errors are retried for idempotent calls only.
            let throttled = matches!(err, ShopifyError::Throttled { .. });
            if !(throttled || (retry && err.is_retryable())) {
                return Err(err);
            }
            if attempt >= policy.max_attempts {
                return Err(ShopifyError::RetriesExhausted {
                    attempts: attempt,
                    last: Box::new(err),
                });
            }
            // A throttle waits for the bucket (next reserve), at least a little; other errors
            // back off exponentially with jitter.
            let delay = match err {
                ShopifyError::Throttled { .. } => Duration::from_millis(50),
                _ => {
                    let exp = policy.base_delay.as_secs_f64() * 2f64.powi(attempt as i32 - 1);
                    let capped = exp.min(policy.max_delay.as_secs_f64());
                    Duration::from_secs_f64(capped * (0.5 + rand::random::<f64>() * 0.5))
                }
            };
            tracing::debug!(attempt, error = %err, ?delay, "retrying Shopify call");
            tokio::time::sleep(delay).await;
        }
    }

    /// Counts an attempt's outcome and cost and keeps the shop's bucket gauges current.
    fn observe(
        &self,
        result: &Result<(Value, Option<Cost>), ShopifyError>,
        status: Option<ThrottleStatus>,
        requested: f64,
    ) {
        let shop = self.shop();
        if let Some(t) = status {
            crate::metrics::bucket(shop, t);
        }
        match result {
            Ok((_, cost)) => {
                crate::metrics::request(shop, "ok");
                let spent = cost
                    .and_then(|c| c.actual_query_cost.or(c.requested_query_cost))
                    .unwrap_or(requested);
                crate::metrics::points_used(shop, spent);
            }
            Err(ShopifyError::Throttled { .. }) => crate::metrics::request(shop, "throttled"),
            Err(_) => crate::metrics::request(shop, "error"),
        }
    }

    /// One POST. Returns the data and cost, or a typed error, plus any throttle status seen.
    async fn send_once(
        &self,
        body: &Value,
        requested: f64,
    ) -> (
        Result<(Value, Option<Cost>), ShopifyError>,
        Option<ThrottleStatus>,
    ) {
        let response = match self
            .http
            .post(self.endpoint())
            .header("X-Shopify-Access-Token", &self.config.access_token)
            .json(body)
            .send()
            .await
        {
            Ok(r) => r,
            // reqwest errors carry the URL, never headers: the token stays out.
            Err(e) => {
                return (
                    Err(ShopifyError::Transport(e.without_url().to_string())),
                    None,
                );
            }
        };
        let status = response.status();
        if status.as_u16() == 401 {
            return (Err(ShopifyError::Unauthorized), None);
        }
        if status.is_server_error() {
            return (
                Err(ShopifyError::Server {
                    status: status.as_u16(),
                }),
                None,
            );
        }
        let text = match response.text().await {
            Ok(t) => t,
            Err(e) => {
                return (
                    Err(ShopifyError::Transport(e.without_url().to_string())),
                    None,
                );
            }
        };
        if !status.is_success() {
            return (
                Err(ShopifyError::Decode(format!(
                    "HTTP {status}: {}",
                    truncate(&text)
                ))),
                None,
            );
        }
        let parsed: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                return (
                    Err(ShopifyError::Decode(format!("{e}: {}", truncate(&text)))),
                    None,
                );
            }
        };
        let cost: Option<Cost> = parsed
            .pointer("/extensions/cost")
            .and_then(|c| serde_json::from_value(c.clone()).ok());
        let throttle = cost.map(|c| c.throttle_status);
        if let Some(errors) = parsed
            .get("errors")
            .and_then(Value::as_array)
            .filter(|e| !e.is_empty())
        {
            let errors: Vec<GraphqlError> = errors
                .iter()
                .filter_map(|e| serde_json::from_value(e.clone()).ok())
                .collect();
            let code = |c: &str| errors.iter().find(|e| e.code() == Some(c));
            let err = if code("THROTTLED").is_some() {
                ShopifyError::Throttled {
                    requested,
                    available: throttle.map_or(0.0, |t| t.currently_available),
                }
            } else if let Some(e) = code("MAX_COST_EXCEEDED") {
                let cost = e
                    .extensions
                    .as_ref()
                    .and_then(|x| x.get("cost"))
                    .and_then(Value::as_f64)
                    .unwrap_or(requested);
                ShopifyError::MaxCostExceeded {
                    cost,
                    max: MAX_QUERY_COST,
                }
            } else if let Some(e) = code("INTERNAL_SERVER_ERROR") {
                ShopifyError::Internal {
                    request_id: e
                        .extensions
                        .as_ref()
                        .and_then(|x| x.get("requestId"))
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                }
            } else {
                ShopifyError::Graphql(errors)
            };
            return (Err(err), throttle);
        }
        match parsed.get("data") {
            Some(data) if !data.is_null() => (Ok((data.clone(), cost)), throttle),
            _ => (
                Err(ShopifyError::Decode("no data and no errors".into())),
                throttle,
            ),
        }
    }
}

fn truncate(s: &str) -> String {
    let cut: String = s.chars().take(200).collect();
    if cut.len() < s.len() {
        format!("{cut}…")
    } else {
        cut
    }
}
