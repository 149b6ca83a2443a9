//! `inventorySetQuantities` with compare-and-swap (`changeFromQuantity`) and idempotency keys
//! (`@idempotent(key:)`): optional in 2026-01, required from 2026-04, as are explicit
//! `changeFromQuantity` values. A key seen again with the same input answers the first result
//! without applying it twice; with a different input, `IDEMPOTENCY_KEY_PARAMETER_MISMATCH`.

use async_graphql::InputType;

use super::*;

type Code = InventorySetQuantitiesUserErrorCode;

/// How long Shopify keeps idempotency keys.
const KEY_TTL_SECS: i64 = 24 * 3600;

/// Reasons `inventorySetQuantities` accepts.
const REASONS: &[&str] = &[
    "correction",
    "cycle_count_available",
    "damaged",
    "movement_canceled",
    "movement_created",
    "movement_received",
    "movement_updated",
    "other",
    "promotion",
    "quality_control",
    "received",
    "reservation_created",
    "reservation_deleted",
    "reservation_updated",
    "restock",
    "safety_stock",
    "shrinkage",
];

const MAX_QUANTITY: i64 = 1_000_000_000;

#[derive(Default)]
pub struct InventoryMutations;

#[Object]
impl InventoryMutations {
    /// Sets absolute quantities. A `changeFromQuantity` that differs from the current quantity
    /// refuses the whole call with `CHANGE_FROM_QUANTITY_STALE`.
    async fn inventory_set_quantities(
        &self,
        ctx: &Context<'_>,
        input: InventorySetQuantitiesInput,
    ) -> Result<InventorySetQuantitiesPayload> {
        let key = idempotency_key(ctx)?;
        let strict = since(ctx, "2026-04");
        if strict && key.is_none() {
            return Err(Error::new(
                "The @idempotent directive is required for inventorySetQuantities as of API version 2026-04.",
            )
            .extend_with(|_, e| e.set("code", "BAD_REQUEST")));
        }
        if strict
            && let Some(i) = input
                .quantities
                .iter()
                .position(|q| q.change_from_quantity.is_undefined())
        {
            return Err(Error::new(format!(
                "input.quantities.{i}.changeFromQuantity must be given as of API version 2026-04 (pass null to skip the compare-and-swap check)."
            ))
            .extend_with(|_, e| e.set("code", "BAD_REQUEST")));
        }
        if input.quantities.len() > MAX_INPUT_ARRAY {
            return Err(too_many(input.quantities.len()));
        }
        let fingerprint = input.to_value().to_string();
        let shop = ctx.data::<Shop>()?;
        let mut s = shop.lock();
        let now = s.clock.now();
        s.idempotency
            .retain(|_, (_, at, _)| (now - *at).num_seconds() < KEY_TTL_SECS);
        if let Some(k) = &key
            && let Some((seen, _, answer)) = s.idempotency.get(k)
        {
            if *seen == fingerprint {
                return Ok(answer.clone());
            }
            return Ok(InventorySetQuantitiesPayload {
                inventory_adjustment_group: None,
                user_errors: vec![coded(
                    &["input"],
                    "The same idempotency key cannot be used with different operation parameters.",
                    Code::IdempotencyKeyParameterMismatch,
                )],
            });
        }
        apply_stock_moves(&mut s);
        let answer = set_quantities(&mut s, &input);
        if let Some(k) = key {
            s.idempotency.insert(k, (fingerprint, now, answer.clone()));
        }
        Ok(answer)
    }
}

/// The stock moves a test queued for this moment (see `Faults::stock_moves`).
fn apply_stock_moves(s: &mut ShopState) {
    let now = s.clock.now();
    for m in std::mem::take(&mut s.faults.stock_moves) {
        let location = m.location_id.or_else(|| s.locations.first().map(|l| l.id));
        let (Some((pid, vix)), Some(location)) =
            (s.catalog.by_inventory_item(m.inventory_item_id), location)
        else {
            continue;
        };
        let p = s.catalog.products.get_mut(&pid).expect("found above");
        *p.variants[vix].levels.entry(location).or_insert(0) += m.delta;
        p.updated_at = now;
    }
}

fn set_quantities(
    s: &mut ShopState,
    input: &InventorySetQuantitiesInput,
) -> InventorySetQuantitiesPayload {
    let fail = |errors| InventorySetQuantitiesPayload {
        inventory_adjustment_group: None,
        user_errors: errors,
    };
    if let Some(e) = forced_coded(s, "inventorySetQuantities", Code::InvalidInventoryItem) {
        return fail(e);
    }
    if input.name != "available" && input.name != "on_hand" {
        return fail(vec![coded(
            &["input", "name"],
            "The quantity name must be either 'available' or 'on_hand'.",
            Code::InvalidName,
        )]);
    }
    if !REASONS.contains(&input.reason.as_str()) {
        return fail(vec![coded(
            &["input", "reason"],
            "The specified reason is invalid.",
            Code::InvalidReason,
        )]);
    }
    if let Some(uri) = &input.reference_document_uri
        && uri.starts_with("gid://shopify/")
    {
        return fail(vec![coded(
            &["input", "referenceDocumentUri"],
            "The specified reference document is invalid.",
            Code::InvalidReferenceDocument,
        )]);
    }
    let mut targets = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, q) in input.quantities.iter().enumerate() {
        let i = i.to_string();
        let at = |f: &str| {
            ["input", "quantities", i.as_str(), f]
                .map(str::to_owned)
                .to_vec()
        };
        let err = |f: &str, m: &str, c| CodedError {
            code: Some(c),
            field: Some(at(f)),
            message: m.to_owned(),
        };
        let item = parse_gid(&q.inventory_item_id, "InventoryItem").ok();
        let Some((pid, vix)) = item.and_then(|i| s.catalog.by_inventory_item(i)) else {
            return fail(vec![err(
                "inventoryItemId",
                "The specified inventory item could not be found.",
                Code::InvalidInventoryItem,
            )]);
        };
        let location = parse_gid(&q.location_id, "Location").ok();
        let Some(location) = location.and_then(|l| s.locations.iter().find(|x| x.id == l)) else {
            return fail(vec![err(
                "locationId",
                "The specified location could not be found.",
                Code::InvalidLocation,
            )]);
        };
        let variant = &s.catalog.products[&pid].variants[vix];
        let Some(current) = variant
            .levels
            .get(&location.id)
            .copied()
            .filter(|_| location.active)
        else {
            return fail(vec![err(
                "locationId",
                "The inventory item is not stocked at the location.",
                Code::ItemNotStockedAtLocation,
            )]);
        };
        if !seen.insert((pid, vix, location.id)) {
            return fail(vec![err(
                "inventoryItemId",
                "The combination of inventoryItemId and locationId must be unique.",
                Code::NoDuplicateInventoryItemIdGroupIdPair,
            )]);
        }
        let quantity = i64::from(q.quantity);
        if quantity > MAX_QUANTITY {
            return fail(vec![err(
                "quantity",
                "The quantity can't be higher than 1,000,000,000.",
                Code::InvalidQuantityTooHigh,
            )]);
        }
        if quantity < -MAX_QUANTITY {
            return fail(vec![err(
                "quantity",
                "The quantity can't be lower than -1,000,000,000.",
                Code::InvalidQuantityTooLow,
            )]);
        }
        if let MaybeUndefined::Value(expected) = q.change_from_quantity
            && i64::from(expected) != current
        {
            return fail(vec![err(
                "changeFromQuantity",
                &format!(
                    "The changeFromQuantity value does not match persisted value: expected {expected}, found {current}."
                ),
                Code::ChangeFromQuantityStale,
            )]);
        }
        targets.push((pid, vix, quantity, current, location.clone()));
    }
    let now = s.clock.now();
    let bump = s.inventory_bumps_updated_at;
    let mut changes = Vec::new();
    for (pid, vix, qty, before, location) in targets {
        let p = s.catalog.products.get_mut(&pid).expect("found above");
        p.variants[vix].levels.insert(location.id, qty);
        if bump {
            p.updated_at = now;
        }
        let item = InventoryItem::of(&p.variants[vix]);
        for name in [
            input.name.as_str(),
            if input.name == "available" {
                "on_hand"
            } else {
                "available"
            },
        ] {
            changes.push(InventoryChange {
                name: name.to_owned(),
                delta: qty - before,
                quantity_after_change: Some(qty),
                item: Some(item.clone()),
                location: Some(Location::of(&location)),
            });
        }
        s.emit_product("products/update", pid);
    }
    let group = s.catalog.next_id();
    InventorySetQuantitiesPayload {
        inventory_adjustment_group: Some(InventoryAdjustmentGroup {
            id: gid("InventoryAdjustmentGroup", group),
            created_at: DateTime::of(now),
            reason: input.reason.clone(),
            reference_document_uri: input.reference_document_uri.clone(),
            all_changes: changes,
        }),
        user_errors: vec![],
    }
}
