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
    Archived,
    Draft,
    /// Since 2025-10.
    Unlisted,
}

impl ProductStatus {
    pub(crate) fn of(s: &str) -> Self {
        match s {
            "DRAFT" => ProductStatus::Draft,
            "ARCHIVED" => ProductStatus::Archived,
            "UNLISTED" => ProductStatus::Unlisted,
            _ => ProductStatus::Active,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            ProductStatus::Active => "ACTIVE",
            ProductStatus::Draft => "DRAFT",
            ProductStatus::Archived => "ARCHIVED",
            ProductStatus::Unlisted => "UNLISTED",
        }
    }
}

/// `Weight.unit`.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum WeightUnit {
    Grams,
    Kilograms,
    Ounces,
    Pounds,
}

impl WeightUnit {
    pub(crate) fn of(s: &str) -> Self {
        match s {
            "GRAMS" => WeightUnit::Grams,
            "OUNCES" => WeightUnit::Ounces,
            "POUNDS" => WeightUnit::Pounds,
            _ => WeightUnit::Kilograms,
        }
    }
}

#[derive(SimpleObject, Clone)]
pub struct Weight {
    pub(crate) unit: WeightUnit,
    pub(crate) value: f64,
}

#[derive(SimpleObject, Clone)]
pub struct InventoryItemMeasurement {
    pub(crate) id: ID,
    pub(crate) weight: Option<Weight>,
}

/// `CountPrecision`.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum CountPrecision {
    AtLeast,
    Exact,
}

/// `Count`: `{count, precision}`.
#[derive(SimpleObject, Clone)]
pub struct Count {
    pub(crate) count: i32,
    pub(crate) precision: CountPrecision,
}

#[derive(SimpleObject, Clone)]
pub struct SelectedOption {
    pub(crate) name: String,
    pub(crate) value: String,
}

#[derive(SimpleObject, Clone)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductOptionValue {
    pub(crate) id: ID,
    pub(crate) name: String,
    pub(crate) has_variants: bool,
}

#[derive(SimpleObject, Clone)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductOptionObj {
    pub(crate) id: ID,
    pub(crate) name: String,
    pub(crate) position: i32,
    /// The values some variant uses.
    pub(crate) values: Vec<String>,
    /// Every value, used or not.
    pub(crate) option_values: Vec<ProductOptionValue>,
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
#[graphql(rename_fields = "camelCase")]
pub struct InventoryItem {
    pub(crate) id: ID,
    pub(crate) legacy_resource_id: String,
    pub(crate) sku: Option<String>,
    pub(crate) tracked: bool,
    pub(crate) requires_shipping: bool,
    pub(crate) measurement: InventoryItemMeasurement,
}

#[derive(SimpleObject, Clone)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductVariant {
    pub(crate) id: ID,
    pub(crate) legacy_resource_id: String,
    pub(crate) title: String,
    pub(crate) display_name: String,
    /// Reads the inventory item's SKU.
    pub(crate) sku: Option<String>,
    /// Deprecated in 2026-10 (`barcodes`); still served.
    pub(crate) barcode: Option<String>,
    pub(crate) price: Money,
    pub(crate) compare_at_price: Option<Money>,
    pub(crate) position: i32,
    pub(crate) taxable: bool,
    pub(crate) inventory_quantity: Option<i64>,
    pub(crate) selected_options: Vec<SelectedOption>,
    pub(crate) inventory_item: InventoryItem,
}

impl ProductVariant {
    /// Variant `index` of `p`.
    pub(crate) fn of(p: &Product, index: usize) -> Self {
        let v = &p.variants[index];
        let selected_options = p
            .options
            .iter()
            .zip(&v.option_values)
            .map(|(o, value)| SelectedOption {
                name: o.name.clone(),
                value: value.clone(),
            })
            .collect();
        Self {
            id: gid("ProductVariant", v.id),
            legacy_resource_id: v.id.to_string(),
            title: v.title.clone(),
            display_name: format!("{} - {}", p.title, v.title),
            sku: v.sku.clone(),
            barcode: v.barcode.clone(),
            price: Money(v.price.clone()),
            compare_at_price: v.compare_at_price.clone().map(Money),
            position: index as i32 + 1,
            taxable: v.taxable,
            inventory_quantity: Some(v.inventory_quantity),
            selected_options,
            inventory_item: InventoryItem {
                id: gid("InventoryItem", v.inventory_item_id),
                legacy_resource_id: v.inventory_item_id.to_string(),
                sku: v.sku.clone(),
                tracked: true,
                requires_shipping: true,
                measurement: InventoryItemMeasurement {
                    id: gid("InventoryItemMeasurement", v.inventory_item_id),
                    weight: v.weight.as_ref().map(|(unit, value)| Weight {
                        unit: WeightUnit::of(unit),
                        value: *value,
                    }),
                },
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
    pub(crate) total_inventory: i64,
    pub(crate) has_only_default_variant: bool,
    pub(crate) variants_count: Count,
    #[graphql(skip)]
    pub(crate) product: std::sync::Arc<Product>,
}

#[ComplexObject]
impl ProductObj {
    /// The product's options (a list, not a connection), at most `first`.
    async fn options(&self, first: Option<i32>) -> Vec<ProductOptionObj> {
        let p = &self.product;
        let n = first.map_or(usize::MAX, |f| f.max(0) as usize);
        p.options
            .iter()
            .enumerate()
            .take(n)
            .map(|(i, o)| {
                let used = |name: &str| {
                    p.variants
                        .iter()
                        .any(|v| v.option_values.get(i).map(String::as_str) == Some(name))
                };
                ProductOptionObj {
                    id: gid("ProductOption", o.id),
                    name: o.name.clone(),
                    position: i as i32 + 1,
                    values: o
                        .values
                        .iter()
                        .filter(|(_, n)| used(n))
                        .map(|(_, n)| n.clone())
                        .collect(),
                    option_values: o
                        .values
                        .iter()
                        .map(|(id, n)| ProductOptionValue {
                            id: gid("ProductOptionValue", *id),
                            name: n.clone(),
                            has_variants: used(n),
                        })
                        .collect(),
                }
            })
            .collect()
    }

    async fn variants(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        last: Option<i32>,
        after: Option<String>,
    ) -> Result<ProductVariantConnection> {
        // In a bulk export every variant comes, whatever the paging arguments.
        let n = if ctx.data_opt::<crate::bulk::BulkWindow>().is_some() {
            usize::MAX
        } else {
            page_size(first, last)?
        };
        let start = after.and_then(|a| a.parse::<usize>().ok()).unwrap_or(0);
        let p = &self.product;
        let indices: Vec<usize> = (0..p.variants.len()).skip(start).take(n).collect();
        let nodes: Vec<ProductVariant> =
            indices.iter().map(|i| ProductVariant::of(p, *i)).collect();
        let edges = indices
            .iter()
            .map(|i| VariantEdge {
                cursor: (i + 1).to_string(),
                node: ProductVariant::of(p, *i),
            })
            .collect::<Vec<_>>();
        Ok(ProductVariantConnection {
            page_info: PageInfo {
                has_next_page: start.saturating_add(n) < p.variants.len(),
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
            total_inventory: p.variants.iter().map(|v| v.inventory_quantity).sum(),
            has_only_default_variant: p.variants.len() == 1
                && p.variants[0].title == crate::model::DEFAULT_TITLE,
            variants_count: Count {
                count: p.variants.len() as i32,
                precision: CountPrecision::Exact,
            },
            product: std::sync::Arc::new(p.clone()),
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
