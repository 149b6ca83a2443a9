//! The GraphQL schema the simulator answers: a faithful subset of the Admin API for products,
//! variants and inventory.

use async_graphql::{
    ComplexObject, Context, EmptySubscription, Enum, Error, ErrorExtensions, ID, InputObject,
    InputValueError, InputValueResult, Object, Result, Scalar, ScalarType, Schema, SimpleObject,
    Value,
};

use crate::{
    model::{Cursor, Product, Search, SortKey, Variant},
    shop::{Shop, ShopState},
};

pub type SimSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

pub fn build(shop: Shop) -> SimSchema {
    let slot: SchemaSlot = Default::default();
    let schema = Schema::build(QueryRoot, MutationRoot, EmptySubscription)
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

fn gid(kind: &str, id: u64) -> ID {
    ID(format!("gid://shopify/{kind}/{id}"))
}

fn parse_gid(id: &ID, kind: &str) -> Result<u64> {
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

const MAX_PAGE: i32 = 250;

fn page_size(first: Option<i32>, last: Option<i32>) -> Result<usize> {
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

/// Shopify's `Money` / `Decimal` input: a string or a number, kept as a decimal string.
#[derive(Debug, Clone, PartialEq)]
pub struct Money(pub String);

#[Scalar(name = "Money")]
impl ScalarType for Money {
    fn parse(value: Value) -> InputValueResult<Self> {
        match value {
            Value::String(s) if s.parse::<f64>().is_ok() => Ok(Money(s)),
            Value::Number(n) => Ok(Money(n.to_string())),
            other => Err(InputValueError::custom(format!(
                "{other} is not a decimal amount"
            ))),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.clone())
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum ProductStatus {
    Active,
    Draft,
    Archived,
}

impl ProductStatus {
    fn of(s: &str) -> Self {
        match s {
            "DRAFT" => ProductStatus::Draft,
            "ARCHIVED" => ProductStatus::Archived,
            _ => ProductStatus::Active,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ProductStatus::Active => "ACTIVE",
            ProductStatus::Draft => "DRAFT",
            ProductStatus::Archived => "ARCHIVED",
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "ProductSortKeys")]
pub enum ProductSortKeys {
    Id,
    UpdatedAt,
    Title,
    CreatedAt,
    Relevance,
}

#[derive(SimpleObject, Clone)]
#[graphql(rename_fields = "camelCase")]
pub struct PageInfo {
    has_next_page: bool,
    has_previous_page: bool,
    start_cursor: Option<String>,
    end_cursor: Option<String>,
}

#[derive(SimpleObject, Clone)]
pub struct InventoryItem {
    id: ID,
    tracked: bool,
}

#[derive(SimpleObject, Clone)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductVariant {
    id: ID,
    legacy_resource_id: String,
    sku: Option<String>,
    price: Money,
    title: String,
    inventory_quantity: i64,
    inventory_item: InventoryItem,
}

impl From<&Variant> for ProductVariant {
    fn from(v: &Variant) -> Self {
        Self {
            id: gid("ProductVariant", v.id),
            legacy_resource_id: v.id.to_string(),
            sku: v.sku.clone(),
            price: Money(v.price.clone()),
            title: v.title.clone(),
            inventory_quantity: v.inventory_quantity,
            inventory_item: InventoryItem {
                id: gid("InventoryItem", v.inventory_item_id),
                tracked: true,
            },
        }
    }
}

#[derive(SimpleObject, Clone)]
pub struct VariantEdge {
    cursor: String,
    node: ProductVariant,
}

#[derive(SimpleObject, Clone)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductVariantConnection {
    nodes: Vec<ProductVariant>,
    edges: Vec<VariantEdge>,
    page_info: PageInfo,
}

#[derive(SimpleObject, Clone)]
#[graphql(complex, rename_fields = "camelCase")]
pub struct ProductObj {
    id: ID,
    legacy_resource_id: String,
    title: String,
    handle: String,
    status: ProductStatus,
    vendor: String,
    product_type: String,
    tags: Vec<String>,
    description_html: String,
    created_at: String,
    updated_at: String,
    #[graphql(skip)]
    variant_data: Vec<Variant>,
}

#[ComplexObject]
impl ProductObj {
    async fn variants(
        &self,
        first: Option<i32>,
        last: Option<i32>,
        after: Option<String>,
    ) -> Result<ProductVariantConnection> {
        let n = page_size(first, last)?;
        let start = after.and_then(|a| a.parse::<usize>().ok()).unwrap_or(0);
        let slice: Vec<(usize, &Variant)> = self
            .variant_data
            .iter()
            .enumerate()
            .skip(start)
            .take(n)
            .collect();
        let nodes: Vec<ProductVariant> = slice.iter().map(|(_, v)| (*v).into()).collect();
        let edges = slice
            .iter()
            .map(|(i, v)| VariantEdge {
                cursor: (i + 1).to_string(),
                node: (*v).into(),
            })
            .collect::<Vec<_>>();
        Ok(ProductVariantConnection {
            page_info: PageInfo {
                has_next_page: start + n < self.variant_data.len(),
                has_previous_page: start > 0,
                start_cursor: edges.first().map(|e| e.cursor.clone()),
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            nodes,
            edges,
        })
    }
}

impl From<&Product> for ProductObj {
    fn from(p: &Product) -> Self {
        let ts =
            |d: chrono::DateTime<chrono::Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        Self {
            id: gid("Product", p.id),
            legacy_resource_id: p.id.to_string(),
            title: p.title.clone(),
            handle: p.handle.clone(),
            status: ProductStatus::of(&p.status),
            vendor: p.vendor.clone(),
            product_type: p.product_type.clone(),
            tags: p.tags.clone(),
            description_html: p.description_html.clone(),
            created_at: ts(p.created_at),
            updated_at: ts(p.updated_at),
            variant_data: p.variants.clone(),
        }
    }
}

#[derive(SimpleObject, Clone)]
pub struct ProductEdge {
    cursor: String,
    node: ProductObj,
}

#[derive(SimpleObject, Clone)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductConnection {
    nodes: Vec<ProductObj>,
    edges: Vec<ProductEdge>,
    page_info: PageInfo,
}

#[derive(SimpleObject, Clone, Debug, PartialEq)]
pub struct UserError {
    field: Option<Vec<String>>,
    message: String,
    code: Option<String>,
}

fn user_error(field: &[&str], message: impl Into<String>, code: &str) -> UserError {
    UserError {
        field: Some(field.iter().map(|s| (*s).to_owned()).collect()),
        message: message.into(),
        code: Some(code.to_owned()),
    }
}

fn forced(state: &ShopState, mutation: &str) -> Option<Vec<UserError>> {
    state.forced_user_error(mutation).map(|f| {
        vec![UserError {
            field: Some(f.field),
            message: f.message,
            code: f.code,
        }]
    })
}

pub struct QueryRoot;

#[Object]
impl QueryRoot {
    #[allow(clippy::too_many_arguments)]
    async fn products(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        last: Option<i32>,
        after: Option<String>,
        query: Option<String>,
        sort_key: Option<ProductSortKeys>,
        reverse: Option<bool>,
    ) -> Result<ProductConnection> {
        let n = page_size(first, last)?;
        let sort = match sort_key {
            Some(ProductSortKeys::UpdatedAt) => SortKey::UpdatedAt,
            Some(ProductSortKeys::Title) => SortKey::Title,
            _ => SortKey::Id,
        };
        let reverse = reverse.unwrap_or(false) || last.is_some();
        let search = query.as_deref().map(Search::parse).unwrap_or_default();
        let after = after.as_deref().map(|a| {
            Cursor::decode(a).ok_or_else(|| {
                Error::new(format!("Invalid cursor for current pagination sort: {a}"))
            })
        });
        let after = after.transpose()?;
        let shop = ctx.data::<Shop>()?;
        let state = shop.lock();
        let mut matching: Vec<(String, u64, &Product)> = state
            .catalog
            .products
            .values()
            .filter(|p| search.matches(p))
            .map(|p| (crate::model::sort_value(p, sort), p.id, p))
            .collect();
        matching.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        if reverse {
            matching.reverse();
        }
        let start = match &after {
            None => 0,
            Some(c) => matching
                .iter()
                .position(|(k, id, _)| {
                    let pos = (k.as_str(), *id).cmp(&(c.key.as_str(), c.id));
                    if reverse { pos.is_lt() } else { pos.is_gt() }
                })
                .unwrap_or(matching.len()),
        };
        let page: Vec<&Product> = matching
            .iter()
            .skip(start)
            .take(n)
            .map(|(_, _, p)| *p)
            .collect();
        let edges: Vec<ProductEdge> = page
            .iter()
            .map(|p| ProductEdge {
                cursor: Cursor::of(p, sort).encode(),
                node: (*p).into(),
            })
            .collect();
        Ok(ProductConnection {
            nodes: page.iter().map(|p| (*p).into()).collect(),
            page_info: PageInfo {
                has_next_page: start + page.len() < matching.len(),
                has_previous_page: start > 0,
                start_cursor: edges.first().map(|e| e.cursor.clone()),
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
        })
    }

    async fn bulk_operation(&self, ctx: &Context<'_>, id: ID) -> Result<Option<BulkOperation>> {
        let id = parse_gid(&id, "BulkOperation")?;
        let shop = ctx.data::<Shop>()?;
        let s = shop.lock();
        Ok(s.bulk.get(&id).map(|op| BulkOperation::of(op, &s.base_url)))
    }

    /// The newest bulk operation of this type.
    async fn current_bulk_operation(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "type", default_with = "BulkOperationType::Query")]
        kind: BulkOperationType,
    ) -> Result<Option<BulkOperation>> {
        let shop = ctx.data::<Shop>()?;
        let s = shop.lock();
        let name = kind.name();
        Ok(s.bulk
            .values()
            .rev()
            .find(|op| op.kind == name)
            .map(|op| BulkOperation::of(op, &s.base_url)))
    }

    /// The state of an asynchronous `productSet`.
    async fn product_operation(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<Option<ProductSetOperation>> {
        let id = parse_gid(&id, "ProductSetOperation")?;
        let shop = ctx.data::<Shop>()?;
        let s = shop.lock();
        Ok(ProductSetOperation::of(&s, id))
    }

    async fn product(&self, ctx: &Context<'_>, id: ID) -> Result<Option<ProductObj>> {
        let id = parse_gid(&id, "Product")?;
        let shop = ctx.data::<Shop>()?;
        let state = shop.lock();
        Ok(state.catalog.products.get(&id).map(Into::into))
    }
}

#[derive(InputObject)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductCreateInput {
    title: String,
    handle: Option<String>,
    status: Option<ProductStatus>,
    vendor: Option<String>,
    product_type: Option<String>,
    tags: Option<Vec<String>>,
    description_html: Option<String>,
}

#[derive(InputObject)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductUpdateInput {
    id: ID,
    title: Option<String>,
    handle: Option<String>,
    status: Option<ProductStatus>,
    vendor: Option<String>,
    product_type: Option<String>,
    tags: Option<Vec<String>>,
    description_html: Option<String>,
}

#[derive(InputObject)]
pub struct ProductDeleteInput {
    id: ID,
}

#[derive(InputObject)]
pub struct ProductSetIdentifiers {
    id: Option<ID>,
    handle: Option<String>,
}

#[derive(InputObject)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductSetVariantInput {
    id: Option<ID>,
    sku: Option<String>,
    price: Option<Money>,
    title: Option<String>,
}

#[derive(InputObject)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductSetInput {
    title: Option<String>,
    handle: Option<String>,
    status: Option<ProductStatus>,
    vendor: Option<String>,
    product_type: Option<String>,
    tags: Option<Vec<String>>,
    description_html: Option<String>,
    variants: Option<Vec<ProductSetVariantInput>>,
}

#[derive(InputObject)]
pub struct ProductVariantsBulkInput {
    id: ID,
    price: Option<Money>,
    sku: Option<String>,
}

#[derive(InputObject)]
#[graphql(rename_fields = "camelCase")]
pub struct InventoryQuantityInput {
    inventory_item_id: ID,
    location_id: ID,
    quantity: i32,
    /// Compare-and-swap: the quantity the caller believes is current (`null`: no check).
    change_from_quantity: Option<i32>,
}

#[derive(InputObject)]
#[graphql(rename_fields = "camelCase")]
pub struct InventorySetQuantitiesInput {
    name: String,
    reason: String,
    reference_document_uri: Option<String>,
    quantities: Vec<InventoryQuantityInput>,
}

#[derive(SimpleObject)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductPayload {
    product: Option<ProductObj>,
    /// `productSet(synchronous: false)` only.
    product_set_operation: Option<ProductSetOperation>,
    user_errors: Vec<UserError>,
}

/// An asynchronous `productSet`: CREATED, then ACTIVE, then COMPLETE (with the product).
#[derive(SimpleObject, Clone)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductSetOperation {
    id: ID,
    status: String,
    product: Option<ProductObj>,
    user_errors: Vec<UserError>,
}

impl ProductSetOperation {
    fn of(state: &ShopState, id: u64) -> Option<Self> {
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
    deleted_product_id: Option<ID>,
    user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductVariantsBulkUpdatePayload {
    product: Option<ProductObj>,
    product_variants: Option<Vec<ProductVariant>>,
    user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
pub struct InventoryAdjustmentGroup {
    reason: String,
}

#[derive(SimpleObject)]
#[graphql(rename_fields = "camelCase")]
pub struct InventorySetQuantitiesPayload {
    inventory_adjustment_group: Option<InventoryAdjustmentGroup>,
    user_errors: Vec<UserError>,
}

pub struct MutationRoot;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum WebhookSubscriptionTopic {
    ProductsCreate,
    ProductsUpdate,
    ProductsDelete,
    BulkOperationsFinish,
}

impl WebhookSubscriptionTopic {
    fn name(self) -> &'static str {
        match self {
            WebhookSubscriptionTopic::ProductsCreate => "products/create",
            WebhookSubscriptionTopic::ProductsUpdate => "products/update",
            WebhookSubscriptionTopic::ProductsDelete => "products/delete",
            WebhookSubscriptionTopic::BulkOperationsFinish => "bulk_operations/finish",
        }
    }
}

#[derive(InputObject)]
#[graphql(rename_fields = "camelCase")]
pub struct WebhookSubscriptionInput {
    callback_url: String,
}

#[derive(SimpleObject)]
#[graphql(rename_fields = "camelCase")]
pub struct WebhookSubscription {
    id: ID,
    topic: WebhookSubscriptionTopic,
    callback_url: String,
}

#[derive(SimpleObject)]
#[graphql(rename_fields = "camelCase")]
pub struct WebhookSubscriptionCreatePayload {
    webhook_subscription: Option<WebhookSubscription>,
    user_errors: Vec<UserError>,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum BulkOperationType {
    Query,
    Mutation,
}

impl BulkOperationType {
    fn name(self) -> &'static str {
        match self {
            BulkOperationType::Query => "QUERY",
            BulkOperationType::Mutation => "MUTATION",
        }
    }
}

#[derive(SimpleObject, Clone)]
#[graphql(rename_fields = "camelCase")]
pub struct BulkOperation {
    id: ID,
    status: String,
    error_code: Option<String>,
    object_count: String,
    url: Option<String>,
    partial_data_url: Option<String>,
    created_at: String,
    completed_at: Option<String>,
    #[graphql(name = "type")]
    kind: String,
    query: String,
}

impl BulkOperation {
    fn of(op: &crate::bulk::BulkOp, base: &str) -> Self {
        let ts =
            |d: chrono::DateTime<chrono::Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        Self {
            id: gid("BulkOperation", op.id),
            status: op.status.name().to_owned(),
            error_code: op.error_code.clone(),
            object_count: op.object_count.to_string(),
            url: op
                .file
                .as_ref()
                .map(|_| format!("{base}/bulk-results/{}.jsonl", op.id)),
            partial_data_url: None,
            created_at: ts(op.created_at),
            completed_at: op.completed_at.map(ts),
            kind: op.kind.to_owned(),
            query: op.query.clone(),
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum StagedUploadTargetGenerateUploadResource {
    BulkMutationVariables,
}

#[derive(InputObject)]
#[graphql(rename_fields = "camelCase")]
pub struct StagedUploadInput {
    resource: StagedUploadTargetGenerateUploadResource,
    filename: String,
    mime_type: String,
    http_method: Option<String>,
}

#[derive(SimpleObject)]
pub struct StagedUploadParameter {
    name: String,
    value: String,
}

#[derive(SimpleObject)]
#[graphql(rename_fields = "camelCase")]
pub struct StagedMediaUploadTarget {
    url: String,
    resource_url: Option<String>,
    parameters: Vec<StagedUploadParameter>,
}

#[derive(SimpleObject)]
#[graphql(rename_fields = "camelCase")]
pub struct StagedUploadsCreatePayload {
    staged_targets: Vec<StagedMediaUploadTarget>,
    user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
#[graphql(rename_fields = "camelCase")]
pub struct BulkOperationPayload {
    bulk_operation: Option<BulkOperation>,
    user_errors: Vec<UserError>,
}

fn payload(product: Option<&Product>, user_errors: Vec<UserError>) -> ProductPayload {
    ProductPayload {
        product: product.map(Into::into),
        product_set_operation: None,
        user_errors,
    }
}

#[Object]
impl MutationRoot {
    async fn webhook_subscription_create(
        &self,
        ctx: &Context<'_>,
        topic: WebhookSubscriptionTopic,
        webhook_subscription: WebhookSubscriptionInput,
    ) -> Result<WebhookSubscriptionCreatePayload> {
        let url = webhook_subscription.callback_url;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Ok(WebhookSubscriptionCreatePayload {
                webhook_subscription: None,
                user_errors: vec![user_error(
                    &["webhookSubscription", "callbackUrl"],
                    "Address is invalid",
                    "INVALID",
                )],
            });
        }
        let shop = ctx.data::<Shop>()?;
        let mut s = shop.lock();
        if s.subscriptions
            .iter()
            .any(|x| x.topic == topic.name() && x.callback_url == url)
        {
            return Ok(WebhookSubscriptionCreatePayload {
                webhook_subscription: None,
                user_errors: vec![user_error(
                    &["address"],
                    "Address for this topic has already been taken",
                    "TAKEN",
                )],
            });
        }
        let id = s.catalog.next_id();
        s.subscriptions.push(crate::webhooks::Subscription {
            id,
            topic: topic.name().to_owned(),
            callback_url: url.clone(),
        });
        Ok(WebhookSubscriptionCreatePayload {
            webhook_subscription: Some(WebhookSubscription {
                id: gid("WebhookSubscription", id),
                topic,
                callback_url: url,
            }),
            user_errors: vec![],
        })
    }

    /// Upload targets: POST a multipart form with every parameter, then the `file` part last.
    async fn staged_uploads_create(
        &self,
        ctx: &Context<'_>,
        input: Vec<StagedUploadInput>,
    ) -> Result<StagedUploadsCreatePayload> {
        let shop = ctx.data::<Shop>()?;
        let mut s = shop.lock();
        let base = s.base_url.clone();
        let targets = input
            .into_iter()
            .map(|i| {
                let _ = (i.resource, i.mime_type, i.http_method);
                let key = format!("tmp/bulk/{}/{}", s.catalog.next_id(), i.filename);
                StagedMediaUploadTarget {
                    url: format!("{base}/staged-uploads"),
                    resource_url: None,
                    parameters: vec![
                        StagedUploadParameter {
                            name: "key".into(),
                            value: key,
                        },
                        StagedUploadParameter {
                            name: "Content-Type".into(),
                            value: "text/jsonl".into(),
                        },
                        StagedUploadParameter {
                            name: "success_action_status".into(),
                            value: "201".into(),
                        },
                    ],
                }
            })
            .collect();
        Ok(StagedUploadsCreatePayload {
            staged_targets: targets,
            user_errors: vec![],
        })
    }

    /// Runs `mutation` once per line of the staged JSONL at `stagedUploadPath`.
    async fn bulk_operation_run_mutation(
        &self,
        ctx: &Context<'_>,
        mutation: String,
        staged_upload_path: String,
    ) -> Result<BulkOperationPayload> {
        let fail = |e| BulkOperationPayload {
            bulk_operation: None,
            user_errors: vec![e],
        };
        if !crate::bulk::is_mutation(&mutation) {
            return Ok(fail(user_error(
                &["mutation"],
                "The mutation must be a single mutation operation",
                "INVALID_MUTATION",
            )));
        }
        let shop = ctx.data::<Shop>()?.clone();
        let schema = ctx
            .data::<SchemaSlot>()?
            .0
            .get()
            .cloned()
            .ok_or_else(|| Error::new("schema not ready"))?;
        let (id, dir, input, op) = {
            let mut s = shop.lock();
            let Some(input) = s.staged.get(&staged_upload_path).cloned() else {
                return Ok(fail(user_error(
                    &["stagedUploadPath"],
                    "The staged upload was not found",
                    "NO_SUCH_FILE",
                )));
            };
            let live = s
                .bulk
                .values()
                .filter(|o| o.kind == "MUTATION" && o.status.is_live())
                .count();
            if live >= s.bulk_concurrency {
                return Ok(fail(UserError {
                    field: None,
                    message:
                        "A bulk mutation operation for this app and shop is already in progress."
                            .into(),
                    code: Some("OPERATION_IN_PROGRESS".into()),
                }));
            }
            let op = s.new_bulk_op("MUTATION", mutation.clone());
            let id = op.id;
            (
                id,
                s.results_dir.clone(),
                input,
                BulkOperation::of(&op, &s.base_url),
            )
        };
        crate::bulk::spawn_mutation(shop, schema, id, mutation, input, dir);
        Ok(BulkOperationPayload {
            bulk_operation: Some(op),
            user_errors: vec![],
        })
    }

    /// Starts a bulk query; poll `bulkOperation(id)` until COMPLETED, then download `url`.
    async fn bulk_operation_run_query(
        &self,
        ctx: &Context<'_>,
        query: String,
    ) -> Result<BulkOperationPayload> {
        let fail = |e| BulkOperationPayload {
            bulk_operation: None,
            user_errors: vec![e],
        };
        let sel = match crate::bulk::parse_selection(&query) {
            Ok(s) => s,
            Err(message) => return Ok(fail(user_error(&["query"], message, "INVALID"))),
        };
        let shop = ctx.data::<Shop>()?.clone();
        let (id, dir, children_first, op) = {
            let mut s = shop.lock();
            let live = s
                .bulk
                .values()
                .filter(|o| o.kind == "QUERY" && o.status.is_live())
                .count();
            if live >= s.bulk_concurrency {
                return Ok(fail(UserError {
                    field: None,
                    message: format!(
                        "A bulk query operation for this app and shop is already in progress ({live} running, at most {}).",
                        s.bulk_concurrency
                    ),
                    code: Some("OPERATION_IN_PROGRESS".into()),
                }));
            }
            let op = s.new_bulk_op("QUERY", query);
            let id = op.id;
            (
                id,
                s.results_dir.clone(),
                s.bulk_children_first,
                BulkOperation::of(&op, &s.base_url),
            )
        };
        crate::bulk::spawn_query(shop, id, sel, dir, children_first);
        Ok(BulkOperationPayload {
            bulk_operation: Some(op),
            user_errors: vec![],
        })
    }

    async fn bulk_operation_cancel(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<BulkOperationPayload> {
        let id = parse_gid(&id, "BulkOperation")?;
        let shop = ctx.data::<Shop>()?;
        let mut s = shop.lock();
        let base = s.base_url.clone();
        let Some(op) = s.bulk.get_mut(&id) else {
            return Ok(BulkOperationPayload {
                bulk_operation: None,
                user_errors: vec![user_error(
                    &["id"],
                    "Bulk operation does not exist",
                    "NOT_FOUND",
                )],
            });
        };
        if !op.status.is_live() {
            let msg = format!(
                "A bulk operation cannot be canceled when it is {}",
                op.status.name().to_lowercase()
            );
            return Ok(BulkOperationPayload {
                bulk_operation: Some(BulkOperation::of(op, &base)),
                user_errors: vec![user_error(&["id"], msg, "INVALID")],
            });
        }
        op.status = crate::bulk::BulkStatus::Canceling;
        Ok(BulkOperationPayload {
            bulk_operation: Some(BulkOperation::of(op, &base)),
            user_errors: vec![],
        })
    }

    async fn product_create(
        &self,
        ctx: &Context<'_>,
        product: ProductCreateInput,
    ) -> Result<ProductPayload> {
        let shop = ctx.data::<Shop>()?;
        let mut s = shop.lock();
        if let Some(e) = forced(&s, "productCreate") {
            return Ok(payload(None, e));
        }
        if product.title.trim().is_empty() {
            return Ok(payload(
                None,
                vec![user_error(&["title"], "Title can't be blank", "BLANK")],
            ));
        }
        let now = s.clock.now();
        let id = s.catalog.next_id();
        let handle = product.handle.unwrap_or_else(|| slug(&product.title, id));
        if s.catalog.by_handle(&handle).is_some() {
            return Ok(payload(
                None,
                vec![user_error(
                    &["handle"],
                    format!("Handle '{handle}' already in use"),
                    "TAKEN",
                )],
            ));
        }
        let p = Product {
            id,
            title: product.title,
            handle,
            status: product
                .status
                .unwrap_or(ProductStatus::Active)
                .name()
                .to_owned(),
            vendor: product.vendor.unwrap_or_default(),
            product_type: product.product_type.unwrap_or_default(),
            tags: product.tags.unwrap_or_default(),
            description_html: product.description_html.unwrap_or_default(),
            created_at: now,
            updated_at: now,
            variants: vec![],
        };
        s.catalog.products.insert(id, p);
        s.emit_product("products/create", id);
        Ok(payload(s.catalog.products.get(&id), vec![]))
    }

    async fn product_update(
        &self,
        ctx: &Context<'_>,
        product: ProductUpdateInput,
    ) -> Result<ProductPayload> {
        let id = parse_gid(&product.id, "Product")?;
        let shop = ctx.data::<Shop>()?;
        let mut s = shop.lock();
        if let Some(e) = forced(&s, "productUpdate") {
            return Ok(payload(None, e));
        }
        let now = s.clock.now();
        let Some(p) = s.catalog.products.get_mut(&id) else {
            return Ok(payload(
                None,
                vec![user_error(&["id"], "Product does not exist", "NOT_FOUND")],
            ));
        };
        if let Some(t) = product.title {
            if t.trim().is_empty() {
                return Ok(payload(
                    None,
                    vec![user_error(&["title"], "Title can't be blank", "BLANK")],
                ));
            }
            p.title = t;
        }
        apply(
            p,
            product.handle,
            product.status,
            product.vendor,
            product.product_type,
            product.tags,
            product.description_html,
        );
        p.updated_at = now;
        s.emit_product("products/update", id);
        Ok(payload(s.catalog.products.get(&id), vec![]))
    }

    async fn product_delete(
        &self,
        ctx: &Context<'_>,
        input: ProductDeleteInput,
    ) -> Result<ProductDeletePayload> {
        let id = parse_gid(&input.id, "Product")?;
        let shop = ctx.data::<Shop>()?;
        let mut s = shop.lock();
        if let Some(e) = forced(&s, "productDelete") {
            return Ok(ProductDeletePayload {
                deleted_product_id: None,
                user_errors: e,
            });
        }
        Ok(match s.catalog.products.remove(&id) {
            Some(_) => {
                s.emit("products/delete", serde_json::json!({ "id": id }));
                ProductDeletePayload {
                    deleted_product_id: Some(input.id),
                    user_errors: vec![],
                }
            }
            None => ProductDeletePayload {
                deleted_product_id: None,
                user_errors: vec![user_error(&["id"], "Product does not exist", "NOT_FOUND")],
            },
        })
    }

    /// Upserts a whole product. List fields (variants) are full replacement: variants left out
    /// are deleted. With `synchronous: false` the answer is a `productSetOperation` to poll with
    /// `productOperation(id)` (CREATED → ACTIVE → COMPLETE over half a second of the sim clock).
    async fn product_set(
        &self,
        ctx: &Context<'_>,
        identifier: Option<ProductSetIdentifiers>,
        input: ProductSetInput,
        #[graphql(default = true)] synchronous: bool,
    ) -> Result<ProductPayload> {
        let shop = ctx.data::<Shop>()?;
        let mut s = shop.lock();
        if let Some(e) = forced(&s, "productSet") {
            return Ok(payload(None, e));
        }
        let now = s.clock.now();
        let existing = match &identifier {
            Some(ProductSetIdentifiers { id: Some(id), .. }) => {
                let id = parse_gid(id, "Product")?;
                if !s.catalog.products.contains_key(&id) {
                    return Ok(payload(
                        None,
                        vec![user_error(
                            &["identifier", "id"],
                            "Product does not exist",
                            "PRODUCT_DOES_NOT_EXIST",
                        )],
                    ));
                }
                Some(id)
            }
            Some(ProductSetIdentifiers {
                handle: Some(h), ..
            }) => s.catalog.by_handle(h),
            _ => None,
        };
        if let Some(vs) = &input.variants
            && let Some(i) = vs
                .iter()
                .position(|v| v.price.as_ref().is_some_and(|m| m.0.starts_with('-')))
        {
            return Ok(payload(
                None,
                vec![user_error(
                    &["input", "variants", &i.to_string(), "price"],
                    "Price must be greater than or equal to 0",
                    "INVALID_VARIANT",
                )],
            ));
        }
        let id = match existing {
            Some(id) => id,
            None => {
                let Some(title) = input.title.clone() else {
                    return Ok(payload(
                        None,
                        vec![user_error(
                            &["input", "title"],
                            "Title can't be blank",
                            "BLANK",
                        )],
                    ));
                };
                let id = s.catalog.next_id();
                let handle = input
                    .handle
                    .clone()
                    .or_else(|| identifier.as_ref().and_then(|i| i.handle.clone()))
                    .unwrap_or_else(|| slug(&title, id));
                s.catalog.products.insert(
                    id,
                    Product {
                        id,
                        title,
                        handle,
                        status: "ACTIVE".into(),
                        vendor: String::new(),
                        product_type: String::new(),
                        tags: vec![],
                        description_html: String::new(),
                        created_at: now,
                        updated_at: now,
                        variants: vec![],
                    },
                );
                id
            }
        };
        // New variant and inventory ids first (they need the catalog's id counter).
        let wanted = input.variants.as_ref().map_or(0, Vec::len);
        let fresh: Vec<(u64, u64)> = (0..wanted)
            .map(|_| (s.catalog.next_id(), s.catalog.next_id()))
            .collect();
        let p = s
            .catalog
            .products
            .get_mut(&id)
            .expect("inserted or checked above");
        if let Some(t) = input.title {
            p.title = t;
        }
        apply(
            p,
            input.handle,
            input.status,
            input.vendor,
            input.product_type,
            input.tags,
            input.description_html,
        );
        if let Some(vs) = input.variants {
            let old = std::mem::take(&mut p.variants);
            for (i, v) in vs.into_iter().enumerate() {
                let existing =
                    v.id.as_ref()
                        .and_then(|g| parse_gid(g, "ProductVariant").ok())
                        .and_then(|vid| old.iter().find(|o| o.id == vid))
                        .cloned();
                let (vid, item) = fresh[i];
                let mut variant = existing.unwrap_or(Variant {
                    id: vid,
                    sku: None,
                    price: "0.00".into(),
                    title: format!("Variant {i}"),
                    inventory_item_id: item,
                    inventory_quantity: 0,
                });
                if let Some(sku) = v.sku {
                    variant.sku = Some(sku);
                }
                if let Some(price) = v.price {
                    variant.price = price.0;
                }
                if let Some(t) = v.title {
                    variant.title = t;
                }
                p.variants.push(variant);
            }
        }
        p.updated_at = now;
        let topic = if existing.is_some() {
            "products/update"
        } else {
            "products/create"
        };
        s.emit_product(topic, id);
        if !synchronous {
            let op = s.catalog.next_id();
            let started = s.clock.secs();
            s.product_ops.insert(op, (started, id));
            let mut p = payload(None, vec![]);
            p.product_set_operation = ProductSetOperation::of(&s, op);
            return Ok(p);
        }
        Ok(payload(s.catalog.products.get(&id), vec![]))
    }

    async fn product_variants_bulk_update(
        &self,
        ctx: &Context<'_>,
        product_id: ID,
        variants: Vec<ProductVariantsBulkInput>,
        #[graphql(default = false)] allow_partial_updates: bool,
    ) -> Result<ProductVariantsBulkUpdatePayload> {
        let pid = parse_gid(&product_id, "Product")?;
        let shop = ctx.data::<Shop>()?;
        let mut s = shop.lock();
        let fail = |errors| ProductVariantsBulkUpdatePayload {
            product: None,
            product_variants: None,
            user_errors: errors,
        };
        if let Some(e) = forced(&s, "productVariantsBulkUpdate") {
            return Ok(fail(e));
        }
        let now = s.clock.now();
        let Some(p) = s.catalog.products.get_mut(&pid) else {
            return Ok(fail(vec![user_error(
                &["productId"],
                "Product does not exist",
                "PRODUCT_DOES_NOT_EXIST",
            )]));
        };
        let mut errors = Vec::new();
        let mut updates = Vec::new();
        for (i, v) in variants.iter().enumerate() {
            let idx = parse_gid(&v.id, "ProductVariant")
                .ok()
                .and_then(|vid| p.variants.iter().position(|x| x.id == vid));
            match (idx, &v.price) {
                (None, _) => errors.push(user_error(
                    &["variants", &i.to_string(), "id"],
                    "Product variant does not exist on this product",
                    "MUST_BE_FOR_THIS_PRODUCT",
                )),
                (Some(_), Some(m)) if m.0.starts_with('-') => errors.push(user_error(
                    &["variants", &i.to_string(), "price"],
                    "Price must be greater than or equal to 0",
                    "NEGATIVE_PRICE_VALUE",
                )),
                (Some(ix), _) => updates.push((ix, v)),
            }
        }
        if !errors.is_empty() && !allow_partial_updates {
            return Ok(fail(errors));
        }
        for (ix, v) in &updates {
            if let Some(m) = &v.price {
                p.variants[*ix].price = m.0.clone();
            }
            if let Some(sku) = &v.sku {
                p.variants[*ix].sku = Some(sku.clone());
            }
        }
        if !updates.is_empty() {
            p.updated_at = now;
        }
        let changed = updates
            .iter()
            .map(|(ix, _)| (&p.variants[*ix]).into())
            .collect();
        let product = Some((&*p).into());
        if !updates.is_empty() {
            s.emit_product("products/update", pid);
        }
        Ok(ProductVariantsBulkUpdatePayload {
            product,
            product_variants: Some(changed),
            user_errors: errors,
        })
    }

    /// Absolute quantities with compare-and-swap: a `changeFromQuantity` that differs from the
    /// current quantity refuses the whole call with `CHANGE_FROM_QUANTITY_STALE`.
    async fn inventory_set_quantities(
        &self,
        ctx: &Context<'_>,
        input: InventorySetQuantitiesInput,
    ) -> Result<InventorySetQuantitiesPayload> {
        let shop = ctx.data::<Shop>()?;
        let mut s = shop.lock();
        let fail = |errors| InventorySetQuantitiesPayload {
            inventory_adjustment_group: None,
            user_errors: errors,
        };
        if let Some(e) = forced(&s, "inventorySetQuantities") {
            return Ok(fail(e));
        }
        if input.name != "available" && input.name != "on_hand" {
            return Ok(fail(vec![user_error(
                &["input", "name"],
                "The quantity name must be either 'available' or 'on_hand'",
                "INVALID_NAME",
            )]));
        }
        let mut targets = Vec::new();
        for (i, q) in input.quantities.iter().enumerate() {
            let at = |f: &str| {
                vec![
                    "input".to_owned(),
                    "quantities".to_owned(),
                    i.to_string(),
                    f.to_owned(),
                ]
            };
            let item = parse_gid(&q.inventory_item_id, "InventoryItem")?;
            let Some((pid, vix)) = s.catalog.by_inventory_item(item) else {
                return Ok(fail(vec![UserError {
                    field: Some(at("inventoryItemId")),
                    message: "The specified inventory item could not be found.".into(),
                    code: Some("INVALID_INVENTORY_ITEM".into()),
                }]));
            };
            let current = s.catalog.products[&pid].variants[vix].inventory_quantity;
            if let Some(expected) = q.change_from_quantity
                && i64::from(expected) != current
            {
                return Ok(fail(vec![UserError {
                    field: Some(at("changeFromQuantity")),
                    message: format!("The quantity changed: expected {expected}, found {current}."),
                    code: Some("CHANGE_FROM_QUANTITY_STALE".into()),
                }]));
            }
            targets.push((pid, vix, i64::from(q.quantity)));
        }
        let now = s.clock.now();
        let bump = s.inventory_bumps_updated_at;
        for (pid, vix, qty) in targets {
            let p = s.catalog.products.get_mut(&pid).expect("found above");
            p.variants[vix].inventory_quantity = qty;
            if bump {
                p.updated_at = now;
            }
            s.emit_product("products/update", pid);
        }
        Ok(InventorySetQuantitiesPayload {
            inventory_adjustment_group: Some(InventoryAdjustmentGroup {
                reason: input.reason,
            }),
            user_errors: vec![],
        })
    }
}

fn apply(
    p: &mut Product,
    handle: Option<String>,
    status: Option<ProductStatus>,
    vendor: Option<String>,
    product_type: Option<String>,
    tags: Option<Vec<String>>,
    description_html: Option<String>,
) {
    if let Some(h) = handle {
        p.handle = h;
    }
    if let Some(st) = status {
        p.status = st.name().to_owned();
    }
    if let Some(v) = vendor {
        p.vendor = v;
    }
    if let Some(t) = product_type {
        p.product_type = t;
    }
    if let Some(t) = tags {
        p.tags = t;
    }
    if let Some(d) = description_html {
        p.description_html = d;
    }
}

fn slug(title: &str, id: u64) -> String {
    let s: String = title
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let s = s.trim_matches('-').to_owned();
    if s.is_empty() {
        format!("product-{id}")
    } else {
        s
    }
}
