//! A push's stock writes: `inventorySetQuantities` of the `available` quantity, each quantity
//! compare-and-swapped from the value the push's read found (`changeFromQuantity`), up to 250
//! per call, each call under its own idempotency key (so a retried request is not applied
//! twice). Shopify refuses a whole call for one stale or bad quantity and says which: that
//! change is taken out (a conflict, or a failure with Shopify's message) and the rest is sent
//! again.

use std::collections::{BTreeMap, HashSet};

use cowans_shopify::{Client, ShopifyError};
use serde_json::{Map, Value, json};

/// Most quantities in one `inventorySetQuantities` call.
const MAX_PER_CALL: usize = 250;

/// One quantity to set, for the plan (change) `plan`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Set {
    plan: usize,
    /// The variant's inventory item (GID); `None` if the read did not show one.
    item: Option<String>,
    /// The location's id.
    location: String,
    quantity: i64,
    /// What the read found (the base); `None`: the item is not stocked there.
    from: Option<i64>,
}

impl Set {
    pub(super) fn plan(&self) -> usize {
        self.plan
    }

    pub(super) fn location(&self) -> &str {
        &self.location
    }
}

/// What became of a plan's stock.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Fate {
    /// Set: `{"<location id>": quantity}`.
    Written(Value),
    /// Shopify's quantity changed since the read.
    Conflict,
    /// Shopify refused it.
    Failed(String),
}

/// The quantities plan `plan` sets: each location whose `current` differs from `proposed`.
pub(super) fn sets(plan: usize, item: Option<&str>, current: &Value, proposed: &Value) -> Vec<Set> {
    proposed
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(location, q)| current.get(*location) != Some(*q))
        .filter_map(|(location, q)| {
            Some(Set {
                plan,
                item: item.map(str::to_owned),
                location: location.clone(),
                quantity: q.as_i64()?,
                from: current.get(location).and_then(Value::as_i64),
            })
        })
        .collect()
}

/// Sends `sets`; returns each plan's fate (one per plan that had any).
pub(super) async fn set_all(
    client: &Client,
    job_id: i64,
    sets: &[Set],
) -> Result<BTreeMap<usize, Fate>, ShopifyError> {
    let mut fates: BTreeMap<usize, Fate> = BTreeMap::new();
    let mut queue: Vec<&Set> = Vec::with_capacity(sets.len());
    for s in sets {
        if s.item.is_none() {
            fates.insert(
                s.plan,
                Fate::Failed("Shopify showed no inventory item for the variant".into()),
            );
        } else if s.from.is_none() {
            fates.insert(
                s.plan,
                Fate::Failed(format!(
                    "the variant is not stocked at location {}",
                    s.location
                )),
            );
        } else {
            queue.push(s);
        }
    }
    queue.sort_by_key(|s| s.plan);
    let out: HashSet<usize> = fates.keys().copied().collect();
    queue.retain(|s| !out.contains(&s.plan));
    while !queue.is_empty() {
        // Whole plans only (a change's locations are never split between calls: one call's
        // refusal would leave it half written); one plan has at most 250 locations.
        let mut n = queue.len().min(MAX_PER_CALL);
        while n < queue.len() && n > 0 && queue[n - 1].plan == queue[n].plan {
            n -= 1;
        }
        if n == 0 {
            n = queue.len().min(MAX_PER_CALL);
        }
        let chunk = &queue[..n];
        let payload = call(client, job_id, chunk).await?;
        let errors = payload["userErrors"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if errors.is_empty() && !payload.is_null() {
            for s in chunk {
                let fate = fates
                    .entry(s.plan)
                    .or_insert_with(|| Fate::Written(json!({})));
                if let Fate::Written(Value::Object(levels)) = fate {
                    levels.insert(s.location.clone(), json!(s.quantity));
                }
            }
            queue.drain(..n);
            continue;
        }
        // Which quantities Shopify refused (`field: ["input", "quantities", "<i>", ...]`).
        let mut refused: BTreeMap<usize, Fate> = BTreeMap::new();
        let mut unplaced: Option<String> = payload
            .is_null()
            .then(|| "Shopify answered nothing for inventorySetQuantities".to_owned());
        // The idempotency key in use by a retry of this very request, or a first attempt that
        // failed part-way: the push is retried as a whole (it reads again first).
        if let Some(e) = errors.iter().find(|e| {
            e["code"].as_str().is_some_and(|c| {
                c.starts_with("IDEMPOTENCY_") && c != "IDEMPOTENCY_KEY_PARAMETER_MISMATCH"
            })
        }) {
            return Err(ShopifyError::Transport(format!(
                "inventorySetQuantities: {} ({})",
                e["message"].as_str().unwrap_or("refused"),
                e["code"].as_str().unwrap_or_default()
            )));
        }
        for e in &errors {
            let message = e["message"].as_str().unwrap_or("refused").to_owned();
            let at = e["field"]
                .as_array()
                .filter(|f| f.len() > 2 && f[0] == "input" && f[1] == "quantities")
                .and_then(|f| f[2].as_str()?.parse::<usize>().ok())
                .and_then(|i| chunk.get(i));
            match at {
                Some(s) if e["code"] == "CHANGE_FROM_QUANTITY_STALE" => {
                    refused.insert(s.plan, Fate::Conflict);
                }
                Some(s) => {
                    refused.insert(
                        s.plan,
                        Fate::Failed(format!("inventory at location {}: {message}", s.location)),
                    );
                }
                None => unplaced = Some(message),
            }
        }
        if refused.is_empty() {
            // Nothing to take out: the call as a whole was refused.
            let why = unplaced.unwrap_or_else(|| "refused".into());
            for s in chunk {
                fates.insert(s.plan, Fate::Failed(format!("inventory: {why}")));
            }
            queue.drain(..n);
            continue;
        }
        let out: HashSet<usize> = refused.keys().copied().collect();
        fates.extend(refused);
        queue.retain(|s| !out.contains(&s.plan));
    }
    Ok(fates)
}

/// One `inventorySetQuantities` call; its payload.
async fn call(client: &Client, job_id: i64, chunk: &[&Set]) -> Result<Value, ShopifyError> {
    let quantities: Vec<Value> = chunk
        .iter()
        .map(|s| {
            json!({
                "inventoryItemId": s.item,
                "locationId": format!("gid://shopify/Location/{}", s.location),
                "quantity": s.quantity,
                "changeFromQuantity": s.from,
            })
        })
        .collect();
    let mut input = Map::new();
    input.insert("name".into(), json!("available"));
    input.insert("reason".into(), json!("correction"));
    input.insert(
        "referenceDocumentUri".into(),
        json!(format!("cowans://push/{job_id}")),
    );
    input.insert("quantities".into(), Value::Array(quantities));
    // A fresh key per call; the client's retries of this request resend it unchanged.
    let key = format!("cowans-{:032x}", rand::random::<u128>());
    let doc = format!(
        "mutation($input: InventorySetQuantitiesInput!) {{ \
         inventorySetQuantities(input: $input) @idempotent(key: \"{key}\") {{ \
         inventoryAdjustmentGroup {{ id }} userErrors {{ field message code }} }} }}"
    );
    let answer = client
        .mutate::<Value>(&doc, json!({ "input": input }), true)
        .await?;
    Ok(answer.data["inventorySetQuantities"].clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_locations_not_already_at_the_proposed_quantity_are_set() {
        let s = sets(
            3,
            Some("gid://shopify/InventoryItem/1"),
            &json!({"7": 4, "8": 2}),
            &json!({"7": 5, "8": 2}),
        );
        assert_eq!(
            s,
            vec![Set {
                plan: 3,
                item: Some("gid://shopify/InventoryItem/1".into()),
                location: "7".into(),
                quantity: 5,
                from: Some(4),
            }]
        );
    }
}
