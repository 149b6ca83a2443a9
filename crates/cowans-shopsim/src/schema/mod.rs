//! The GraphQL schema the simulator answers: a faithful subset of the Admin API 2026-10 for
//! products, variants, inventory, the shop, locations, bulk operations and webhook
//! subscriptions. `scalars`, `types` (objects, enums, the `Node` interface), `errors` (the
//! typed userErrors), `inputs`, the query root (`query`), and the mutation root merged from
//! `products`, `product_set`, `inventory`, `bulk` and `webhooks`.
//!
//! The request's API version reaches resolvers as [`ApiVersion`] data, so rules that changed
//! between versions are applied by version ([`since`]).

mod bulk;
mod errors;
mod inputs;
mod inventory;
mod product_set;
mod products;
mod query;
mod scalars;
mod types;
mod webhooks;

use std::sync::{Arc, Mutex};

use async_graphql::{
    ComplexObject, Context, CustomDirective, Directive, EmptySubscription, Enum, Error,
    ErrorExtensions, ID, InputObject, InputValueError, InputValueResult, Interface, MaybeUndefined,
    MergedObject, Object, Result, Scalar, ScalarType, Schema, SimpleObject, Value,
};

use crate::{
    model::{Cursor, Product, Search, SortKey, Variant},
    shop::{Shop, ShopState},
};

pub use bulk::*;
pub use errors::*;
pub use inputs::*;
pub use query::QueryRoot;
pub use scalars::*;
pub use types::*;
pub use webhooks::*;

/// The newest API version; requests without [`ApiVersion`] data (bulk runs) read as it.
pub const LATEST: &str = "2026-10";

/// The API version a request was made with (`/admin/api/{version}/graphql.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiVersion(pub &'static str);

/// The request's API version.
pub(crate) fn version<'a>(ctx: &Context<'a>) -> &'a str {
    ctx.data_opt::<ApiVersion>().map_or(LATEST, |v| v.0)
}

/// True if the request's API version is `v` or newer (`unstable` is newest).
pub(crate) fn since(ctx: &Context<'_>, v: &str) -> bool {
    let current = version(ctx);
    current == "unstable" || current >= v
}

/// Search warnings (`extensions.search`) gathered while a request runs.
#[derive(Clone, Default)]
pub struct SearchWarnings(pub Arc<Mutex<Vec<serde_json::Value>>>);

/// Records the warnings of `search` (the `query` argument of the current field).
pub(crate) fn warn_search(ctx: &Context<'_>, query: &str, search: &Search) {
    if let Some(w) = ctx.data_opt::<SearchWarnings>() {
        let field = ctx.field();
        let path = field.alias().unwrap_or(field.name()).to_owned();
        let warnings: Vec<serde_json::Value> = search
            .warnings()
            .iter()
            .map(|w| serde_json::json!({"field": w.field, "message": w.message}))
            .collect();
        w.0.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(serde_json::json!({"path": [path], "query": query, "warnings": warnings}));
    }
}

/// Every mutation, merged from one object per area (Shopify's type is named `Mutation`).
#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(
    products::ProductMutations,
    product_set::ProductSetMutation,
    inventory::InventoryMutations,
    bulk::BulkMutations,
    webhooks::WebhookMutations,
);

pub type SimSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

struct Idempotent;

impl CustomDirective for Idempotent {}

/// `@idempotent(key: String!)` on a mutation field: the idempotency key of that mutation
/// (required on inventory mutations from 2026-04; read by the resolvers).
#[Directive(location = "Field")]
fn idempotent(key: String) -> impl CustomDirective {
    let _ = key;
    Idempotent
}

/// The `key` of the current field's `@idempotent` directive.
pub(crate) fn idempotency_key(ctx: &Context<'_>) -> Result<Option<String>> {
    let directives = ctx.field().directives()?;
    Ok(directives
        .iter()
        .find(|d| d.name.node == "idempotent")
        .and_then(|d| {
            d.arguments
                .iter()
                .find(|(n, _)| n.node == "key")
                .and_then(|(_, v)| match &v.node {
                    async_graphql::Value::String(s) => Some(s.clone()),
                    _ => None,
                })
        }))
}

pub fn build(shop: Shop) -> SimSchema {
    let slot: SchemaSlot = Default::default();
    let schema = Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        EmptySubscription,
    )
    .data(shop)
    .data(slot.clone())
    .directive(idempotent)
    .finish();
    // Bulk mutations run lines through the schema itself.
    let _ = slot.0.set(schema.clone());
    schema
}

/// The schema, for resolvers that execute other operations (bulk mutations).
#[derive(Clone, Default)]
pub struct SchemaSlot(std::sync::Arc<std::sync::OnceLock<SimSchema>>);

pub(crate) fn gid(kind: &str, id: u64) -> ID {
    ID(format!("gid://shopify/{kind}/{id}"))
}

fn invalid_gid(id: &ID) -> Error {
    Error::new(format!("Invalid global id '{}'", id.as_str()))
        .extend_with(|_, e| e.set("code", "argumentLiteralsIncompatible"))
}

pub(crate) fn parse_gid(id: &ID, kind: &str) -> Result<u64> {
    let g: cowans_shopify::Gid = id.parse().map_err(|_| invalid_gid(id))?;
    if g.kind != kind {
        return Err(Error::new(format!(
            "Invalid global id '{}' for type {kind}",
            id.as_str()
        )));
    }
    Ok(g.id)
}

/// A global id of any type: `(type, number)`.
pub(crate) fn parse_any_gid(id: &ID) -> Result<(String, u64)> {
    let g: cowans_shopify::Gid = id.parse().map_err(|_| invalid_gid(id))?;
    Ok((g.kind, g.id))
}

pub(crate) const MAX_PAGE: i32 = 250;
/// Input arrays hold at most 250 items, on every API.
pub(crate) const MAX_INPUT_ARRAY: usize = 250;

pub(crate) fn page_size(first: Option<i32>, last: Option<i32>) -> Result<usize> {
    let n = first.or(last).ok_or_else(|| {
        Error::new("you must provide one of first or last")
            .extend_with(|_, e| e.set("code", "BAD_REQUEST"))
    })?;
    if !(0..=MAX_PAGE).contains(&n) {
        return Err(Error::new(format!(
            "The first/last argument must be between 0 and {MAX_PAGE}, got {n}"
        ))
        .extend_with(|_, e| e.set("code", "BAD_REQUEST")));
    }
    Ok(n as usize)
}

/// Paging arguments of a connection.
pub(crate) struct Paging {
    pub first: Option<i32>,
    pub last: Option<i32>,
    pub after: Option<String>,
    pub before: Option<String>,
    pub reverse: bool,
}

/// One page of a connection: which of the ordered items, and the page info.
pub(crate) struct Window {
    pub indices: std::ops::Range<usize>,
    pub page_info: PageInfo,
}

impl Paging {
    /// Pages `keys` — each item's `(sort value, id)`, already sorted ascending — as Shopify
    /// does: `reverse` flips the order, `after`/`before` are exclusive bounds, then `first`
    /// takes from the start of what is left and `last` from its end (in the same order).
    /// Returns the window over the (possibly reversed) order; the caller reverses its items
    /// the same way.
    pub fn window(&self, keys: &[(String, u64)]) -> Result<Window> {
        let n = page_size(self.first, self.last)?;
        let decode = |c: &str| {
            Cursor::decode(c).ok_or_else(|| {
                Error::new(format!("Invalid cursor for current pagination sort: {c}"))
            })
        };
        let after = self.after.as_deref().map(decode).transpose()?;
        let before = self.before.as_deref().map(decode).transpose()?;
        let len = keys.len();
        let at = |i: usize| {
            if self.reverse {
                &keys[len - 1 - i]
            } else {
                &keys[i]
            }
        };
        // Position of item i relative to a cursor, in the connection's order.
        let rel = |i: usize, c: &Cursor| {
            let (k, id) = at(i);
            let o = (k.as_str(), *id).cmp(&(c.key.as_str(), c.id));
            if self.reverse { o.reverse() } else { o }
        };
        let lo = after.map_or(0, |c| (0..len).find(|i| rel(*i, &c).is_gt()).unwrap_or(len));
        let hi = before.map_or(len, |c| {
            (0..len).find(|i| rel(*i, &c).is_ge()).unwrap_or(len)
        });
        let hi = hi.max(lo);
        let (start, end) = if self.first.is_some() {
            (lo, (lo + n).min(hi))
        } else {
            (hi.saturating_sub(n).max(lo), hi)
        };
        let cursor = |i: usize| {
            let (k, id) = at(i);
            Cursor {
                key: k.clone(),
                id: *id,
            }
            .encode()
        };
        Ok(Window {
            indices: start..end,
            page_info: PageInfo {
                has_next_page: end < len,
                has_previous_page: start > 0,
                start_cursor: (start < end).then(|| cursor(start)),
                end_cursor: (start < end).then(|| cursor(end - 1)),
            },
        })
    }

    /// The cursor of item `i` of the connection's order.
    pub fn cursor(&self, keys: &[(String, u64)], i: usize) -> String {
        let (k, id) = if self.reverse {
            &keys[keys.len() - 1 - i]
        } else {
            &keys[i]
        };
        Cursor {
            key: k.clone(),
            id: *id,
        }
        .encode()
    }

    /// The index into `keys` (ascending) of item `i` of the connection's order.
    pub fn index(&self, len: usize, i: usize) -> usize {
        if self.reverse { len - 1 - i } else { i }
    }
}

/// A top-level error as Shopify gives for an argument array over 250 items.
pub(crate) fn too_many(n: usize) -> Error {
    Error::new(format!(
        "The input array size of {n} is greater than the maximum allowed of {MAX_INPUT_ARRAY}."
    ))
    .extend_with(|_, e| e.set("code", "MAX_INPUT_SIZE_EXCEEDED"))
}

/// A top-level error as GraphQL validation gives for an input field the request's API
/// version does not have.
pub(crate) fn not_in_version(ctx: &Context<'_>, input: &str, field: &str) -> Error {
    Error::new(format!(
        "InputObject '{input}' doesn't accept argument '{field}' (API version {})",
        version(ctx)
    ))
    .extend_with(|_, e| e.set("code", "argumentNotAccepted"))
}
