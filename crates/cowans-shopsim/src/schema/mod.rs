//! The GraphQL schema the simulator answers: a faithful subset of the Admin API for products,
//! variants and inventory. `types` (objects, enums, scalars), `query` (the query root), `inputs`
//! (mutation inputs and payloads), and the mutation root merged from `products`, `bulk` (staged
//! uploads and bulk operations) and `webhooks`.

mod bulk;
mod inputs;
mod products;
mod query;
mod types;
mod webhooks;

use async_graphql::{
    ComplexObject, Context, EmptySubscription, Enum, Error, ErrorExtensions, ID, InputObject,
    InputValueError, InputValueResult, MergedObject, Object, Result, Scalar, ScalarType, Schema,
    SimpleObject, Value,
};

use crate::{
    model::{Cursor, Product, Search, SortKey, Variant},
    shop::{Shop, ShopState},
};

pub use bulk::*;
pub use inputs::*;
pub use query::QueryRoot;
pub use types::*;
pub use webhooks::*;

/// Every mutation, merged from one object per area.
#[derive(MergedObject, Default)]
pub struct MutationRoot(
    products::ProductMutations,
    bulk::BulkMutations,
    webhooks::WebhookMutations,
);

pub type SimSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

pub fn build(shop: Shop) -> SimSchema {
    let slot: SchemaSlot = Default::default();
    let schema = Schema::build(QueryRoot, MutationRoot::default(), EmptySubscription)
        .data(shop)
        .data(slot.clone())
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

pub(crate) fn parse_gid(id: &ID, kind: &str) -> Result<u64> {
    let g: cowans_shopify::Gid = id.parse().map_err(|_| {
        Error::new(format!("Invalid global id '{}'", id.as_str()))
            .extend_with(|_, e| e.set("code", "argumentLiteralsIncompatible"))
    })?;
    if g.kind != kind {
        return Err(Error::new(format!(
            "Invalid global id '{}' for type {kind}",
            id.as_str()
        )));
    }
    Ok(g.id)
}

pub(crate) const MAX_PAGE: i32 = 250;

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
