//! The push job (`catalog.push`): sends a shop's approved changes to Shopify, a batch at a time.
//!
//! Just before writing, it reads the targets from Shopify (`nodes(ids:)`, as many per request as
//! the cost cap allows) and checks each field three ways: Shopify still has the base → write the
//! proposed value; Shopify has the proposed value already → nothing to write; anything else → a
//! conflict, back to review with base, current and proposed. Fields a change does not touch are
//! never compared. Writes go as aliased `productUpdate` / `productVariantsBulkUpdate` mutations
//! packed up to the cost cap; their `userErrors` fail the changes they carried (never retried);
//! their answers update the catalog's snapshot in the transaction that records the outcomes.
//!
//! A push killed part-way and run again takes its own unfinished changes back and reads them
//! again: what it had written is then found already there, so nothing is written twice and
//! nothing is lost.

use std::collections::{BTreeMap, HashMap};

use apalis_core::error::BoxDynError;
use cowans_core::{Actor, Event, JobError, QueueName};
use cowans_queue::{JobMeta, NewJob, StoreError, StoreResult as Result};
use cowans_shopify::{AliasedMutation, Client, ShopifyError, cost};
use cowans_store::catalog::{self as store, ChangeRow, PushOutcome, ShopRow};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sqlx::PgConnection;

use super::{Field, Level, inventory};
use crate::{Catalog, notify::Notice, snapshot};

/// The job kind of pushes.
pub const PUSH: &str = "catalog.push";

/// A push of one shop's approved changes.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PushArgs {
    pub shop_id: i64,
    /// At most this many mutations per request (default: as many as the cost cap allows; 1 is
    /// the unbatched baseline `cowans-bench sync-push` compares with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_aliases: Option<usize>,
}

/// Enqueues a push of the shop in `conn`'s transaction, unless one is waiting to start already
/// (it will take every change approved by then). Returns the job's id.
pub(crate) async fn enqueue(cat: &Catalog, conn: &mut PgConnection, shop_id: i64) -> Result<i64> {
    if let Some(id) = store::waiting_shop_job(&mut *conn, crate::QUEUE, PUSH, shop_id).await? {
        return Ok(id);
    }
    let queue =
        QueueName::new(crate::QUEUE).map_err(|e| StoreError::invalid("queue", e.to_string()))?;
    let job = NewJob::new(
        queue,
        PUSH,
        json!(PushArgs {
            shop_id,
            max_aliases: None
        }),
    );
    Ok(cat.front().enqueue_in(&mut *conn, &job).await?.id.0)
}

impl Catalog {
    /// Starts a push of the shop's approved changes (one waiting to start is reused); audited as
    /// `shop.push`. Returns the job's id.
    pub async fn start_push(&self, actor: &Actor, shop_id: i64) -> Result<i64> {
        self.shop(shop_id).await?;
        let mut tx = self.pool().begin().await?;
        let job = enqueue(self, &mut tx, shop_id).await?;
        let recorded = self
            .front()
            .record(
                &mut tx,
                actor,
                "shop.push",
                Some(format!("shop:{shop_id}")),
                json!({ "job_id": job }),
            )
            .await?;
        recorded.commit(tx).await?;
        Ok(job)
    }
}

/// Pushes batches of the shop's approved changes until none is left.
pub(crate) async fn run(
    cat: Catalog,
    args: PushArgs,
    job: JobMeta,
) -> std::result::Result<(), BoxDynError> {
    let pool = cat.pool();
    let Some(shop) = store::get_shop(pool, args.shop_id).await? else {
        return Ok(());
    };
    if shop.status == "unauthorized" {
        return Err(JobError::permanent(
            "the shop is unauthorized (Shopify refused its token); replace the token and push again",
        )
        .into());
    }
    let client = cat.client(&shop).map_err(JobError::permanent)?;
    let settings = cat.settings();
    let mut totals = Tally::default();
    loop {
        if job.is_cancelled() {
            // What it took stays `pushing` for the next push (its job is no longer running).
            return Ok(());
        }
        // Many changes waiting: the bulk path.
        let bulk =
            store::pushable_at_least(pool, shop.id, settings.push_bulk_min.max(1) as i64).await?;
        let batch_size = if bulk {
            settings.push_bulk_batch.clamp(1, 1_000_000)
        } else {
            settings.push_batch.clamp(1, 10_000)
        };
        let batch = store::claim_for_push(pool, shop.id, job.id.0, batch_size as i64).await?;
        if batch.is_empty() {
            if totals.any() {
                // The notice and the job's completion commit together.
                let mut tx = pool.begin().await?;
                cat.notify(&mut tx, &shop.name, &totals.notice(&shop, job.id.0))
                    .await?;
                job.complete_in_tx(&mut *tx).await?;
                tx.commit().await?;
            }
            return Ok(());
        }
        let how = if bulk {
            Write::Bulk
        } else {
            Write::Aliased(args.max_aliases)
        };
        match push_batch(&cat, &client, &shop, job.id.0, &batch, how).await {
            Ok(t) => totals.add(t),
            Err(e) if e.is_unauthorized() => {
                let why = cat.token_refused(shop.id).await?;
                return Err(JobError::permanent(why).into());
            }
            // Retried with backoff. After the last attempt the job is a dead letter and the
            // batch stays `pushing`: Shopify may have some of it already, so failing it here
            // could call written changes failed; the next push takes it back and checks it
            // against Shopify again.
            Err(e) => return Err(JobError::retry(e).into()),
        }
    }
}

/// How a batch is read and written.
#[derive(Debug, Clone, Copy)]
enum Write {
    /// `nodes()` reads and aliased mutations, at most this many per request.
    Aliased(Option<usize>),
    /// A bulk export and bulk mutations.
    Bulk,
}

/// The plans (by index) a mutation carries.
type Carried = Vec<usize>;
/// A product's variants' inputs, by variant id.
type VariantInputs = BTreeMap<i64, Map<String, Value>>;

/// How many changes a push left pushed, in conflict, failed.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    pushed: i64,
    conflicts: i64,
    failed: i64,
}

impl Tally {
    fn add(&mut self, t: Tally) {
        self.pushed += t.pushed;
        self.conflicts += t.conflicts;
        self.failed += t.failed;
    }

    fn any(self) -> bool {
        self.pushed + self.conflicts + self.failed > 0
    }

    fn notice(self, shop: &ShopRow, job_id: i64) -> Notice {
        let attention = if self.conflicts + self.failed > 0 {
            format!(
                "; {} conflict{} and {} failure{} need review",
                self.conflicts,
                if self.conflicts == 1 { "" } else { "s" },
                self.failed,
                if self.failed == 1 { "" } else { "s" }
            )
        } else {
            String::new()
        };
        Notice {
            topic: "push.finished",
            subject: format!("Push to {}: {} pushed{attention}", shop.name, self.pushed),
            text: format!(
                "The push of shop {} ({}) finished (job {job_id}).\n\nPushed: {}\nConflicts (back to review): {}\nFailed (Shopify refused them): {}\n",
                shop.name, shop.domain, self.pushed, self.conflicts, self.failed
            ),
            data: json!({ "shop_id": shop.id, "job_id": job_id, "pushed": self.pushed,
                          "conflicts": self.conflicts, "failed": self.failed }),
        }
    }
}

/// How one field of a change fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Shopify had the base: the proposed value is written.
    Write,
    /// Shopify had the proposed value already.
    Already,
    Conflict,
    /// A newer change to the same field (or a later one in this batch) took it over.
    Superseded,
    /// Shopify refused it (or refused the change before it was sent).
    Refused,
}

/// A change of the batch and what it does to each of its fields.
struct Plan<'a> {
    change: &'a ChangeRow,
    fields: Vec<(Field, Outcome, Value)>,
    /// Why it failed (its target is gone, Shopify's user errors).
    error: Option<String>,
    /// The variant's inventory item (GID), for inventory writes.
    inventory_item: Option<String>,
}

/// The GID of a change's target.
fn target_gid(c: &ChangeRow) -> String {
    match c.variant_id {
        Some(v) => format!("gid://shopify/ProductVariant/{v}"),
        None => format!("gid://shopify/Product/{}", c.product_id),
    }
}

/// The `nodes()` read of a batch's targets; variants' levels at `locations` (aliased
/// `inventoryLevel(locationId:)` reads, only those the batch's inventory changes name).
fn nodes_query(locations: &[String]) -> String {
    let levels: String = locations
        .iter()
        .enumerate()
        .map(|(i, l)| {
            format!(
                " l{i}: inventoryLevel(locationId: \"gid://shopify/Location/{l}\") {{ location {{ id }} \
                 quantities(names: [\"available\"]) {{ name quantity }} }}"
            )
        })
        .collect();
    format!(
        "query($ids: [ID!]!) {{ nodes(ids: $ids) {{ __typename \
         ... on Product {{ id title handle descriptionHtml vendor productType status tags updatedAt }} \
         ... on ProductVariant {{ id price compareAtPrice sku barcode product {{ id }} \
         inventoryItem {{ id{levels} }} }} }} }}"
    )
}

/// What Shopify has now of each of `gids` (absent: it does not exist), as many per request as
/// the single-query cost cap allows; variants with their levels at `locations`, as
/// `inventoryItem.inventoryLevels.nodes` (the shape of every other read).
async fn read_nodes(
    client: &Client,
    gids: &[String],
    locations: &[String],
) -> std::result::Result<HashMap<String, Value>, ShopifyError> {
    // Each location read costs every variant a few points: past 50, more reads of the variants.
    let mut groups = locations.chunks(50);
    let mut out = read_nodes_at(client, gids, groups.next().unwrap_or_default()).await?;
    let variants: Vec<String> = gids
        .iter()
        .filter(|g| g.starts_with("gid://shopify/ProductVariant/"))
        .cloned()
        .collect();
    for group in groups {
        for (id, node) in read_nodes_at(client, &variants, group).await? {
            let more = node["inventoryItem"]["inventoryLevels"]["nodes"].clone();
            if let (Some(list), Some(more)) = (
                out.get_mut(&id)
                    .and_then(|n| n["inventoryItem"]["inventoryLevels"]["nodes"].as_array_mut()),
                more.as_array(),
            ) {
                list.extend(more.iter().cloned());
            }
        }
    }
    Ok(out)
}

/// [`read_nodes`] with levels at these `locations` (at most 50).
async fn read_nodes_at(
    client: &Client,
    gids: &[String],
    locations: &[String],
) -> std::result::Result<HashMap<String, Value>, ShopifyError> {
    let query = nodes_query(locations);
    let mut out = HashMap::with_capacity(gids.len());
    let mut rest = gids;
    while !rest.is_empty() {
        let mut n = rest.len().min(250);
        while n > 1
            && cost::requested_cost(&query, &json!({ "ids": &rest[..n] }), None)
                .map_or(true, |c| c > cost::MAX_QUERY_COST)
        {
            n /= 2;
        }
        let (chunk, later) = rest.split_at(n);
        let answer = client
            .query::<Value>(&query, json!({ "ids": chunk }))
            .await?;
        for node in answer.data["nodes"].as_array().into_iter().flatten() {
            if let Some(id) = node["id"].as_str() {
                let mut node = node.clone();
                if let Some(item) = node.get_mut("inventoryItem").and_then(Value::as_object_mut) {
                    let levels: Vec<Value> = (0..locations.len())
                        .filter_map(|i| item.remove(&format!("l{i}")))
                        .filter(|l| !l.is_null())
                        .collect();
                    item.insert("inventoryLevels".into(), json!({ "nodes": levels }));
                }
                out.insert(id.to_owned(), node);
            }
        }
        rest = later;
    }
    Ok(out)
}

const PRODUCT_UPDATE: AliasedMutation<'static> = AliasedMutation {
    field: "productUpdate",
    args: &[("product", "ProductUpdateInput!")],
    selection: "product { id title handle descriptionHtml vendor productType status tags \
      createdAt updatedAt options { name position optionValues { name } } } \
      userErrors { field message }",
};

const VARIANTS_UPDATE: AliasedMutation<'static> = AliasedMutation {
    field: "productVariantsBulkUpdate",
    args: &[
        ("productId", "ID!"),
        ("variants", "[ProductVariantsBulkInput!]!"),
    ],
    selection: "productVariants { id price compareAtPrice sku barcode } \
      userErrors { field message }",
};

/// A field's value as a mutation input takes it.
fn input(field: Field, v: &Value, into: &mut Map<String, Value>) {
    match field.name {
        "sku" => {
            into.insert("inventoryItem".into(), json!({ "sku": v }));
        }
        _ => {
            into.insert(field.shopify_name().into(), v.clone());
        }
    }
}

/// The user errors of a mutation's payload as one message, if it has any.
fn user_errors(payload: &Value) -> Option<String> {
    let errors = payload["userErrors"].as_array().filter(|e| !e.is_empty());
    match (errors, payload.is_null()) {
        (Some(errors), _) => Some(
            errors
                .iter()
                .map(|e| {
                    let field = e["field"]
                        .as_array()
                        .map(|f| {
                            f.iter()
                                .filter_map(|p| p.as_str())
                                .collect::<Vec<_>>()
                                .join(".")
                        })
                        .unwrap_or_default();
                    format!("{field}: {}", e["message"].as_str().unwrap_or("refused"))
                })
                .collect::<Vec<_>>()
                .join("; "),
        ),
        (None, true) => Some("Shopify answered nothing for this mutation".into()),
        (None, false) => None,
    }
}

async fn push_batch(
    cat: &Catalog,
    client: &Client,
    shop: &ShopRow,
    job_id: i64,
    batch: &[ChangeRow],
    how: Write,
) -> std::result::Result<Tally, ShopifyError> {
    let gids: Vec<String> = {
        let mut g: Vec<String> = batch.iter().map(target_gid).collect();
        g.sort();
        g.dedup();
        g
    };
    // The locations the batch's inventory changes name.
    let locations: Vec<String> = {
        let mut l: Vec<String> = batch
            .iter()
            .filter_map(|c| c.fields.get("inventory")?["proposed"].as_object())
            .flat_map(|p| p.keys().cloned())
            .collect();
        l.sort();
        l.dedup();
        l
    };
    let nodes = match how {
        Write::Aliased(_) => read_nodes(client, &gids, &locations).await?,
        Write::Bulk => {
            let lo = batch.iter().map(|c| c.product_id).min().unwrap_or(0);
            let hi = batch.iter().map(|c| c.product_id).max().unwrap_or(0);
            super::push_bulk::export_nodes(client, &gids.into_iter().collect(), (lo, hi)).await?
        }
    };
    // The three-way check of every field.
    let mut plans: Vec<Plan<'_>> = batch
        .iter()
        .map(|c| {
            let node = nodes.get(&target_gid(c)).filter(|n| match c.variant_id {
                None => true,
                Some(_) => {
                    n["product"]["id"].as_str()
                        == Some(&format!("gid://shopify/Product/{}", c.product_id))
                }
            });
            let Some(node) = node else {
                return Plan {
                    change: c,
                    fields: Vec::new(),
                    inventory_item: None,
                    error: Some(match c.variant_id {
                        Some(v) => format!(
                            "variant {v} of product {} no longer exists in Shopify",
                            c.product_id
                        ),
                        None => format!("product {} no longer exists in Shopify", c.product_id),
                    }),
                };
            };
            let fields = c
                .fields
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(name, f)| {
                    let field = Field::named(name)?;
                    let current = field.part(&field.read(node), &f["proposed"]);
                    let outcome = if c.superseded.iter().any(|s| s == name) {
                        Outcome::Superseded
                    } else {
                        three_way(field, &current, f)
                    };
                    Some((field, outcome, current))
                })
                .collect();
            Plan {
                change: c,
                fields,
                error: None,
                inventory_item: node["inventoryItem"]["id"].as_str().map(str::to_owned),
            }
        })
        .collect();
    // Two changes of the batch writing one field: the later one's value goes (inventory: per
    // location, below).
    let mut writers: HashMap<(i64, Option<i64>, &str), usize> = HashMap::new();
    for (i, p) in plans.iter().enumerate() {
        for (f, o, _) in &p.fields {
            if *o == Outcome::Write && !f.is_inventory() {
                writers.insert((p.change.product_id, p.change.variant_id, f.name), i);
            }
        }
    }
    for (i, p) in plans.iter_mut().enumerate() {
        let key = |f: &Field| (p.change.product_id, p.change.variant_id, f.name);
        for (f, o, _) in p.fields.iter_mut() {
            if *o == Outcome::Write && !f.is_inventory() && writers.get(&key(f)) != Some(&i) {
                *o = Outcome::Superseded;
            }
        }
    }
    // The writes: one productUpdate per product, one productVariantsBulkUpdate per product with
    // variant fields to write; which plans each carries.
    let mut products: BTreeMap<i64, (Map<String, Value>, Carried)> = BTreeMap::new();
    let mut variants: BTreeMap<i64, (VariantInputs, Carried)> = BTreeMap::new();
    for (i, p) in plans.iter().enumerate() {
        for (f, o, _) in &p.fields {
            if *o != Outcome::Write || f.is_inventory() {
                continue;
            }
            let proposed = &p.change.fields[f.name]["proposed"];
            match (f.level, p.change.variant_id) {
                (Level::Product, None) => {
                    let slot = products.entry(p.change.product_id).or_default();
                    input(*f, proposed, &mut slot.0);
                    if !slot.1.contains(&i) {
                        slot.1.push(i);
                    }
                }
                (Level::Variant, Some(v)) => {
                    let slot = variants.entry(p.change.product_id).or_default();
                    input(*f, proposed, slot.0.entry(v).or_default());
                    if !slot.1.contains(&i) {
                        slot.1.push(i);
                    }
                }
                _ => {}
            }
        }
    }
    let product_inputs: Vec<Value> = products
        .iter()
        .map(|(id, (fields, _))| {
            let mut input = fields.clone();
            input.insert("id".into(), json!(format!("gid://shopify/Product/{id}")));
            json!({ "product": input })
        })
        .collect();
    let product_answers = match how {
        Write::Aliased(aliases) => {
            client
                .mutate_aliased(&PRODUCT_UPDATE, product_inputs, false, aliases)
                .await?
        }
        Write::Bulk => {
            super::push_bulk::mutate(
                client,
                &PRODUCT_UPDATE.single(),
                PRODUCT_UPDATE.field,
                product_inputs,
            )
            .await?
        }
    };
    let variant_inputs: Vec<Value> = variants
        .iter()
        .map(|(pid, (by_variant, _))| {
            let list: Vec<Value> = by_variant
                .iter()
                .map(|(vid, fields)| {
                    let mut input = fields.clone();
                    input.insert(
                        "id".into(),
                        json!(format!("gid://shopify/ProductVariant/{vid}")),
                    );
                    Value::Object(input)
                })
                .collect();
            json!({ "productId": format!("gid://shopify/Product/{pid}"), "variants": list })
        })
        .collect();
    let variant_answers = match how {
        Write::Aliased(aliases) => {
            client
                .mutate_aliased(&VARIANTS_UPDATE, variant_inputs, false, aliases)
                .await?
        }
        Write::Bulk => {
            super::push_bulk::mutate(
                client,
                &VARIANTS_UPDATE.single(),
                VARIANTS_UPDATE.field,
                variant_inputs,
            )
            .await?
        }
    };
    // Shopify's answers: user errors fail the changes a mutation carried; the rest updates the
    // snapshot.
    let mut product_snapshots = Vec::new();
    for ((_, (_, carried)), answer) in products.iter().zip(&product_answers) {
        match user_errors(answer) {
            Some(e) => fail(&mut plans, carried, &e),
            None => match snapshot::product(&answer["product"]) {
                Ok(s) => product_snapshots.push(s),
                Err(e) => {
                    tracing::warn!(shop = %shop.name, error = %e, "a pushed product's answer could not be read; the next pull refreshes it")
                }
            },
        }
    }
    let mut variant_values: BTreeMap<i64, Map<String, Value>> = BTreeMap::new();
    for ((_, (_, carried)), answer) in variants.iter().zip(&variant_answers) {
        match user_errors(answer) {
            Some(e) => fail(&mut plans, carried, &e),
            None => {
                for v in answer["productVariants"].as_array().into_iter().flatten() {
                    let Ok(id) = snapshot::gid_id(v, "id") else {
                        continue;
                    };
                    variant_values.entry(id).or_default().extend(
                        super::FIELDS
                            .iter()
                            .filter(|f| f.level == Level::Variant && !f.is_inventory())
                            .map(|f| (f.name.to_owned(), f.read(v))),
                    );
                }
            }
        }
    }
    // Stock, compare-and-swap from the base: a quantity Shopify changed since the read is a
    // conflict, not an overwrite (shown with what Shopify has after all, read again). Changes
    // Shopify refused above send none; of two changes setting one location the later's goes.
    let mut stock: Vec<inventory::Set> = Vec::new();
    let mut setting: HashMap<(Option<i64>, String), usize> = HashMap::new();
    for (i, p) in plans.iter_mut().enumerate() {
        for (f, o, current) in p.fields.iter_mut() {
            if *o != Outcome::Write || !f.is_inventory() {
                continue;
            }
            if p.error.is_some() {
                *o = Outcome::Refused;
                continue;
            }
            let proposed = &p.change.fields[f.name]["proposed"];
            for set in inventory::sets(i, p.inventory_item.as_deref(), current, proposed) {
                let key = (p.change.variant_id, set.location().to_owned());
                match setting.get(&key) {
                    Some(&j) => stock[j] = set,
                    None => {
                        setting.insert(key, stock.len());
                        stock.push(set);
                    }
                }
            }
        }
    }
    let carrying: std::collections::HashSet<usize> = stock.iter().map(|s| s.plan()).collect();
    for (i, p) in plans.iter_mut().enumerate() {
        for (f, o, _) in p.fields.iter_mut() {
            if *o == Outcome::Write && f.is_inventory() && !carrying.contains(&i) {
                *o = Outcome::Superseded;
            }
        }
    }
    let fates = inventory::set_all(client, job_id, &stock).await?;
    let raced: Vec<String> = fates
        .iter()
        .filter(|(_, f)| **f == inventory::Fate::Conflict)
        .map(|(i, _)| target_gid(plans[*i].change))
        .collect();
    let reread = if raced.is_empty() {
        HashMap::new()
    } else {
        read_nodes(client, &raced, &locations).await?
    };
    for (i, fate) in fates {
        match fate {
            inventory::Fate::Written(levels) => {
                if let Some(v) = plans[i].change.variant_id {
                    let slot = variant_values.entry(v).or_default();
                    let merged = slot.entry("inventory").or_insert_with(|| json!({}));
                    if let (Some(m), Some(l)) = (merged.as_object_mut(), levels.as_object()) {
                        m.extend(l.clone());
                    }
                }
            }
            inventory::Fate::Conflict => {
                let node = reread.get(&target_gid(plans[i].change));
                let proposed = &plans[i].change.fields["inventory"]["proposed"];
                for (f, o, current) in plans[i].fields.iter_mut() {
                    if f.is_inventory() {
                        *o = Outcome::Conflict;
                        if let Some(node) = node {
                            *current = f.part(&f.read(node), proposed);
                        }
                    }
                }
            }
            inventory::Fate::Failed(e) => {
                plans[i].error = Some(e);
                for (f, o, _) in plans[i].fields.iter_mut() {
                    if f.is_inventory() && *o == Outcome::Write {
                        *o = Outcome::Refused;
                    }
                }
            }
        }
    }
    let variant_values: Vec<(i64, Value)> = variant_values
        .into_iter()
        .map(|(id, m)| (id, Value::Object(m)))
        .collect();
    // Record outcomes and snapshots together.
    let outcomes: Vec<PushOutcome> = plans.iter().map(outcome).collect();
    let count = |s: &str| outcomes.iter().filter(|o| o.state == s).count() as i64;
    let tally = Tally {
        pushed: count("pushed"),
        conflicts: count("conflict"),
        failed: count("failed"),
    };
    let event = Event::PushProgress {
        shop_id: shop.id,
        job_id,
        pushed: tally.pushed,
        conflicts: tally.conflicts,
        failed: tally.failed,
    };
    let write = async {
        let mut tx = cat.pool().begin().await?;
        store::upsert_products(&mut tx, shop.id, None, None, &product_snapshots).await?;
        store::set_variant_fields(&mut tx, shop.id, &variant_values).await?;
        store::finish_push(&mut tx, job_id, &outcomes).await?;
        cowans_store::announce(&mut tx, &[], &[event]).await?;
        tx.commit().await?;
        Ok::<_, StoreError>(())
    };
    write
        .await
        .map_err(|e| ShopifyError::Transport(format!("recording the push: {e}")))?;
    crate::metrics::pushed(&shop.domain, tally.pushed, tally.conflicts, tally.failed);
    tracing::info!(shop = %shop.name, job = job_id, changes = batch.len(), "pushed a batch of changes");
    Ok(tally)
}

/// Fails the plans `carried` with Shopify's `error`: the fields the refused mutation carried
/// (all but inventory) were not written.
fn fail(plans: &mut [Plan<'_>], carried: &[usize], error: &str) {
    for i in carried {
        plans[*i].error = Some(error.to_owned());
        for (f, o, _) in plans[*i].fields.iter_mut() {
            if *o == Outcome::Write && !f.is_inventory() {
                *o = Outcome::Refused;
            }
        }
    }
}

/// A field's three-way check: Shopify has the proposed value already, still the base (write),
/// or something else (a conflict). Inventory per location: a location already at its proposed
/// quantity needs nothing, the others must still be at their base.
fn three_way(field: Field, current: &Value, f: &Value) -> Outcome {
    if field.is_inventory()
        && let (Some(cur), Some(base), Some(proposed)) = (
            current.as_object(),
            f["base"].as_object(),
            f["proposed"].as_object(),
        )
    {
        let mut all_there = true;
        for (location, q) in proposed {
            let now = cur.get(location);
            if now == Some(q) {
                continue;
            }
            all_there = false;
            if now != base.get(location) {
                return Outcome::Conflict;
            }
        }
        return if all_there {
            Outcome::Already
        } else {
            Outcome::Write
        };
    }
    if *current == f["proposed"] {
        Outcome::Already
    } else if *current == f["base"] {
        Outcome::Write
    } else {
        Outcome::Conflict
    }
}

/// A plan's outcome as the store records it: its fields with `current` and `outcome`.
fn outcome(p: &Plan<'_>) -> PushOutcome {
    let mut fields = p.change.fields.clone();
    for (f, o, current) in &p.fields {
        let name = match o {
            Outcome::Write => "written",
            Outcome::Refused => "failed",
            Outcome::Already => "already",
            Outcome::Conflict => "conflict",
            Outcome::Superseded => "superseded",
        };
        if let Some(slot) = fields.get_mut(f.name).and_then(Value::as_object_mut) {
            slot.insert("current".into(), current.clone());
            slot.insert("outcome".into(), json!(name));
        }
    }
    let state = if p.error.is_some() {
        "failed"
    } else if p.fields.iter().any(|(_, o, _)| *o == Outcome::Conflict) {
        "conflict"
    } else {
        "pushed"
    };
    PushOutcome {
        id: p.change.id,
        state,
        fields,
        error: p.error.clone(),
    }
}
