//! Staged changes: proposed values for fields of a product or variant, each with the base it was
//! made from, reviewed by a person before a push sends them to Shopify (see `push`). Staging,
//! decisions and resolutions are written with their audit entry in one transaction; approving
//! starts the shop's push in that transaction too.

pub(crate) mod bulk_edit;
mod fields;
pub mod import;
mod inventory;
mod operations;
pub(crate) mod push;
mod push_bulk;
mod state;
mod view;

use std::collections::{BTreeMap, HashMap};

use cowans_core::Actor;
use cowans_queue::{StoreError, StoreResult as Result};
use cowans_store::catalog::{
    self as store, ChangeFilter, ChangeOrigin, ChangeRow, Decide, NewChange, ProductRow, VariantRow,
};
use serde_json::{Map, Value, json};

pub use bulk_edit::{BulkEditSpec, BulkPreview, BulkSelection, PreviewDiff};
pub use fields::{FIELDS, Field, Level};
pub use operations::Operation;
pub use push::PushArgs;
pub use state::ChangeState;
pub use view::{ChangeView, FieldChange};

use crate::Catalog;

/// Proposed values for fields of one product (`variant_id: None`) or one of its variants, as a
/// person or a file gives them (checked and put in canonical form when staged).
#[derive(Debug, Clone, PartialEq)]
pub struct Edit {
    pub product_id: i64,
    pub variant_id: Option<i64>,
    pub fields: Map<String, Value>,
}

/// Where staged changes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// One edit through the API or the command line.
    Edit,
    BulkEdit(i64),
    Import(i64),
}

impl Source {
    fn parts(self) -> (&'static str, Option<i64>) {
        match self {
            Source::Edit => ("edit", None),
            Source::BulkEdit(id) => ("bulk_edit", Some(id)),
            Source::Import(id) => ("import", Some(id)),
        }
    }
}

/// What staging did: the changes staged, and how many edits proposed nothing new (every value
/// equal to the catalog's).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Staged {
    pub ids: Vec<i64>,
    pub unchanged: usize,
}

/// A decision on changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
}

impl Decision {
    fn to(self) -> ChangeState {
        match self {
            Decision::Approve => ChangeState::Approved,
            Decision::Reject => ChangeState::Rejected,
        }
    }

    fn action(self) -> &'static str {
        match self {
            Decision::Approve => "change.approve",
            Decision::Reject => "change.reject",
        }
    }
}

/// Which changes a decision covers.
#[derive(Debug, Clone, PartialEq)]
pub enum Selection {
    /// These changes; each must be in a state the decision moves from.
    Ids(Vec<i64>),
    /// Every change matching the filter in a state the decision moves from; `expected` is the
    /// count the caller saw, and the decision is refused if it is not the count now.
    Matching { filter: ChangeFilter, expected: i64 },
}

/// How a reviewer settles one conflicting field.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// Push the proposed value over Shopify's.
    Proposed,
    /// Keep Shopify's value: the field leaves the change.
    Current,
    /// Push this value instead.
    Value(Value),
}

/// A target's fields in the catalog now, by field name (the shape of a change's `snapshot`).
pub(crate) fn product_fields(p: &ProductRow) -> Value {
    json!({
        "title": p.title, "handle": p.handle, "description_html": p.description_html,
        "vendor": p.vendor, "product_type": p.product_type, "status": p.status, "tags": p.tags,
    })
}

pub(crate) fn variant_fields(v: &VariantRow) -> Value {
    json!({
        "price": v.price, "compare_at_price": v.compare_at_price, "sku": v.sku,
        "barcode": v.barcode, "inventory": v.inventory,
    })
}

/// `edit`'s fields checked against their level and put in canonical form; errors name
/// `<at>.<field>`.
fn checked_fields(edit: &Edit, at: &str) -> Result<BTreeMap<Field, Value>> {
    let level = if edit.variant_id.is_some() {
        Level::Variant
    } else {
        Level::Product
    };
    if edit.fields.is_empty() {
        return Err(StoreError::invalid(at, "proposes no field"));
    }
    let mut out = BTreeMap::new();
    for (name, v) in &edit.fields {
        let path = if at.is_empty() {
            name.clone()
        } else {
            format!("{at}.{name}")
        };
        let field = Field::named(name).ok_or_else(|| {
            StoreError::invalid(
                &path,
                format!(
                    "is not a field a change may propose; the fields are {}",
                    FIELDS.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
                ),
            )
        })?;
        if field.level != level {
            return Err(StoreError::invalid(
                &path,
                match level {
                    Level::Product => "is a variant's field: propose it in the variant's edit",
                    Level::Variant => "is a product's field: propose it in the product's edit",
                },
            ));
        }
        let v = field
            .canonical(v)
            .map_err(|m| StoreError::invalid(&path, m))?;
        out.insert(field, v);
    }
    Ok(out)
}

impl PartialOrd for Field {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Field {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name.cmp(other.name)
    }
}

/// The catalog's rows edits are checked against, by id (read once by whoever has them).
pub(crate) struct Targets {
    products: HashMap<i64, ProductRow>,
    variants: HashMap<i64, VariantRow>,
}

impl Targets {
    /// The products and variants `edits` name, read from the catalog.
    pub(crate) async fn load(cat: &Catalog, shop_id: i64, edits: &[Edit]) -> Result<Self> {
        let product_ids: Vec<i64> = edits.iter().map(|e| e.product_id).collect();
        let variant_ids: Vec<i64> = edits.iter().filter_map(|e| e.variant_id).collect();
        Ok(Self {
            products: store::products_by_id(cat.pool(), shop_id, &product_ids)
                .await?
                .into_iter()
                .map(|p| (p.id, p))
                .collect(),
            variants: store::variants_by_id(cat.pool(), shop_id, &variant_ids)
                .await?
                .into_iter()
                .map(|v| (v.id, v))
                .collect(),
        })
    }

    /// Rows already read (a bulk edit's chunk), by id.
    pub(crate) fn of(rows: Vec<(ProductRow, Vec<VariantRow>)>) -> Self {
        let mut t = Self {
            products: HashMap::with_capacity(rows.len()),
            variants: HashMap::new(),
        };
        for (p, vs) in rows {
            t.variants.extend(vs.into_iter().map(|v| (v.id, v)));
            t.products.insert(p.id, p);
        }
        t
    }

    /// [`Catalog::staged_changes`] against these rows.
    pub(crate) fn staged(
        &self,
        edits: &[Edit],
        at: &impl Fn(usize) -> String,
    ) -> Result<Vec<NewChange>> {
        // By target (product, variant): the first edit's index and the merged edit.
        let mut merged: BTreeMap<(i64, Option<i64>), (usize, Edit)> = BTreeMap::new();
        for (i, e) in edits.iter().enumerate() {
            match merged.entry((e.product_id, e.variant_id)) {
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert((i, e.clone()));
                }
                std::collections::btree_map::Entry::Occupied(mut o) => {
                    let fields = &mut o.get_mut().1.fields;
                    for (name, v) in &e.fields {
                        // Quantities by location add up location by location.
                        match (fields.get_mut(name), v) {
                            (Some(Value::Object(was)), Value::Object(more))
                                if name == "inventory" =>
                            {
                                was.extend(more.clone());
                            }
                            _ => {
                                fields.insert(name.clone(), v.clone());
                            }
                        }
                    }
                }
            }
        }
        let (index, unique): (Vec<usize>, Vec<Edit>) = merged.into_values().unzip();
        self.check_each(&unique, &|i| at(index[i]))
            .into_iter()
            .filter_map(|c| c.transpose())
            .collect()
    }

    /// [`Catalog::check_each`] against these rows.
    pub(crate) fn check_each(
        &self,
        edits: &[Edit],
        at: &impl Fn(usize) -> String,
    ) -> Vec<Result<Option<NewChange>>> {
        let check = |i: usize, e: &Edit| -> Result<Option<NewChange>> {
            let here = at(i);
            let whose = |f: &str| {
                if here.is_empty() {
                    f.to_owned()
                } else {
                    format!("{here}.{f}")
                }
            };
            let product_id = e.product_id;
            let product = self
                .products
                .get(&product_id)
                .filter(|p| p.deleted_at.is_none())
                .ok_or_else(|| {
                    StoreError::invalid(
                        whose("product_id"),
                        format!("product {product_id} is not in the shop's catalog (or was deleted in Shopify)"),
                    )
                })?;
            let snapshot = match e.variant_id {
                None => product_fields(product),
                Some(vid) => {
                    let v = self
                        .variants
                        .get(&vid)
                        .filter(|v| v.product_id == product_id)
                        .ok_or_else(|| {
                            StoreError::invalid(
                                whose("variant_id"),
                                format!("variant {vid} is not a variant of product {product_id} in the catalog"),
                            )
                        })?;
                    variant_fields(v)
                }
            };
            // Stock exactly as the catalog has it (an exported line imported back) proposes
            // nothing, even where it could not be proposed (negative, no location).
            let unchanged_stock = e
                .fields
                .get("inventory")
                .is_some_and(|v| *v == snapshot["inventory"]);
            let fields = if unchanged_stock {
                let mut e = e.clone();
                e.fields.remove("inventory");
                if e.fields.is_empty() {
                    return Ok(None);
                }
                checked_fields(&e, &here)?
            } else {
                checked_fields(e, &here)?
            };
            let mut change = Map::new();
            for (field, proposed) in fields {
                let base = field.part(&field.lenient(&snapshot[field.name]), &proposed);
                if field.is_inventory() {
                    stocked(&snapshot[field.name], &base)
                        .map_err(|m| StoreError::invalid(whose(field.name), m))?;
                }
                if base != proposed {
                    change.insert(
                        field.name.to_owned(),
                        json!({ "base": base, "proposed": proposed }),
                    );
                }
            }
            Ok((!change.is_empty()).then_some(NewChange {
                product_id,
                variant_id: e.variant_id,
                fields: Value::Object(change),
            }))
        };
        edits.iter().enumerate().map(|(i, e)| check(i, e)).collect()
    }
}

/// Why a variant's inventory cannot be changed at the locations of `base` (its levels there as
/// the catalog has them), if it cannot: levels never pulled, or a location not stocking it.
fn stocked(levels: &Value, base: &Value) -> std::result::Result<(), String> {
    if levels.is_null() {
        return Err(
            "the variant's inventory levels are not in the catalog yet: a full pull reads them"
                .into(),
        );
    }
    match base
        .as_object()
        .and_then(|b| b.iter().find(|(_, q)| q.is_null()))
    {
        Some((location, _)) => Err(format!(
            "the variant is not stocked at location {location} (as of the last pull)"
        )),
        None => Ok(()),
    }
}

impl Catalog {
    /// Stages `edits` of shop `shop_id` (all or none): each field is checked, its base read from
    /// the catalog, and fields already at the proposed value left out. Edits of one target are
    /// merged (later values win). `at(i)` names edit `i` in errors (`""` for a lone edit).
    pub async fn stage(
        &self,
        actor: &Actor,
        shop_id: i64,
        edits: &[Edit],
        source: Source,
        at: impl Fn(usize) -> String,
    ) -> Result<Staged> {
        let checked = self.staged_changes(shop_id, edits, &at).await?;
        let unchanged = edits.len() - checked.len().min(edits.len());
        let (source_name, source_id) = source.parts();
        let mut tx = self.pool().begin().await?;
        let ids = store::insert_changes(
            &mut tx,
            shop_id,
            ChangeOrigin {
                author: &actor.name,
                source: source_name,
                source_id,
            },
            &checked,
        )
        .await?;
        let recorded = self
            .front()
            .record(
                &mut tx,
                actor,
                "change.stage",
                Some(format!("shop:{shop_id}")),
                json!({ "source": source_name, "source_id": source_id, "count": ids.len(),
                        "ids": ids.iter().take(1000).collect::<Vec<_>>() }),
            )
            .await?;
        recorded.commit(tx).await?;
        Ok(Staged { ids, unchanged })
    }

    /// The changes `edits` make to the catalog's snapshot (read for them): at most one per
    /// target (edits of one target merged, later values winning), fields with their base, fields
    /// already at the proposed value left out (and targets left with none). The first bad edit
    /// fails them all.
    pub(crate) async fn staged_changes(
        &self,
        shop_id: i64,
        edits: &[Edit],
        at: &impl Fn(usize) -> String,
    ) -> Result<Vec<NewChange>> {
        let targets = Targets::load(self, shop_id, edits).await?;
        targets.staged(edits, at)
    }

    /// Each edit (one per target) against the catalog: its change, `None` when every value is
    /// already the catalog's, or why it cannot be staged (naming `at(i).<field>`).
    pub(crate) async fn check_each(
        &self,
        shop_id: i64,
        edits: &[Edit],
        at: &impl Fn(usize) -> String,
    ) -> Result<Vec<Result<Option<NewChange>>>> {
        Ok(Targets::load(self, shop_id, edits)
            .await?
            .check_each(edits, at))
    }

    /// A page of a shop's changes, newest first.
    pub async fn changes(
        &self,
        shop_id: i64,
        filter: &ChangeFilter,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ChangeRow>> {
        store::list_changes(
            self.pool(),
            shop_id,
            &checked_filter(filter)?,
            before,
            limit,
        )
        .await
    }

    /// Every change of `shop_id` matching `filter` (newest first) as CSV — one row per field —
    /// or JSON Lines, a page at a time; the filter is checked before the first byte.
    pub fn export_changes(
        &self,
        shop_id: i64,
        filter: ChangeFilter,
        format: cowans_queue::export::ExportFormat,
    ) -> Result<cowans_queue::ExportStream> {
        const PAGE: i64 = 1000;
        let filter = checked_filter(&filter)?;
        let catalog = self.clone();
        Ok(Box::pin(cowans_queue::export::export_pages(
            format,
            move |before| {
                let (catalog, filter) = (catalog.clone(), filter.clone());
                async move {
                    let page =
                        store::list_changes(catalog.pool(), shop_id, &filter, before, PAGE).await?;
                    let next = cowans_queue::export::next_cursor(&page, PAGE, |c| c.id);
                    Ok((page.into_iter().map(ChangeView::from).collect(), next))
                }
            },
        )))
    }

    /// One change of a shop.
    pub async fn change(&self, shop_id: i64, id: i64) -> Result<ChangeRow> {
        let mut conn = self.pool().acquire().await?;
        store::get_change(&mut conn, shop_id, id)
            .await?
            .ok_or_else(|| StoreError::not_found(format!("change {id} of shop {shop_id}")))
    }

    /// How many changes of the shop match `filter`.
    pub async fn count_changes(&self, shop_id: i64, filter: &ChangeFilter) -> Result<i64> {
        store::count_changes(self.pool(), shop_id, &checked_filter(filter)?, None, None).await
    }

    /// How many changes `actor`'s `decision` on every change matching `filter` would move: the
    /// count [`Selection::Matching`] expects (with `catalog.four_eyes`, an approval leaves the
    /// actor's own changes alone, and they are not counted).
    pub async fn count_decidable(
        &self,
        actor: &Actor,
        shop_id: i64,
        filter: &ChangeFilter,
        decision: Decision,
    ) -> Result<i64> {
        let from = ChangeState::from_states(decision.to());
        let four_eyes = decision == Decision::Approve && self.settings().four_eyes;
        let not_author = four_eyes.then_some(actor.name.as_str());
        let filter = checked_filter(filter)?;
        store::count_changes(
            self.pool(),
            shop_id,
            &filter,
            Some(from.as_slice()),
            not_author,
        )
        .await
    }

    /// How many changes of the shop are in each state.
    pub async fn change_counts(&self, shop_id: i64) -> Result<Vec<(String, i64)>> {
        store::change_counts(self.pool(), shop_id).await
    }

    /// Approves or rejects the selected changes with `reason`, audited; approving starts the
    /// shop's push (unless `catalog.push_on_approve` is off). With `catalog.four_eyes`, nobody
    /// approves their own change. Returns the ids decided.
    pub async fn decide(
        &self,
        actor: &Actor,
        shop_id: i64,
        selection: &Selection,
        decision: Decision,
        reason: Option<&str>,
    ) -> Result<Vec<i64>> {
        let to = decision.to();
        let from = ChangeState::from_states(to);
        let four_eyes = decision == Decision::Approve && self.settings().four_eyes;
        let not_author = four_eyes.then_some(actor.name.as_str());
        let mut tx = self.pool().begin().await?;
        let ids = match selection {
            Selection::Ids(ids) => {
                let mut ids = ids.clone();
                ids.sort_unstable();
                ids.dedup();
                if ids.is_empty() || ids.len() > 10_000 {
                    return Err(StoreError::invalid("ids", "must list 1 to 10000 changes"));
                }
                let states = store::change_states(&mut tx, shop_id, &ids).await?;
                for id in &ids {
                    let Some((_, state, author)) = states.iter().find(|(i, ..)| i == id) else {
                        return Err(StoreError::not_found(format!(
                            "change {id} of shop {shop_id}"
                        )));
                    };
                    if !from.contains(&state.as_str()) {
                        return Err(StoreError::conflict(format!(
                            "change {id} is {state}; only {} changes can be {}",
                            from.join(" or "),
                            to
                        )));
                    }
                    if not_author == Some(author.as_str()) {
                        return Err(StoreError::conflict(format!(
                            "change {id} is yours: with catalog.four_eyes on, another person must approve it"
                        )));
                    }
                }
                let filter = ChangeFilter {
                    ids: Some(ids.clone()),
                    ..Default::default()
                };
                let moved = store::decide_changes(
                    &mut tx,
                    shop_id,
                    &filter,
                    Decide {
                        from: &from,
                        to: to.as_str(),
                        by: &actor.name,
                        reason,
                        not_author: None,
                    },
                )
                .await?;
                if moved.len() != ids.len() {
                    // Another decision or a push moved one of them meanwhile.
                    return Err(StoreError::conflict(
                        "one of the changes moved on while deciding; look again",
                    ));
                }
                moved
            }
            Selection::Matching { filter, expected } => {
                let filter = checked_filter(filter)?;
                let ids = store::decide_changes(
                    &mut tx,
                    shop_id,
                    &filter,
                    Decide {
                        from: &from,
                        to: to.as_str(),
                        by: &actor.name,
                        reason,
                        not_author,
                    },
                )
                .await?;
                if ids.len() as i64 != *expected {
                    return Err(StoreError::Conflict {
                        message: format!(
                            "{} changes match now, not the {expected} expected: look again and send the count you saw",
                            ids.len()
                        ),
                        details: json!({ "actual": ids.len(), "expected": expected }),
                    });
                }
                ids
            }
        };
        let push_job = if decision == Decision::Approve
            && !ids.is_empty()
            && self.settings().push_on_approve
        {
            Some(push::enqueue(self, &mut tx, shop_id).await?)
        } else {
            None
        };
        let details = json!({
            "count": ids.len(), "ids": ids.iter().take(1000).collect::<Vec<_>>(),
            "reason": reason, "push_job": push_job,
            "filter": match selection { Selection::Matching { filter, .. } => Some(format!("{filter:?}")), Selection::Ids(_) => None },
        });
        let recorded = self
            .front()
            .record(
                &mut tx,
                actor,
                decision.action(),
                Some(format!("shop:{shop_id}")),
                details,
            )
            .await?;
        recorded.commit(tx).await?;
        Ok(ids)
    }

    /// Settles a change in conflict: each conflicting field is pushed as proposed, left at
    /// Shopify's value, or given a new value; the change goes back to `pending` (or is rejected
    /// when no field is left). Every conflicting field must be settled.
    pub async fn resolve(
        &self,
        actor: &Actor,
        shop_id: i64,
        id: i64,
        choices: &BTreeMap<String, Resolution>,
        reason: Option<&str>,
    ) -> Result<ChangeState> {
        let mut tx = self.pool().begin().await?;
        let change = store::get_change(&mut tx, shop_id, id)
            .await?
            .ok_or_else(|| StoreError::not_found(format!("change {id} of shop {shop_id}")))?;
        if change.state != ChangeState::Conflict.as_str() {
            return Err(StoreError::conflict(format!(
                "change {id} is {}; only changes in conflict are resolved",
                change.state
            )));
        }
        for name in choices.keys() {
            if change.fields.get(name).map(|f| &f["outcome"]) != Some(&json!("conflict")) {
                return Err(StoreError::invalid(
                    format!("fields.{name}"),
                    "is not a field of this change in conflict",
                ));
            }
        }
        let mut fields = Map::new();
        for (name, f) in change.fields.as_object().into_iter().flatten() {
            let Some(field) = Field::named(name) else {
                continue;
            };
            if f["outcome"] != json!("conflict") {
                fields.insert(
                    name.clone(),
                    json!({ "base": f["base"], "proposed": f["proposed"] }),
                );
                continue;
            }
            let current = f["current"].clone();
            let proposed = match choices.get(name) {
                None => {
                    return Err(StoreError::invalid(
                        format!("fields.{name}"),
                        "is in conflict: choose proposed, current or a value",
                    ));
                }
                Some(Resolution::Current) => continue,
                Some(Resolution::Proposed) => f["proposed"].clone(),
                Some(Resolution::Value(v)) => {
                    let v = field
                        .canonical(v)
                        .map_err(|m| StoreError::invalid(format!("fields.{name}.value"), m))?;
                    if let (Some(new), Some(was)) = (v.as_object(), current.as_object())
                        && let Some(other) = new.keys().find(|k| !was.contains_key(*k))
                    {
                        return Err(StoreError::invalid(
                            format!("fields.{name}.value"),
                            format!("location {other} is not one this change is about"),
                        ));
                    }
                    v
                }
            };
            let current = field.part(&current, &proposed);
            if proposed != current {
                fields.insert(
                    name.clone(),
                    json!({ "base": current, "proposed": proposed }),
                );
            }
        }
        let to = if fields.is_empty() {
            if store::decide_changes(
                &mut tx,
                shop_id,
                &ChangeFilter {
                    ids: Some(vec![id]),
                    ..Default::default()
                },
                Decide {
                    from: &[ChangeState::Conflict.as_str()],
                    to: ChangeState::Rejected.as_str(),
                    by: &actor.name,
                    reason: Some(reason.unwrap_or("resolved by keeping Shopify's values")),
                    not_author: None,
                },
            )
            .await?
            .is_empty()
            {
                return Err(StoreError::conflict(format!(
                    "change {id} is no longer in conflict"
                )));
            }
            ChangeState::Rejected
        } else {
            if !store::resolve_change(
                &mut tx,
                shop_id,
                id,
                &Value::Object(fields.clone()),
                &actor.name,
                reason,
            )
            .await?
            {
                return Err(StoreError::conflict(format!(
                    "change {id} is no longer in conflict"
                )));
            }
            ChangeState::Pending
        };
        let recorded = self
            .front()
            .record(
                &mut tx,
                actor,
                "change.resolve",
                Some(format!("change:{id}")),
                json!({ "state": to, "fields": fields, "reason": reason }),
            )
            .await?;
        recorded.commit(tx).await?;
        Ok(to)
    }
}

/// `filter` with its state and field checked (errors name them).
fn checked_filter(filter: &ChangeFilter) -> Result<ChangeFilter> {
    if let Some(s) = &filter.state
        && ChangeState::parse(s).is_none()
    {
        return Err(StoreError::invalid(
            "state",
            format!(
                "is {s:?}; it must be one of {}",
                ChangeState::ALL.map(ChangeState::as_str).join(", ")
            ),
        ));
    }
    if let Some(f) = &filter.field
        && Field::named(f).is_none()
    {
        return Err(StoreError::invalid(
            "field",
            format!("{f:?} is not a field a change may propose"),
        ));
    }
    if let Some(s) = &filter.source
        && !["edit", "bulk_edit", "import"].contains(&s.as_str())
    {
        return Err(StoreError::invalid(
            "source",
            "must be one of edit, bulk_edit, import",
        ));
    }
    Ok(filter.clone())
}
