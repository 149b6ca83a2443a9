//! The output objects, enums and scalars, and the userErrors helpers.

use super::*;

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
    pub(crate) fn of(s: &str) -> Self {
        match s {
            "DRAFT" => ProductStatus::Draft,
            "ARCHIVED" => ProductStatus::Archived,
            _ => ProductStatus::Active,
        }
    }

    pub(crate) fn name(self) -> &'static str {
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
    pub(crate) has_next_page: bool,
    pub(crate) has_previous_page: bool,
    pub(crate) start_cursor: Option<String>,
    pub(crate) end_cursor: Option<String>,
}

#[derive(SimpleObject, Clone)]
pub struct InventoryItem {
    pub(crate) id: ID,
    pub(crate) tracked: bool,
}

#[derive(SimpleObject, Clone)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductVariant {
    pub(crate) id: ID,
    pub(crate) legacy_resource_id: String,
    pub(crate) sku: Option<String>,
    pub(crate) price: Money,
    pub(crate) title: String,
    pub(crate) inventory_quantity: i64,
    pub(crate) inventory_item: InventoryItem,
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
    pub(crate) cursor: String,
    pub(crate) node: ProductVariant,
}

#[derive(SimpleObject, Clone)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductVariantConnection {
    pub(crate) nodes: Vec<ProductVariant>,
    pub(crate) edges: Vec<VariantEdge>,
    pub(crate) page_info: PageInfo,
}

#[derive(SimpleObject, Clone)]
#[graphql(complex, rename_fields = "camelCase")]
pub struct ProductObj {
    pub(crate) id: ID,
    pub(crate) legacy_resource_id: String,
    pub(crate) title: String,
    pub(crate) handle: String,
    pub(crate) status: ProductStatus,
    pub(crate) vendor: String,
    pub(crate) product_type: String,
    pub(crate) tags: Vec<String>,
    pub(crate) description_html: String,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
    #[graphql(skip)]
    pub(crate) variant_data: Vec<Variant>,
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
    pub(crate) cursor: String,
    pub(crate) node: ProductObj,
}

#[derive(SimpleObject, Clone)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductConnection {
    pub(crate) nodes: Vec<ProductObj>,
    pub(crate) edges: Vec<ProductEdge>,
    pub(crate) page_info: PageInfo,
}

#[derive(SimpleObject, Clone, Debug, PartialEq)]
pub struct UserError {
    pub(crate) field: Option<Vec<String>>,
    pub(crate) message: String,
    pub(crate) code: Option<String>,
}

pub(crate) fn user_error(field: &[&str], message: impl Into<String>, code: &str) -> UserError {
    UserError {
        field: Some(field.iter().map(|s| (*s).to_owned()).collect()),
        message: message.into(),
        code: Some(code.to_owned()),
    }
}

pub(crate) fn forced(state: &ShopState, mutation: &str) -> Option<Vec<UserError>> {
    state.forced_user_error(mutation).map(|f| {
        vec![UserError {
            field: Some(f.field),
            message: f.message,
            code: f.code,
        }]
    })
}
