//! The simulated shop: its catalog, cost bucket, clock, fault knobs and request log, behind one
//! mutex (the simulator is a test tool; simplicity beats throughput here).

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
    time::Instant,
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::Catalog;

/// A clock tests can move forward: real time plus an offset. It drives timestamps and the
/// bucket's refill.
#[derive(Debug)]
pub struct Clock {
    start: Instant,
    start_wall: DateTime<Utc>,
    offset_ms: i64,
}

impl Clock {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            start_wall: Utc::now(),
            offset_ms: 0,
        }
    }

    /// Seconds since the simulator started, offset included (monotonic).
    pub fn secs(&self) -> f64 {
        self.start.elapsed().as_secs_f64() + self.offset_ms as f64 / 1000.0
    }

    /// Wall time, to the second (Shopify's timestamps and search filters have no fractions).
    pub fn now(&self) -> DateTime<Utc> {
        let t = self.start_wall
            + chrono::Duration::from_std(self.start.elapsed()).unwrap_or_default()
            + chrono::Duration::milliseconds(self.offset_ms);
        chrono::DurationRound::duration_trunc(t, chrono::Duration::seconds(1)).unwrap_or(t)
    }

    pub fn advance(&mut self, ms: i64) {
        self.offset_ms += ms.max(0);
    }
}

/// Shopify plans and their restore rates (published) with bucket sizes (observed/assumed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    Standard,
    Advanced,
    Plus,
    Enterprise,
}

impl Plan {
    pub fn restore_rate(self) -> f64 {
        match self {
            Plan::Standard => 100.0,
            Plan::Advanced => 200.0,
            Plan::Plus => 1000.0,
            Plan::Enterprise => 2000.0,
        }
    }

    pub fn bucket_size(self) -> f64 {
        self.restore_rate() * 20.0
    }
}

/// The leaky bucket of one (app, shop).
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    pub max: f64,
    pub restore: f64,
    available: f64,
    at: f64,
}

impl Bucket {
    pub fn new(max: f64, restore: f64, now: f64) -> Self {
        Self {
            max,
            restore,
            available: max,
            at: now,
        }
    }

    pub fn available(&mut self, now: f64) -> f64 {
        self.available = (self.available + (now - self.at).max(0.0) * self.restore).min(self.max);
        self.at = now;
        self.available
    }

    /// Takes `points` if available.
    pub fn try_take(&mut self, points: f64, now: f64) -> bool {
        if self.available(now) >= points {
            self.available -= points;
            true
        } else {
            false
        }
    }

    pub fn refund(&mut self, points: f64) {
        self.available = (self.available + points).min(self.max);
    }

    pub fn set_available(&mut self, points: f64, now: f64) {
        self.available(now);
        self.available = points.clamp(0.0, self.max);
    }
}

/// A `userErrors` entry forced on a named mutation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForcedUserError {
    pub mutation: String,
    pub field: Vec<String>,
    pub message: String,
    #[serde(default)]
    pub code: Option<String>,
}

/// Fault knobs. Counters are consumed one request at a time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Added to every GraphQL request.
    pub latency_ms: u64,
    /// The next N requests answer 200 with an INTERNAL_SERVER_ERROR error.
    pub internal_errors: u32,
    /// The next N requests answer 503 with an HTML body.
    pub unavailable: u32,
    /// The next N requests are answered THROTTLED whatever the bucket holds.
    pub throttles: u32,
    /// The next N requests get their connection closed without an answer.
    pub resets: u32,
    /// Mutations named here answer with this userError (until cleared).
    pub user_errors: Vec<ForcedUserError>,
    /// The next N webhooks are delivered twice (same webhook id).
    pub webhook_duplicates: u32,
    /// The next N webhooks are never delivered.
    pub webhook_drops: u32,
    /// The next N webhooks are signed with a wrong secret on their first attempt.
    pub webhook_bad_signatures: u32,
    /// Hold webhooks until N are waiting, then deliver them newest first.
    pub webhook_reorder: u32,
    /// Bulk operations stay RUNNING at least this long (cancellable meanwhile).
    pub bulk_delay_ms: u64,
    /// Stock that moves (an order, a count) just before the next `inventorySetQuantities` is
    /// applied: the race between a client's read and its compare-and-swap write.
    pub stock_moves: Vec<StockMove>,
}

/// A change of an item's available quantity at a location (default: the first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StockMove {
    pub inventory_item_id: u64,
    #[serde(default)]
    pub location_id: Option<u64>,
    pub delta: i64,
}

/// A location of the shop (the simulator has one, holding every variant's stock).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimLocation {
    pub id: u64,
    pub name: String,
    pub active: bool,
    pub created_at: DateTime<Utc>,
}

/// The id of the shop's one location.
pub const LOCATION_ID: u64 = (1 << 60) + 1;
/// The shop's id.
pub const SHOP_ID: u64 = (1 << 60) + 2;

/// One request as the simulator saw it.
#[derive(Debug, Clone, Serialize)]
pub struct LoggedRequest {
    pub at: DateTime<Utc>,
    pub api_version: String,
    pub root_fields: Vec<String>,
    pub status: u16,
    /// "ok", "throttled", "max_cost", "unauthorized", "internal", "unavailable", "reset", "invalid".
    pub outcome: String,
    pub requested_cost: Option<f64>,
    pub actual_cost: Option<f64>,
}

pub struct ShopState {
    pub catalog: Catalog,
    pub clock: Clock,
    pub plan: Plan,
    /// The plan's bucket settings; each access token (app) gets its own copy in `buckets`.
    pub bucket: Bucket,
    pub buckets: std::collections::HashMap<String, Bucket>,
    pub tokens: Vec<String>,
    pub secret: String,
    pub faults: Faults,
    pub log: VecDeque<LoggedRequest>,
    /// Inventory changes bump the product's `updatedAt`, as orders do on Shopify.
    pub inventory_bumps_updated_at: bool,
    /// Bulk operations by id, where their result files go, and how many may run at once.
    pub bulk: std::collections::BTreeMap<u64, crate::bulk::BulkOp>,
    pub results_dir: std::path::PathBuf,
    pub bulk_concurrency: usize,
    /// `http://addr` of this simulator, for result URLs.
    pub base_url: String,
    pub shop_domain: String,
    pub shop_name: String,
    /// The shop's locations.
    pub locations: Vec<SimLocation>,
    /// Idempotency keys of inventory mutations: key → (input, when, answer).
    pub idempotency: std::collections::HashMap<
        String,
        (
            String,
            DateTime<Utc>,
            crate::schema::InventorySetQuantitiesPayload,
        ),
    >,
    pub subscriptions: Vec<crate::webhooks::Subscription>,
    pub outbox: Option<tokio::sync::mpsc::UnboundedSender<crate::webhooks::Delivery>>,
    held: Vec<crate::webhooks::Delivery>,
    pub webhook_log: Vec<crate::webhooks::DeliveryLog>,
    /// Pause before each retry of a failed delivery (Shopify: 8 retries over ~4 h; compressed).
    pub webhook_retry_ms: Vec<u64>,
    next_event: u64,
    /// Asynchronous productSet operations: id → (started at, clock secs; product id).
    pub product_ops: std::collections::HashMap<u64, (f64, u64)>,
    /// Files uploaded to staged-upload targets, by their path (`stagedUploadPath`).
    pub staged: std::collections::HashMap<String, Vec<u8>>,
}

const LOG_CAPACITY: usize = 100_000;
static NEXT_DIR: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl ShopState {
    pub fn new(plan: Plan, tokens: Vec<String>, secret: String) -> Self {
        let clock = Clock::new();
        let started = clock.now();
        let bucket = Bucket::new(plan.bucket_size(), plan.restore_rate(), clock.secs());
        Self {
            catalog: Catalog::new(),
            clock,
            plan,
            bucket,
            buckets: Default::default(),
            tokens,
            secret,
            faults: Faults::default(),
            log: VecDeque::new(),
            inventory_bumps_updated_at: true,
            bulk: Default::default(),
            results_dir: std::env::temp_dir().join(format!(
                "cowans-shopsim-{}-{}",
                std::process::id(),
                NEXT_DIR.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            )),
            bulk_concurrency: 5,
            base_url: String::new(),
            shop_domain: "cowans-sim.myshopify.com".to_owned(),
            shop_name: "Cowans Sim".to_owned(),
            locations: vec![SimLocation {
                id: LOCATION_ID,
                name: "Shop location".to_owned(),
                active: true,
                created_at: started,
            }],
            idempotency: Default::default(),
            subscriptions: Vec::new(),
            outbox: None,
            held: Vec::new(),
            webhook_log: Vec::new(),
            webhook_retry_ms: vec![100, 200, 400, 800, 1600, 3200, 6400, 12800],
            next_event: 1,
            staged: Default::default(),
            product_ops: Default::default(),
        }
    }

    /// The bucket of one (app, shop): an app is identified by its access token.
    pub fn bucket_for(&mut self, token: &str) -> &mut Bucket {
        let template = self.bucket;
        self.buckets.entry(token.to_owned()).or_insert(template)
    }

    /// New plan settings for every app's bucket (full, or at `available`).
    pub fn reset_buckets(&mut self, template: Bucket) {
        self.bucket = template;
        self.buckets.clear();
        for t in self.tokens.clone() {
            self.buckets.insert(t, template);
        }
    }

    pub fn record(&mut self, entry: LoggedRequest) {
        if self.log.len() == LOG_CAPACITY {
            self.log.pop_front();
        }
        self.log.push_back(entry);
    }

    /// Queues `topic` with `payload` for every subscription to it whose `filter` the product
    /// (if any) matches, trimmed to the subscription's `includeFields`, applying the webhook
    /// knobs.
    pub fn emit(
        &mut self,
        topic: &str,
        payload: serde_json::Value,
        product: Option<&crate::model::Product>,
    ) {
        let event_id = format!("sim-event-{}", self.next_event);
        self.next_event += 1;
        let now = self.clock.now();
        let targets: Vec<(String, String, String, Option<String>)> = self
            .subscriptions
            .iter()
            .filter(|s| s.topic == topic)
            .filter(|s| match (&s.filter, product) {
                (Some(f), Some(p)) => crate::search::Search::products(f, &s.api_version).matches(p),
                _ => true,
            })
            .map(|s| {
                (
                    s.uri.clone(),
                    crate::webhooks::include_fields(&payload, &s.include_fields).to_string(),
                    s.api_version.clone(),
                    s.name.clone(),
                )
            })
            .collect();
        for (n, (url, body, api_version, name)) in targets.into_iter().enumerate() {
            let delivery = crate::webhooks::Delivery {
                url,
                topic: topic.to_owned(),
                body,
                webhook_id: format!("{event_id}-{n}"),
                event_id: event_id.clone(),
                triggered_at: now,
                api_version,
                name,
                bad_signature: take(&mut self.faults.webhook_bad_signatures),
            };
            if take(&mut self.faults.webhook_drops) {
                self.webhook_log.push(crate::webhooks::DeliveryLog {
                    topic: delivery.topic,
                    webhook_id: delivery.webhook_id,
                    url: delivery.url,
                    attempts: 0,
                    last_status: None,
                    delivered: false,
                    dropped: true,
                });
                continue;
            }
            let copies = if take(&mut self.faults.webhook_duplicates) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                self.held.push(delivery.clone());
            }
        }
        let window = self.faults.webhook_reorder as usize;
        if window == 0 || self.held.len() >= window {
            let mut batch = std::mem::take(&mut self.held);
            if window > 0 {
                batch.reverse();
                self.faults.webhook_reorder = 0;
            }
            if let Some(tx) = &self.outbox {
                for d in batch {
                    let _ = tx.send(d);
                }
            }
        }
    }

    /// Registers a new bulk operation (CREATED) of `kind` ("QUERY" or "MUTATION").
    pub fn new_bulk_op(
        &mut self,
        kind: &'static str,
        query: String,
        api_version: &'static str,
    ) -> crate::bulk::BulkOp {
        let op = crate::bulk::BulkOp {
            id: self.catalog.next_id(),
            kind,
            status: crate::bulk::BulkStatus::Created,
            query,
            object_count: 0,
            root_object_count: 0,
            file_size: 0,
            file: None,
            error_code: None,
            created_at: self.clock.now(),
            completed_at: None,
            api_version,
        };
        self.bulk.insert(op.id, op.clone());
        op
    }

    /// `products/*` with the product's REST-shaped payload.
    pub fn emit_product(&mut self, topic: &str, id: u64) {
        if !self.subscriptions.iter().any(|s| s.topic == topic) {
            return;
        }
        if let Some(p) = self.catalog.products.get(&id).cloned() {
            let payload = crate::webhooks::product_payload(&p);
            self.emit(topic, payload, Some(&p));
        }
    }

    pub fn forced_user_error(&self, mutation: &str) -> Option<ForcedUserError> {
        self.faults
            .user_errors
            .iter()
            .find(|u| u.mutation == mutation)
            .cloned()
    }
}

/// Shared handle to the shop.
#[derive(Clone)]
pub struct Shop(pub Arc<Mutex<ShopState>>);

impl Shop {
    pub fn lock(&self) -> MutexGuard<'_, ShopState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Consumes one unit of a counter knob.
fn take(counter: &mut u32) -> bool {
    if *counter > 0 {
        *counter -= 1;
        true
    } else {
        false
    }
}
