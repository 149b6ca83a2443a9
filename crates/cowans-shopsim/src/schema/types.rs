//! Output objects, enums and the `Node` interface.

use std::sync::Arc;

use super::*;

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
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

/// `ProductVariantInventoryPolicy`.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ProductVariantInventoryPolicy {
    Continue,
    Deny,
}

impl ProductVariantInventoryPolicy {
    pub(crate) fn of(s: &str) -> Self {
        if s == "CONTINUE" {
            Self::Continue
        } else {
            Self::Deny
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Continue => "CONTINUE",
            Self::Deny => "DENY",
        }
    }
}

/// `BarcodeType` (2026-10).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum BarcodeType {
    Asin,
    Ean,
    Gtin,
    Isbn,
    Upc,
}

/// `Weight.unit`.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum WeightUnit {
    Grams,
    Kilograms,
    Ounces,
    Pounds,
}

impl WeightUnit {
    pub(crate) fn of(s: &str) -> Self {
        enum_value(s).unwrap_or(WeightUnit::Kilograms)
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            WeightUnit::Grams => "GRAMS",
            WeightUnit::Kilograms => "KILOGRAMS",
            WeightUnit::Ounces => "OUNCES",
            WeightUnit::Pounds => "POUNDS",
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
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
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

impl Count {
    /// `matching` counted up to `limit` (`None`: no limit).
    pub(crate) fn capped(matching: usize, limit: Option<i32>) -> Result<Self> {
        if let Some(l) = limit
            && l < 0
        {
            return Err(Error::new("limit must be greater than or equal to 0"));
        }
        let (count, precision) = match limit.map(|l| l as usize) {
            Some(l) if matching > l => (l, CountPrecision::AtLeast),
            _ => (matching, CountPrecision::Exact),
        };
        Ok(Count {
            count: i32::try_from(count).unwrap_or(i32::MAX),
            precision,
        })
    }
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
#[graphql(name = "ProductOption", rename_fields = "camelCase")]
pub struct ProductOptionObj {
    pub(crate) id: ID,
    pub(crate) name: String,
    pub(crate) position: i32,
    /// The values some variant uses.
    pub(crate) values: Vec<String>,
    /// Every value, used or not.
    pub(crate) option_values: Vec<ProductOptionValue>,
}

/// Option `i` of `p`: `values` lists the values some variant uses, `optionValues` all.
pub(crate) fn option_obj(p: &Product, i: usize) -> ProductOptionObj {
    let o = &p.options[i];
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
}

/// `ProductSortKeys`.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ProductSortKeys {
    CreatedAt,
    Id,
    InventoryTotal,
    ProductType,
    PublishedAt,
    Relevance,
    Title,
    UpdatedAt,
    Vendor,
}

impl ProductSortKeys {
    pub(crate) fn key(self) -> SortKey {
        match self {
            Self::CreatedAt => SortKey::CreatedAt,
            Self::Id => SortKey::Id,
            Self::InventoryTotal => SortKey::InventoryTotal,
            Self::ProductType => SortKey::ProductType,
            Self::PublishedAt => SortKey::PublishedAt,
            Self::Relevance => SortKey::Relevance,
            Self::Title => SortKey::Title,
            Self::UpdatedAt => SortKey::UpdatedAt,
            Self::Vendor => SortKey::Vendor,
        }
    }
}

/// `ProductVariantSortKeys`.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ProductVariantSortKeys {
    FullTitle,
    Id,
    InventoryLevelsAvailable,
    InventoryManagement,
    InventoryPolicy,
    InventoryQuantity,
    Name,
    Popular,
    Position,
    Relevance,
    Sku,
    Title,
}

impl ProductVariantSortKeys {
    /// The sort value of variant `i` of `p`. POPULAR and RELEVANCE sort as ID.
    pub(crate) fn value(self, p: &Product, i: usize) -> String {
        let v = &p.variants[i];
        let num = |n: i64| format!("{:020}", i128::from(n) + (1i128 << 62));
        match self {
            Self::Id | Self::Popular | Self::Relevance => format!("{:020}", v.id),
            Self::FullTitle | Self::Name => format!("{} - {}", p.title, v.title).to_lowercase(),
            Self::InventoryLevelsAvailable | Self::InventoryQuantity => num(v.inventory_quantity()),
            Self::InventoryManagement => u8::from(!v.tracked).to_string(),
            Self::InventoryPolicy => v.inventory_policy.clone(),
            Self::Position => format!("{:020}{:06}", p.id, i),
            Self::Sku => v.sku.clone().unwrap_or_default().to_lowercase(),
            Self::Title => v.title.to_lowercase(),
        }
    }
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
#[graphql(complex, rename_fields = "camelCase")]
pub struct InventoryItem {
    pub(crate) id: ID,
    pub(crate) legacy_resource_id: UnsignedInt64,
    pub(crate) sku: Option<String>,
    pub(crate) tracked: bool,
    pub(crate) requires_shipping: bool,
    pub(crate) measurement: InventoryItemMeasurement,
    pub(crate) created_at: DateTime,
    pub(crate) updated_at: DateTime,
    /// Available quantity by location (the item's inventory levels).
    #[graphql(skip)]
    pub(crate) levels: Vec<(u64, i64)>,
}

impl InventoryItem {
    pub(crate) fn of(v: &Variant) -> Self {
        InventoryItem {
            id: gid("InventoryItem", v.inventory_item_id),
            legacy_resource_id: UnsignedInt64(v.inventory_item_id),
            sku: v.sku.clone(),
            tracked: v.tracked,
            requires_shipping: v.requires_shipping,
            measurement: InventoryItemMeasurement {
                id: gid("InventoryItemMeasurement", v.inventory_item_id),
                weight: v.weight.as_ref().map(|(unit, value)| Weight {
                    unit: WeightUnit::of(unit),
                    value: *value,
                }),
            },
            created_at: DateTime::of(v.created_at),
            updated_at: DateTime::of(v.updated_at),
            levels: v.levels.iter().map(|(l, q)| (*l, *q)).collect(),
        }
    }

    /// The level at `location` (one of the shop's), if the item is stocked there.
    fn level(&self, location: &crate::shop::SimLocation) -> Option<InventoryLevel> {
        let (_, available) = self.levels.iter().find(|(l, _)| *l == location.id)?;
        let item = self.legacy_resource_id.0;
        Some(InventoryLevel {
            id: ID(format!(
                "gid://shopify/InventoryLevel/{}?inventory_item_id={item}",
                location.id
            )),
            location: Location::of(location),
            available: *available,
            created_at: self.created_at.clone(),
            updated_at: self.updated_at.clone(),
        })
    }
}

#[ComplexObject]
impl InventoryItem {
    /// The item's level at a location (null where it is not stocked).
    async fn inventory_level(
        &self,
        ctx: &Context<'_>,
        location_id: ID,
    ) -> Result<Option<InventoryLevel>> {
        let id = parse_gid(&location_id, "Location")?;
        let shop = ctx.data::<Shop>()?;
        let s = shop.lock();
        Ok(s.locations
            .iter()
            .find(|l| l.id == id)
            .and_then(|l| self.level(l)))
    }

    /// The item's levels, one per location stocking it, in location-id order (a bulk export
    /// lists them all).
    #[allow(clippy::too_many_arguments)]
    async fn inventory_levels(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        last: Option<i32>,
        after: Option<String>,
        before: Option<String>,
        reverse: Option<bool>,
    ) -> Result<InventoryLevelConnection> {
        let levels: Vec<InventoryLevel> = {
            let shop = ctx.data::<Shop>()?;
            let s = shop.lock();
            s.locations.iter().filter_map(|l| self.level(l)).collect()
        };
        let keys: Vec<(String, u64)> = levels
            .iter()
            .map(|l| {
                (
                    format!("{:020}", l.location.legacy_resource_id.0),
                    l.location.legacy_resource_id.0,
                )
            })
            .collect();
        let bulk = ctx.data_opt::<crate::bulk::BulkWindow>().is_some();
        let paging = Paging {
            first: if bulk { Some(250) } else { first },
            last: if bulk { None } else { last },
            after: if bulk { None } else { after },
            before: if bulk { None } else { before },
            reverse: !bulk && reverse.unwrap_or(false),
        };
        let w = paging.window(&keys)?;
        let node = |i: usize| levels[paging.index(keys.len(), i)].clone();
        Ok(InventoryLevelConnection {
            nodes: w.indices.clone().map(node).collect(),
            edges: w
                .indices
                .clone()
                .map(|i| InventoryLevelEdge {
                    cursor: paging.cursor(&keys, i),
                    node: node(i),
                })
                .collect(),
            page_info: w.page_info,
        })
    }
}

/// `InventoryLevel`: an item's quantities at one location (the simulator keeps `available`;
/// `on_hand` reads the same).
#[derive(SimpleObject, Clone)]
#[graphql(complex, rename_fields = "camelCase")]
pub struct InventoryLevel {
    pub(crate) id: ID,
    pub(crate) location: Location,
    #[graphql(skip)]
    pub(crate) available: i64,
    pub(crate) created_at: DateTime,
    pub(crate) updated_at: DateTime,
}

#[ComplexObject]
impl InventoryLevel {
    /// The quantities named (`available`, `on_hand`, `committed`, `incoming`, `reserved`, ...).
    async fn quantities(&self, names: Vec<String>) -> Result<Vec<InventoryQuantity>> {
        const NAMES: &[&str] = &[
            "available",
            "on_hand",
            "committed",
            "incoming",
            "reserved",
            "damaged",
            "safety_stock",
            "quality_control",
        ];
        names
            .into_iter()
            .map(|name| {
                if !NAMES.contains(&name.as_str()) {
                    return Err(Error::new(format!("Invalid quantity name: {name}")));
                }
                let quantity = match name.as_str() {
                    "available" | "on_hand" => self.available,
                    _ => 0,
                };
                Ok(InventoryQuantity {
                    id: ID(format!("{}&name={name}", self.id.0)),
                    name,
                    quantity: i32::try_from(quantity).unwrap_or(i32::MAX),
                    updated_at: Some(self.updated_at.clone()),
                })
            })
            .collect()
    }
}

/// `InventoryQuantity`.
#[derive(SimpleObject, Clone)]
#[graphql(rename_fields = "camelCase")]
pub struct InventoryQuantity {
    pub(crate) id: ID,
    pub(crate) name: String,
    pub(crate) quantity: i32,
    pub(crate) updated_at: Option<DateTime>,
}

#[derive(SimpleObject, Clone)]
pub struct InventoryLevelEdge {
    pub(crate) cursor: String,
    pub(crate) node: InventoryLevel,
}

#[derive(SimpleObject, Clone)]
#[graphql(rename_fields = "camelCase")]
pub struct InventoryLevelConnection {
    pub(crate) nodes: Vec<InventoryLevel>,
    pub(crate) edges: Vec<InventoryLevelEdge>,
    pub(crate) page_info: PageInfo,
}

/// `ProductVariantBarcode` (2026-10).
#[derive(SimpleObject, Clone)]
pub struct ProductVariantBarcode {
    #[graphql(name = "type")]
    pub(crate) kind: Option<BarcodeType>,
    pub(crate) value: String,
}

#[derive(SimpleObject, Clone)]
pub struct ProductVariantBarcodeEdge {
    pub(crate) cursor: String,
    pub(crate) node: ProductVariantBarcode,
}

#[derive(SimpleObject, Clone)]
#[graphql(rename_fields = "camelCase")]
pub struct ProductVariantBarcodeConnection {
    pub(crate) nodes: Vec<ProductVariantBarcode>,
    pub(crate) edges: Vec<ProductVariantBarcodeEdge>,
    pub(crate) page_info: PageInfo,
}

#[derive(SimpleObject, Clone)]
#[graphql(complex, rename_fields = "camelCase")]
pub struct ProductVariant {
    pub(crate) id: ID,
    pub(crate) legacy_resource_id: UnsignedInt64,
    pub(crate) title: String,
    pub(crate) display_name: String,
    /// Reads the inventory item's SKU.
    pub(crate) sku: Option<String>,
    /// Deprecated in 2026-10 (`barcodes`): the first barcode.
    pub(crate) barcode: Option<String>,
    pub(crate) price: Money,
    pub(crate) compare_at_price: Option<Money>,
    pub(crate) position: i32,
    pub(crate) taxable: bool,
    pub(crate) inventory_quantity: Option<i64>,
    pub(crate) inventory_policy: ProductVariantInventoryPolicy,
    pub(crate) available_for_sale: bool,
    pub(crate) sellable_online_quantity: i64,
    pub(crate) selected_options: Vec<SelectedOption>,
    pub(crate) inventory_item: InventoryItem,
    pub(crate) created_at: DateTime,
    pub(crate) updated_at: DateTime,
    #[graphql(skip)]
    pub(crate) product: Arc<Product>,
    #[graphql(skip)]
    pub(crate) index: usize,
}

impl ProductVariant {
    /// Variant `index` of `p`.
    pub(crate) fn of(p: &Arc<Product>, index: usize) -> Self {
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
        let in_stock = v.inventory_quantity() > 0 || !v.tracked || v.inventory_policy == "CONTINUE";
        Self {
            id: gid("ProductVariant", v.id),
            legacy_resource_id: UnsignedInt64(v.id),
            title: v.title.clone(),
            display_name: format!("{} - {}", p.title, v.title),
            sku: v.sku.clone(),
            barcode: v.barcode.clone(),
            price: Money(v.price.clone()),
            compare_at_price: v.compare_at_price.clone().map(Money),
            position: index as i32 + 1,
            taxable: v.taxable,
            inventory_quantity: Some(v.inventory_quantity()),
            inventory_policy: ProductVariantInventoryPolicy::of(&v.inventory_policy),
            available_for_sale: p.status == "ACTIVE" && in_stock,
            sellable_online_quantity: v.inventory_quantity().max(0),
            selected_options,
            inventory_item: InventoryItem::of(v),
            created_at: DateTime::of(v.created_at),
            updated_at: DateTime::of(v.updated_at),
            product: p.clone(),
            index,
        }
    }
}

#[ComplexObject]
impl ProductVariant {
    /// The product this variant belongs to.
    async fn product(&self) -> ProductObj {
        ProductObj::of(self.product.clone())
    }

    /// The variant's barcodes (2026-10).
    async fn barcodes(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        #[graphql(default_with = "Some(false)")] reverse: Option<bool>,
    ) -> Result<ProductVariantBarcodeConnection> {
        if !since(ctx, "2026-10") {
            return Err(Error::new(
                "Field 'barcodes' doesn't exist on type 'ProductVariant'",
            ));
        }
        let all = &self.product.variants[self.index].barcodes;
        let keys: Vec<(String, u64)> = (0..all.len())
            .map(|i| (format!("{i:06}"), i as u64))
            .collect();
        let paging = Paging {
            first,
            last,
            after,
            before,
            reverse: reverse.unwrap_or(false),
        };
        let w = paging.window(&keys)?;
        let node = |i: usize| {
            let (kind, value) = &all[paging.index(keys.len(), i)];
            ProductVariantBarcode {
                kind: kind.as_deref().and_then(enum_value),
                value: value.clone(),
            }
        };
        Ok(ProductVariantBarcodeConnection {
            nodes: w.indices.clone().map(node).collect(),
            edges: w
                .indices
                .clone()
                .map(|i| ProductVariantBarcodeEdge {
                    cursor: paging.cursor(&keys, i),
                    node: node(i),
                })
                .collect(),
            page_info: w.page_info,
        })
    }
}

#[derive(SimpleObject, Clone)]
#[graphql(name = "ProductVariantEdge")]
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

/// `Metafield` (the fields a custom id needs).
#[derive(SimpleObject, Clone)]
pub struct Metafield {
    pub(crate) namespace: String,
    pub(crate) key: String,
    pub(crate) value: String,
    #[graphql(name = "type")]
    pub(crate) kind: String,
}

#[derive(SimpleObject, Clone)]
#[graphql(name = "Product", complex, rename_fields = "camelCase")]
pub struct ProductObj {
    pub(crate) id: ID,
    pub(crate) legacy_resource_id: UnsignedInt64,
    pub(crate) title: String,
    pub(crate) handle: String,
    pub(crate) status: ProductStatus,
    pub(crate) vendor: String,
    pub(crate) product_type: String,
    pub(crate) tags: Vec<String>,
    pub(crate) description_html: Html,
    pub(crate) created_at: DateTime,
    pub(crate) updated_at: DateTime,
    /// Nothing is published to a channel in the simulator.
    pub(crate) published_at: Option<DateTime>,
    pub(crate) online_store_url: Option<Url>,
    pub(crate) total_inventory: i32,
    pub(crate) tracks_inventory: bool,
    pub(crate) has_only_default_variant: bool,
    pub(crate) variants_count: Count,
    pub(crate) is_gift_card: bool,
    pub(crate) template_suffix: Option<String>,
    #[graphql(skip)]
    pub(crate) product: Arc<Product>,
}

#[ComplexObject]
impl ProductObj {
    /// The product's options (a list, not a connection), at most `first`.
    async fn options(&self, first: Option<i32>) -> Vec<ProductOptionObj> {
        let n = first.map_or(usize::MAX, |f| f.max(0) as usize);
        (0..self.product.options.len())
            .take(n)
            .map(|i| option_obj(&self.product, i))
            .collect()
    }

    /// The variants, in position order (or by `sortKey`), paged.
    #[allow(clippy::too_many_arguments)]
    async fn variants(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        #[graphql(default_with = "Some(false)")] reverse: Option<bool>,
        #[graphql(default_with = "Some(ProductVariantSortKeys::Position)")] sort_key: Option<
            ProductVariantSortKeys,
        >,
    ) -> Result<ProductVariantConnection> {
        let p = &self.product;
        // In a bulk export every variant comes, whatever the paging arguments.
        if ctx.data_opt::<crate::bulk::BulkWindow>().is_some() {
            let nodes: Vec<ProductVariant> = (0..p.variants.len())
                .map(|i| ProductVariant::of(p, i))
                .collect();
            let edges = nodes
                .iter()
                .map(|n| VariantEdge {
                    cursor: String::new(),
                    node: n.clone(),
                })
                .collect();
            return Ok(ProductVariantConnection {
                nodes,
                edges,
                page_info: PageInfo {
                    has_next_page: false,
                    has_previous_page: false,
                    start_cursor: None,
                    end_cursor: None,
                },
            });
        }
        let sort_key = sort_key.unwrap_or(ProductVariantSortKeys::Position);
        let mut order: Vec<(String, u64, usize)> = (0..p.variants.len())
            .map(|i| (sort_key.value(p, i), p.variants[i].id, i))
            .collect();
        order.sort();
        let keys: Vec<(String, u64)> = order.iter().map(|(k, id, _)| (k.clone(), *id)).collect();
        let paging = Paging {
            first,
            last,
            after,
            before,
            reverse: reverse.unwrap_or(false),
        };
        let w = paging.window(&keys)?;
        let node = |i: usize| ProductVariant::of(p, order[paging.index(keys.len(), i)].2);
        Ok(ProductVariantConnection {
            nodes: w.indices.clone().map(node).collect(),
            edges: w
                .indices
                .clone()
                .map(|i| VariantEdge {
                    cursor: paging.cursor(&keys, i),
                    node: node(i),
                })
                .collect(),
            page_info: w.page_info,
        })
    }

    /// One metafield (`namespace` omitted: the app-reserved `$app`).
    async fn metafield(&self, namespace: Option<String>, key: String) -> Option<Metafield> {
        let ns = namespace.unwrap_or_else(|| "$app".to_owned());
        self.product
            .metafields
            .iter()
            .find(|m| m.namespace == ns && m.key == key)
            .map(|m| Metafield {
                namespace: m.namespace.clone(),
                key: m.key.clone(),
                value: m.value.clone(),
                kind: m.kind.clone(),
            })
    }
}

impl ProductObj {
    pub(crate) fn of(p: Arc<Product>) -> Self {
        let total: i64 = p.variants.iter().map(|v| v.inventory_quantity()).sum();
        Self {
            id: gid("Product", p.id),
            legacy_resource_id: UnsignedInt64(p.id),
            title: p.title.clone(),
            handle: p.handle.clone(),
            status: ProductStatus::of(&p.status),
            vendor: p.vendor.clone(),
            product_type: p.product_type.clone(),
            tags: p.tags.clone(),
            description_html: Html(p.description_html.clone()),
            created_at: DateTime::of(p.created_at),
            updated_at: DateTime::of(p.updated_at),
            published_at: None,
            online_store_url: None,
            total_inventory: i32::try_from(total).unwrap_or(i32::MAX),
            tracks_inventory: p.variants.iter().any(|v| v.tracked),
            has_only_default_variant: p.variants.len() == 1
                && p.variants[0].title == crate::model::DEFAULT_TITLE,
            variants_count: Count {
                count: p.variants.len() as i32,
                precision: CountPrecision::Exact,
            },
            is_gift_card: false,
            template_suffix: None,
            product: p,
        }
    }
}

impl From<&Product> for ProductObj {
    fn from(p: &Product) -> Self {
        ProductObj::of(Arc::new(p.clone()))
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

/// A location holding inventory. The simulated shop has one.
#[derive(SimpleObject, Clone)]
#[graphql(rename_fields = "camelCase")]
pub struct Location {
    pub(crate) id: ID,
    pub(crate) legacy_resource_id: UnsignedInt64,
    pub(crate) name: String,
    pub(crate) is_active: bool,
    pub(crate) fulfills_online_orders: bool,
    pub(crate) has_active_inventory: bool,
    pub(crate) ships_inventory: bool,
    pub(crate) created_at: DateTime,
    pub(crate) updated_at: DateTime,
}

impl Location {
    pub(crate) fn of(l: &crate::shop::SimLocation) -> Self {
        Location {
            id: gid("Location", l.id),
            legacy_resource_id: UnsignedInt64(l.id),
            name: l.name.clone(),
            is_active: l.active,
            fulfills_online_orders: l.active,
            has_active_inventory: l.active,
            ships_inventory: l.active,
            created_at: DateTime::of(l.created_at),
            updated_at: DateTime::of(l.created_at),
        }
    }
}

#[derive(SimpleObject, Clone)]
pub struct LocationEdge {
    pub(crate) cursor: String,
    pub(crate) node: Location,
}

#[derive(SimpleObject, Clone)]
#[graphql(rename_fields = "camelCase")]
pub struct LocationConnection {
    pub(crate) nodes: Vec<Location>,
    pub(crate) edges: Vec<LocationEdge>,
    pub(crate) page_info: PageInfo,
}

/// `LocationSortKeys`.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum LocationSortKeys {
    Id,
    Name,
    Relevance,
}

/// `CurrencyCode` (the simulator's shop trades in one of these).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum CurrencyCode {
    Aud,
    Cad,
    Chf,
    Dkk,
    Eur,
    Gbp,
    Jpy,
    Nok,
    Nzd,
    Sek,
    Usd,
}

#[derive(SimpleObject, Clone)]
#[graphql(rename_fields = "camelCase")]
pub struct ShopPlan {
    pub(crate) partner_development: bool,
    pub(crate) public_display_name: String,
    pub(crate) shopify_plus: bool,
}

#[derive(SimpleObject, Clone)]
#[graphql(name = "Shop", rename_fields = "camelCase")]
pub struct ShopObj {
    pub(crate) id: ID,
    pub(crate) name: String,
    pub(crate) myshopify_domain: String,
    pub(crate) url: Url,
    pub(crate) currency_code: CurrencyCode,
    pub(crate) iana_timezone: String,
    pub(crate) plan: ShopPlan,
}

/// `Node`: every object with a global id the simulator can look up with `node`/`nodes`.
#[derive(Interface, Clone)]
#[graphql(field(name = "id", ty = "&ID"))]
pub enum Node {
    Product(ProductObj),
    ProductVariant(ProductVariant),
    ProductOption(ProductOptionObj),
    InventoryItem(InventoryItem),
    Location(Location),
    BulkOperation(BulkOperation),
    WebhookSubscription(WebhookSubscription),
}
