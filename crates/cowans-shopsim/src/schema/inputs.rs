//! Mutation inputs and payloads.

use super::*;

/// `UniqueMetafieldValueInput`: a custom id (`namespace` omitted: the app-reserved `$app`).
#[derive(InputObject, Clone)]
pub struct UniqueMetafieldValueInput {
    pub(crate) namespace: Option<String>,
    pub(crate) key: String,
    pub(crate) value: String,
}

impl UniqueMetafieldValueInput {
    pub(crate) fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("$app")
    }
}

/// `ProductIdentifierInput` (`productByIdentifier`) and the identifiers of `productUpdate`.
#[derive(InputObject, Clone)]
#[graphql(rename_fields = "camelCase")]
#[graphql(name = "ProductIdentifierInput")]
pub struct ProductIdentifierInput {
    pub(crate) custom_id: Option<UniqueMetafieldValueInput>,
    pub(crate) handle: Option<String>,
    pub(crate) id: Option<ID>,
}

/// `ProductUpdateIdentifiers` (2026-04).
#[derive(InputObject, Clone)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductUpdateIdentifiers {
    pub(crate) custom_id: Option<UniqueMetafieldValueInput>,
    pub(crate) handle: Option<String>,
    pub(crate) id: Option<ID>,
}

/// `ProductSetIdentifiers`.
#[derive(InputObject, Clone)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductSetIdentifiers {
    pub(crate) custom_id: Option<UniqueMetafieldValueInput>,
    pub(crate) handle: Option<String>,
    pub(crate) id: Option<ID>,
}

/// `MetafieldInput`.
#[derive(InputObject, Clone)]
pub struct MetafieldInput {
    pub(crate) id: Option<ID>,
    pub(crate) namespace: Option<String>,
    pub(crate) key: Option<String>,
    pub(crate) value: Option<String>,
    #[graphql(name = "type")]
    pub(crate) kind: Option<String>,
}

/// `OptionValueCreateInput`.
#[derive(InputObject, Clone)]
pub struct OptionValueCreateInput {
    pub(crate) name: Option<String>,
}

/// `OptionCreateInput` (`productCreate`).
#[derive(InputObject, Clone)]
pub struct OptionCreateInput {
    pub(crate) name: Option<String>,
    pub(crate) position: Option<i32>,
    pub(crate) values: Option<Vec<OptionValueCreateInput>>,
}

#[derive(InputObject)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductCreateInput {
    pub(crate) title: Option<String>,
    pub(crate) handle: Option<String>,
    pub(crate) status: Option<ProductStatus>,
    pub(crate) vendor: Option<String>,
    pub(crate) product_type: Option<String>,
    pub(crate) tags: Option<Vec<String>>,
    pub(crate) description_html: Option<String>,
    pub(crate) product_options: Option<Vec<OptionCreateInput>>,
    pub(crate) metafields: Option<Vec<MetafieldInput>>,
}

#[derive(InputObject)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductUpdateInput {
    pub(crate) id: Option<ID>,
    pub(crate) title: Option<String>,
    pub(crate) handle: Option<String>,
    pub(crate) status: Option<ProductStatus>,
    pub(crate) vendor: Option<String>,
    pub(crate) product_type: Option<String>,
    pub(crate) tags: Option<Vec<String>>,
    pub(crate) description_html: Option<String>,
    pub(crate) metafields: Option<Vec<MetafieldInput>>,
    /// Accepted; the simulator keeps no URL redirects.
    pub(crate) redirect_new_handle: Option<bool>,
}

#[derive(InputObject)]
pub struct ProductDeleteInput {
    pub(crate) id: ID,
}

/// `OptionValueSetInput`.
#[derive(InputObject, Clone)]
pub struct OptionValueSetInput {
    pub(crate) id: Option<ID>,
    pub(crate) name: Option<String>,
}

/// `OptionSetInput`.
#[derive(InputObject, Clone)]
pub struct OptionSetInput {
    pub(crate) id: Option<ID>,
    pub(crate) name: Option<String>,
    pub(crate) position: Option<i32>,
    pub(crate) values: Option<Vec<OptionValueSetInput>>,
}

/// `VariantOptionValueInput`: which value of which option (each by id or by name).
#[derive(InputObject, Clone)]
#[graphql(rename_fields = "camelCase")]
pub struct VariantOptionValueInput {
    pub(crate) id: Option<ID>,
    pub(crate) name: Option<String>,
    pub(crate) option_id: Option<ID>,
    pub(crate) option_name: Option<String>,
}

/// `WeightInput`.
#[derive(InputObject, Clone)]
pub struct WeightInput {
    pub(crate) unit: WeightUnit,
    pub(crate) value: f64,
}

/// `InventoryItemMeasurementInput`.
#[derive(InputObject, Clone)]
pub struct InventoryItemMeasurementInput {
    pub(crate) weight: Option<WeightInput>,
}

/// `InventoryItemInput` (the fields the simulator models).
#[derive(InputObject, Clone)]
#[graphql(rename_fields = "camelCase")]
pub struct InventoryItemInput {
    pub(crate) sku: Option<String>,
    pub(crate) tracked: Option<bool>,
    pub(crate) requires_shipping: Option<bool>,
    pub(crate) measurement: Option<InventoryItemMeasurementInput>,
    /// Accepted; the simulator keeps no costs.
    pub(crate) cost: Option<Decimal>,
}

/// `ProductSetInventoryInput`: a quantity at a location.
#[derive(InputObject, Clone)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductSetInventoryInput {
    pub(crate) location_id: ID,
    pub(crate) name: String,
    pub(crate) quantity: i32,
}

/// `BarcodeInput` (2026-10).
#[derive(InputObject, Clone)]
pub struct BarcodeInput {
    #[graphql(name = "type")]
    pub(crate) kind: Option<BarcodeType>,
    pub(crate) value: String,
}

/// `ProductVariantSetInput` (2026-10; the fields the simulator models).
#[derive(InputObject, Clone)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductVariantSetInput {
    pub(crate) id: Option<ID>,
    pub(crate) option_values: Vec<VariantOptionValueInput>,
    pub(crate) price: Option<Money>,
    pub(crate) compare_at_price: MaybeUndefined<Money>,
    pub(crate) sku: MaybeUndefined<String>,
    /// Deprecated in 2026-10 for `barcodes`.
    pub(crate) barcode: MaybeUndefined<String>,
    /// Since 2026-10.
    pub(crate) barcodes: Option<Vec<BarcodeInput>>,
    pub(crate) inventory_item: Option<InventoryItemInput>,
    pub(crate) inventory_policy: Option<ProductVariantInventoryPolicy>,
    pub(crate) inventory_quantities: Option<Vec<ProductSetInventoryInput>>,
    pub(crate) position: Option<i32>,
    pub(crate) taxable: Option<bool>,
}

/// `ProductSetInput` (2026-10; the fields the simulator models).
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
    pub(crate) product_options: Option<Vec<OptionSetInput>>,
    pub(crate) variants: Option<Vec<ProductVariantSetInput>>,
    pub(crate) metafields: Option<Vec<MetafieldInput>>,
    /// Accepted; the simulator keeps no URL redirects.
    pub(crate) redirect_new_handle: Option<bool>,
}

/// `ProductVariantsBulkInput` (2026-10: no `sku`; it is `inventoryItem.sku`).
#[derive(InputObject)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductVariantsBulkInput {
    pub(crate) id: Option<ID>,
    pub(crate) price: Option<Money>,
    pub(crate) compare_at_price: MaybeUndefined<Money>,
    pub(crate) barcode: MaybeUndefined<String>,
    pub(crate) barcodes: Option<Vec<BarcodeInput>>,
    pub(crate) inventory_item: Option<InventoryItemInput>,
    pub(crate) inventory_policy: Option<ProductVariantInventoryPolicy>,
    pub(crate) taxable: Option<bool>,
}

#[derive(InputObject)]
#[graphql(rename_fields = "camelCase")]
pub struct InventoryQuantityInput {
    pub(crate) inventory_item_id: ID,
    pub(crate) location_id: ID,
    pub(crate) quantity: i32,
    /// Compare-and-swap: the quantity the caller believes is current; `null` skips the check.
    /// From 2026-04 it must be given (even as `null`).
    pub(crate) change_from_quantity: MaybeUndefined<i32>,
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
pub struct ProductCreatePayload {
    pub(crate) product: Option<ProductObj>,
    pub(crate) user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductUpdatePayload {
    pub(crate) product: Option<ProductObj>,
    pub(crate) user_errors: Vec<UserError>,
}

/// `ProductOperationStatus`.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ProductOperationStatus {
    Active,
    Complete,
    Created,
}

/// `productSet`'s answer.
#[derive(SimpleObject)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductSetPayload {
    pub(crate) product: Option<ProductObj>,
    /// `productSet(synchronous: false)` only.
    pub(crate) product_set_operation: Option<ProductSetOperation>,
    pub(crate) user_errors: Vec<CodedError<ProductSetUserErrorCode>>,
}

/// An asynchronous `productSet`: CREATED, then ACTIVE, then COMPLETE (with the product).
#[derive(SimpleObject, Clone)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductSetOperation {
    pub(crate) id: ID,
    pub(crate) status: ProductOperationStatus,
    pub(crate) product: Option<ProductObj>,
    pub(crate) user_errors: Vec<CodedError<ProductSetUserErrorCode>>,
}

/// `ProductOperation`: what `productOperation(id)` returns.
#[derive(Interface)]
#[graphql(
    field(name = "id", ty = "&ID"),
    field(name = "status", ty = "&ProductOperationStatus"),
    field(name = "product", ty = "&Option<ProductObj>")
)]
pub enum ProductOperation {
    ProductSetOperation(ProductSetOperation),
}

impl ProductSetOperation {
    pub(crate) fn of(state: &ShopState, id: u64) -> Option<Self> {
        let (started, product_id) = *state.product_ops.get(&id)?;
        let age = state.clock.secs() - started;
        let status = if age < 0.2 {
            ProductOperationStatus::Created
        } else if age < 0.5 {
            ProductOperationStatus::Active
        } else {
            ProductOperationStatus::Complete
        };
        Some(Self {
            id: gid("ProductSetOperation", id),
            status,
            product: (status == ProductOperationStatus::Complete)
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
    pub(crate) user_errors: Vec<CodedError<ProductVariantsBulkUpdateUserErrorCode>>,
}

/// One quantity change of an adjustment group.
#[derive(SimpleObject, Clone)]
#[graphql(rename_fields = "camelCase")]
pub struct InventoryChange {
    pub(crate) name: String,
    pub(crate) delta: i64,
    pub(crate) quantity_after_change: Option<i64>,
    pub(crate) item: Option<InventoryItem>,
    pub(crate) location: Option<Location>,
}

#[derive(SimpleObject, Clone)]
#[graphql(complex, rename_fields = "camelCase")]
pub struct InventoryAdjustmentGroup {
    pub(crate) id: ID,
    pub(crate) created_at: DateTime,
    pub(crate) reason: String,
    pub(crate) reference_document_uri: Option<String>,
    #[graphql(skip)]
    pub(crate) all_changes: Vec<InventoryChange>,
}

#[ComplexObject]
impl InventoryAdjustmentGroup {
    /// The changes, optionally only those of these quantity names.
    async fn changes(&self, quantity_names: Option<Vec<String>>) -> Vec<InventoryChange> {
        self.all_changes
            .iter()
            .filter(|c| quantity_names.as_ref().is_none_or(|n| n.contains(&c.name)))
            .cloned()
            .collect()
    }
}

#[derive(SimpleObject, Clone)]
#[graphql(rename_fields = "camelCase")]
pub struct InventorySetQuantitiesPayload {
    pub(crate) inventory_adjustment_group: Option<InventoryAdjustmentGroup>,
    pub(crate) user_errors: Vec<CodedError<InventorySetQuantitiesUserErrorCode>>,
}
