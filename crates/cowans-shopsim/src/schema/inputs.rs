//! Mutation inputs and payloads.

use super::*;

#[derive(InputObject)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductCreateInput {
    pub(crate) title: String,
    pub(crate) handle: Option<String>,
    pub(crate) status: Option<ProductStatus>,
    pub(crate) vendor: Option<String>,
    pub(crate) product_type: Option<String>,
    pub(crate) tags: Option<Vec<String>>,
    pub(crate) description_html: Option<String>,
}

#[derive(InputObject)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductUpdateInput {
    pub(crate) id: ID,
    pub(crate) title: Option<String>,
    pub(crate) handle: Option<String>,
    pub(crate) status: Option<ProductStatus>,
    pub(crate) vendor: Option<String>,
    pub(crate) product_type: Option<String>,
    pub(crate) tags: Option<Vec<String>>,
    pub(crate) description_html: Option<String>,
}

#[derive(InputObject)]
pub struct ProductDeleteInput {
    pub(crate) id: ID,
}

#[derive(InputObject)]
pub struct ProductSetIdentifiers {
    pub(crate) id: Option<ID>,
    pub(crate) handle: Option<String>,
}

#[derive(InputObject)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductSetVariantInput {
    pub(crate) id: Option<ID>,
    pub(crate) sku: Option<String>,
    pub(crate) price: Option<Money>,
    pub(crate) title: Option<String>,
}

#[derive(InputObject)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductSetInput {
    pub(crate) title: Option<String>,
    pub(crate) handle: Option<String>,
    pub(crate) status: Option<ProductStatus>,
    pub(crate) vendor: Option<String>,
    pub(crate) product_type: Option<String>,
    pub(crate) tags: Option<Vec<String>>,
    pub(crate) description_html: Option<String>,
    pub(crate) variants: Option<Vec<ProductSetVariantInput>>,
}

#[derive(InputObject)]
pub struct ProductVariantsBulkInput {
    pub(crate) id: ID,
    pub(crate) price: Option<Money>,
    pub(crate) sku: Option<String>,
}

#[derive(InputObject)]
#[graphql(rename_fields = "camelCase")]
pub struct InventoryQuantityInput {
    pub(crate) inventory_item_id: ID,
    pub(crate) location_id: ID,
    pub(crate) quantity: i32,
    /// Compare-and-swap: the quantity the caller believes is current (`null`: no check).
    pub(crate) change_from_quantity: Option<i32>,
}

#[derive(InputObject)]
#[graphql(rename_fields = "camelCase")]
pub struct InventorySetQuantitiesInput {
    pub(crate) name: String,
    pub(crate) reason: String,
    pub(crate) reference_document_uri: Option<String>,
    pub(crate) quantities: Vec<InventoryQuantityInput>,
}

#[derive(SimpleObject)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductPayload {
    pub(crate) product: Option<ProductObj>,
    /// `productSet(synchronous: false)` only.
    pub(crate) product_set_operation: Option<ProductSetOperation>,
    pub(crate) user_errors: Vec<UserError>,
}

/// An asynchronous `productSet`: CREATED, then ACTIVE, then COMPLETE (with the product).
#[derive(SimpleObject, Clone)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductSetOperation {
    pub(crate) id: ID,
    pub(crate) status: String,
    pub(crate) product: Option<ProductObj>,
    pub(crate) user_errors: Vec<UserError>,
}

impl ProductSetOperation {
    pub(crate) fn of(state: &ShopState, id: u64) -> Option<Self> {
        let (started, product_id) = *state.product_ops.get(&id)?;
        let age = state.clock.secs() - started;
        let status = if age < 0.2 {
            "CREATED"
        } else if age < 0.5 {
            "ACTIVE"
        } else {
            "COMPLETE"
        };
        Some(Self {
            id: gid("ProductSetOperation", id),
            status: status.to_owned(),
            product: (status == "COMPLETE")
                .then(|| state.catalog.products.get(&product_id).map(Into::into))
                .flatten(),
            user_errors: vec![],
        })
    }
}

#[derive(SimpleObject)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductDeletePayload {
    pub(crate) deleted_product_id: Option<ID>,
    pub(crate) user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductVariantsBulkUpdatePayload {
    pub(crate) product: Option<ProductObj>,
    pub(crate) product_variants: Option<Vec<ProductVariant>>,
    pub(crate) user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct InventoryAdjustmentGroup {
    pub(crate) reason: String,
}

#[derive(SimpleObject)]
#[graphql(rename_fields = "camelCase")]
pub struct InventorySetQuantitiesPayload {
    pub(crate) inventory_adjustment_group: Option<InventoryAdjustmentGroup>,
    pub(crate) user_errors: Vec<UserError>,
}

pub(crate) fn payload(product: Option<&Product>, user_errors: Vec<UserError>) -> ProductPayload {
    ProductPayload {
        product: product.map(Into::into),
        product_set_operation: None,
        user_errors,
    }
}
