//! Products: cursor pagination as a stream of pages.

use futures::{StreamExt, stream::BoxStream};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{Client, Gid, ShopifyError};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VariantNode {
    pub id: Gid,
    pub sku: Option<String>,
    pub price: String,
    pub inventory_quantity: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductNode {
    pub id: Gid,
    pub title: String,
    pub handle: String,
    pub status: String,
    pub updated_at: String,
    pub variants: Nodes<VariantNode>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Nodes<T> {
    pub nodes: Vec<T>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    has_next_page: bool,
    end_cursor: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    nodes: Vec<Value>,
    page_info: PageInfo,
}

#[derive(Deserialize)]
struct ProductsData {
    products: Page,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CountData {
    products_count: Count,
}

#[derive(Deserialize)]
struct Count {
    count: u64,
    precision: String,
}

/// The fields [`ProductNode`] reads.
const PRODUCT_FIELDS: &str = "id title handle status updatedAt variants(first: 10) { nodes { id sku price inventoryQuantity } }";

/// The paginated products query selecting `fields` of each product, oldest update first.
fn products_query(fields: &str) -> String {
    format!(
        "query($first: Int!, $after: String, $query: String) {{ \
  products(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {{ \
    nodes {{ {fields} }} pageInfo {{ hasNextPage endCursor }} }} }}"
    )
}

/// The largest page of `query` whose requested cost stays within the single-query maximum.
fn max_page(query: &str) -> u32 {
    let one = crate::cost::requested_cost(query, &json!({"first": 1}), None).unwrap_or(1000.0);
    let per_node = (one - 2.0).max(1.0);
    (((crate::cost::MAX_QUERY_COST - 2.0) / per_node).floor() as u32).clamp(1, 250)
}

/// The search fields Shopify documents for `products(query:)` and `productsCount(query:)`
/// (<https://shopify.dev/docs/api/admin-graphql/latest/queries/productsCount>), besides
/// `metafields.{namespace}.{key}`. Shopify silently ignores any other field and returns every
/// product, so a typo would turn an incremental pull into a full scan.
pub const PRODUCT_SEARCH_FIELDS: &[&str] = &[
    "default",
    "barcode",
    "bundles",
    "category_id",
    "collection_id",
    "combined_listing_role",
    "created_at",
    "delivery_profile_id",
    "error_feedback",
    "gift_card",
    "handle",
    "has_only_composites",
    "has_only_default_variant",
    "has_variant_with_components",
    "id",
    "inventory_total",
    "is_price_reduced",
    "out_of_stock_somewhere",
    "price",
    "product_configuration_owner",
    "product_publication_status",
    "product_type",
    "publication_ids",
    "publishable_status",
    "published_at",
    "published_status",
    "sku",
    "status",
    "tag",
    "tag_not",
    "title",
    // Since 2026-04.
    "tracks_inventory",
    "updated_at",
    "variant_id",
    "variant_title",
    "vendor",
];

/// True for a field Shopify's product search knows (the list above, or a metafield).
pub fn is_product_search_field(field: &str) -> bool {
    let field = field.to_ascii_lowercase();
    PRODUCT_SEARCH_FIELDS.contains(&field.as_str())
        || field
            .strip_prefix("metafields.")
            .is_some_and(|rest| rest.split('.').filter(|p| !p.is_empty()).count() == 2)
}

/// Refuses a search naming a field Shopify would ignore. The search is read with Shopify's
/// syntax ([`crate::search`]): quoted values, groups, `OR`, `NOT` and `-` are understood.
pub fn check_product_search(search: &str) -> Result<(), ShopifyError> {
    let Some(query) = crate::search::parse(search) else {
        return Ok(());
    };
    for term in query.terms() {
        if let Some(field) = &term.field
            && !is_product_search_field(field)
        {
            return Err(ShopifyError::Graphql(vec![crate::GraphqlError {
                message: format!(
                    "search field {field:?} is not one Shopify knows; it would be ignored and every product returned"
                ),
                extensions: None,
            }]));
        }
    }
    Ok(())
}

impl Client {
    /// Every product matching `search` (Shopify search syntax, e.g. `updated_at:>'2026-01-01'`),
    /// oldest update first, as a stream of pages of `page_size` — capped so a page's requested
    /// cost (products × their first 10 variants) stays within the 1000-point maximum. A search
    /// naming a field Shopify does not know is refused (see [`check_product_search`]).
    pub fn product_pages(
        &self,
        search: Option<String>,
        page_size: u32,
    ) -> BoxStream<'_, Result<Vec<ProductNode>, ShopifyError>> {
        self.product_pages_of(PRODUCT_FIELDS, search, page_size)
            .map(|page| {
                page?
                    .into_iter()
                    .map(|v| {
                        serde_json::from_value(v).map_err(|e| ShopifyError::Decode(e.to_string()))
                    })
                    .collect()
            })
            .boxed()
    }

    /// Like [`product_pages`](Self::product_pages), selecting `fields` of each product (as
    /// JSON); pages are capped by the requested cost of those fields.
    pub fn product_pages_of(
        &self,
        fields: &str,
        search: Option<String>,
        page_size: u32,
    ) -> BoxStream<'_, Result<Vec<Value>, ShopifyError>> {
        let query = products_query(fields);
        let first = page_size.clamp(1, max_page(&query));
        let guard = search.as_deref().map(check_product_search).transpose();
        if let Err(e) = guard {
            return futures::stream::once(async move { Err(e) }).boxed();
        }
        futures::stream::unfold(Some(None::<String>), move |cursor| {
            let search = search.clone();
            let query = query.clone();
            async move {
                let after = cursor?;
                let vars = json!({ "first": first, "after": after, "query": search });
                match self.query::<ProductsData>(&query, vars).await {
                    Ok(a) => {
                        let p = a.data.products;
                        let next = (p.page_info.has_next_page)
                            .then_some(p.page_info.end_cursor)
                            .flatten()
                            .map(Some);
                        Some((Ok(p.nodes), next))
                    }
                    Err(e) => Some((Err(e), None)),
                }
            }
        })
        .boxed()
    }

    /// How many products match `search` (`productsCount`), counting at most to `limit`; the
    /// count and whether it is exact (`false`: at least that many).
    pub async fn products_count(
        &self,
        search: Option<&str>,
        limit: Option<u32>,
    ) -> Result<(u64, bool), ShopifyError> {
        if let Some(s) = search {
            check_product_search(s)?;
        }
        let a = self
            .query::<CountData>(
                "query($query: String, $limit: Int) { productsCount(query: $query, limit: $limit) { count precision } }",
                json!({ "query": search, "limit": limit }),
            )
            .await?;
        let c = a.data.products_count;
        Ok((c.count, c.precision == "EXACT"))
    }
}

const PRODUCT_SET: &str = "mutation($identifier: ProductSetIdentifiers, $input: ProductSetInput!, $synchronous: Boolean!) { \
  productSet(identifier: $identifier, input: $input, synchronous: $synchronous) { \
    product { id title handle updatedAt variants(first: 100) { nodes { id sku price } } } \
    productSetOperation { id status userErrors { field message code } } \
    userErrors { field message code } } }";

const PRODUCT_OPERATION: &str = "query($id: ID!) { productOperation(id: $id) { \
  ... on ProductSetOperation { id status product { id title handle updatedAt variants(first: 100) { nodes { id sku price } } } \
  userErrors { field message code } } } }";

impl Client {
    /// Upserts a whole product with `productSet` (lists such as variants are replaced in full)
    /// and returns the product. Asynchronous runs are polled until COMPLETE. `userErrors`, from
    /// the call or from the background operation, come back as [`ShopifyError::UserErrors`].
    /// Retried on transient errors: setting a whole product is idempotent.
    ///
    /// `identifier` is a `ProductSetIdentifiers` (`{"id"}` to update, `{"handle"}` or
    /// `{"customId": {namespace, key, value}}` to upsert); `input` a 2026-10 `ProductSetInput`:
    /// `productOptions` (`[{name, values: [{name}]}]`) and `variants` come together, each
    /// variant names its `optionValues` (`[{optionName, name}]`) and carries `price`,
    /// `compareAtPrice`, `barcodes` (or the deprecated `barcode`) and `inventoryItem: {sku}`.
    pub async fn product_set(
        &self,
        identifier: Option<serde_json::Value>,
        input: serde_json::Value,
        synchronous: bool,
    ) -> Result<serde_json::Value, ShopifyError> {
        let vars = json!({ "identifier": identifier, "input": input, "synchronous": synchronous });
        let a = self
            .mutate::<serde_json::Value>(PRODUCT_SET, vars, true)
            .await?;
        let payload = &a.data["productSet"];
        Client::check_user_errors(payload)?;
        if synchronous || payload["product"].is_object() {
            return Ok(payload["product"].clone());
        }
        let op = payload["productSetOperation"]["id"]
            .as_str()
            .ok_or_else(|| {
                ShopifyError::Decode("productSet returned neither product nor operation".into())
            })?
            .to_owned();
        let started = std::time::Instant::now();
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let a = self
                .query::<serde_json::Value>(PRODUCT_OPERATION, json!({ "id": op }))
                .await?;
            let o = &a.data["productOperation"];
            Client::check_user_errors(o)?;
            match o["status"].as_str() {
                Some("COMPLETE") => return Ok(o["product"].clone()),
                Some("CREATED" | "ACTIVE")
                    if started.elapsed() < std::time::Duration::from_secs(300) => {}
                other => {
                    return Err(ShopifyError::Decode(format!(
                        "productSet operation {op} ended as {other:?}"
                    )));
                }
            }
        }
    }
}
