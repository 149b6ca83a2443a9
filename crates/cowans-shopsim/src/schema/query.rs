//! The query root: products (search, sort, paging, counts, lookups by identifier), variants,
//! `node`/`nodes`, the shop and its locations, product operations, bulk operations and webhook
//! subscriptions.

use std::sync::Arc;

use super::*;

/// Every query, merged from one object per area.
#[derive(MergedObject, Default)]
pub struct QueryRoot(
    CatalogQueries,
    ShopQueries,
    bulk::BulkQueries,
    webhooks::WebhookQueries,
);

#[derive(Default)]
pub struct CatalogQueries;

/// A lookup of any node by global id (`None`: no such object, or a type without lookup).
fn node_of(s: &ShopState, kind: &str, id: u64) -> Option<Node> {
    match kind {
        "Product" => s.catalog.products.get(&id).map(|p| Node::Product(p.into())),
        "ProductVariant" => s.catalog.by_variant(id).map(|(pid, i)| {
            let p = Arc::new(s.catalog.products[&pid].clone());
            Node::ProductVariant(ProductVariant::of(&p, i))
        }),
        "InventoryItem" => s.catalog.by_inventory_item(id).map(|(pid, i)| {
            Node::InventoryItem(InventoryItem::of(&s.catalog.products[&pid].variants[i]))
        }),
        "ProductOption" => s.catalog.products.values().find_map(|p| {
            p.options
                .iter()
                .position(|o| o.id == id)
                .map(|i| Node::ProductOption(option_obj(p, i)))
        }),
        "Location" => s
            .locations
            .iter()
            .find(|l| l.id == id)
            .map(|l| Node::Location(Location::of(l))),
        "BulkOperation" => s
            .bulk
            .get(&id)
            .map(|op| Node::BulkOperation(BulkOperation::of(op, &s.base_url))),
        "WebhookSubscription" => s
            .subscriptions
            .iter()
            .find(|x| x.id == id)
            .map(|x| Node::WebhookSubscription(WebhookSubscription::of(x))),
        _ => None,
    }
}

#[Object]
impl CatalogQueries {
    /// Products matching `query` (Shopify search syntax), sorted by `sortKey`, paged.
    #[allow(clippy::too_many_arguments)]
    async fn products(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        #[graphql(default_with = "Some(false)")] reverse: Option<bool>,
        #[graphql(default_with = "Some(ProductSortKeys::Id)")] sort_key: Option<ProductSortKeys>,
        query: Option<String>,
        saved_search_id: Option<ID>,
    ) -> Result<ProductConnection> {
        let shop = ctx.data::<Shop>()?;
        // A bulk export's window: exactly these products, paging ignored.
        if let Some(window) = ctx.data_opt::<crate::bulk::BulkWindow>() {
            let state = shop.lock();
            let nodes: Vec<ProductObj> = window
                .0
                .iter()
                .filter_map(|id| state.catalog.products.get(id))
                .map(Into::into)
                .collect();
            let edges = nodes
                .iter()
                .map(|n| ProductEdge {
                    cursor: String::new(),
                    node: n.clone(),
                })
                .collect();
            return Ok(ProductConnection {
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
        if saved_search_id.is_some() {
            return Err(Error::new("Saved searches are not simulated"));
        }
        let sort = sort_key.unwrap_or(ProductSortKeys::Id).key();
        let search = match &query {
            Some(q) => {
                let s = Search::products(q, version(ctx));
                warn_search(ctx, q, &s);
                s
            }
            None => Search::default(),
        };
        let state = shop.lock();
        let mut matching: Vec<(String, u64, &Product)> = state
            .catalog
            .products
            .values()
            .filter(|p| search.matches(p))
            .map(|p| (crate::model::sort_value(p, sort), p.id, p))
            .collect();
        matching.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        let keys: Vec<(String, u64)> = matching.iter().map(|(k, id, _)| (k.clone(), *id)).collect();
        let paging = Paging {
            first,
            last,
            after,
            before,
            reverse: reverse.unwrap_or(false),
        };
        let w = paging.window(&keys)?;
        let page: Vec<(String, ProductObj)> = w
            .indices
            .clone()
            .map(|i| {
                let p = matching[paging.index(keys.len(), i)].2;
                (paging.cursor(&keys, i), ProductObj::from(p))
            })
            .collect();
        Ok(ProductConnection {
            nodes: page.iter().map(|(_, n)| n.clone()).collect(),
            edges: page
                .into_iter()
                .map(|(cursor, node)| ProductEdge { cursor, node })
                .collect(),
            page_info: w.page_info,
        })
    }

    /// `productsCount(query, limit = 10000)`: the matching products, counted up to `limit`
    /// (`null`: no limit); `AT_LEAST` when the count stopped there.
    async fn products_count(
        &self,
        ctx: &Context<'_>,
        query: Option<String>,
        saved_search_id: Option<ID>,
        #[graphql(default = 10000)] limit: Option<i32>,
    ) -> Result<Option<Count>> {
        if saved_search_id.is_some() {
            return Err(Error::new("Saved searches are not simulated"));
        }
        let search = match &query {
            Some(q) => {
                let s = Search::products(q, version(ctx));
                warn_search(ctx, q, &s);
                s
            }
            None => Search::default(),
        };
        let shop = ctx.data::<Shop>()?;
        let state = shop.lock();
        let matching = state
            .catalog
            .products
            .values()
            .filter(|p| search.matches(p))
            .count();
        Count::capped(matching, limit).map(Some)
    }

    async fn product(&self, ctx: &Context<'_>, id: ID) -> Result<Option<ProductObj>> {
        let id = parse_gid(&id, "Product")?;
        let shop = ctx.data::<Shop>()?;
        let state = shop.lock();
        Ok(state.catalog.products.get(&id).map(Into::into))
    }

    /// A product by `id`, `handle` or `customId` (one of them).
    async fn product_by_identifier(
        &self,
        ctx: &Context<'_>,
        identifier: ProductIdentifierInput,
    ) -> Result<Option<ProductObj>> {
        let given = [
            identifier.id.is_some(),
            identifier.handle.is_some(),
            identifier.custom_id.is_some(),
        ]
        .into_iter()
        .filter(|g| *g)
        .count();
        if given != 1 {
            return Err(Error::new(
                "Exactly one of id, handle or customId must be given",
            ));
        }
        let shop = ctx.data::<Shop>()?;
        let state = shop.lock();
        let found = super::products::identify(
            &state,
            identifier.id.as_ref(),
            identifier.handle.as_deref(),
            identifier.custom_id.as_ref(),
        )?;
        Ok(found
            .and_then(|id| state.catalog.products.get(&id))
            .map(Into::into))
    }

    async fn product_variant(&self, ctx: &Context<'_>, id: ID) -> Result<Option<ProductVariant>> {
        let id = parse_gid(&id, "ProductVariant")?;
        let shop = ctx.data::<Shop>()?;
        let state = shop.lock();
        Ok(state
            .catalog
            .by_variant(id)
            .map(|(pid, i)| ProductVariant::of(&Arc::new(state.catalog.products[&pid].clone()), i)))
    }

    /// Variants of every product matching `query` (the `productVariants` search fields),
    /// sorted by `sortKey`, paged.
    #[allow(clippy::too_many_arguments)]
    async fn product_variants(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        #[graphql(default_with = "Some(false)")] reverse: Option<bool>,
        #[graphql(default_with = "Some(ProductVariantSortKeys::Id)")] sort_key: Option<
            ProductVariantSortKeys,
        >,
        query: Option<String>,
        saved_search_id: Option<ID>,
    ) -> Result<ProductVariantConnection> {
        if saved_search_id.is_some() {
            return Err(Error::new("Saved searches are not simulated"));
        }
        let search = match &query {
            Some(q) => {
                let s = Search::variants(q);
                warn_search(ctx, q, &s);
                s
            }
            None => Search::default(),
        };
        let sort_key = sort_key.unwrap_or(ProductVariantSortKeys::Id);
        let shop = ctx.data::<Shop>()?;
        let state = shop.lock();
        let mut matching: Vec<(String, u64, u64, usize)> = state
            .catalog
            .products
            .values()
            .flat_map(|p| {
                let search = &search;
                (0..p.variants.len())
                    .filter(move |i| search.matches_variant(p, &p.variants[*i]))
                    .map(move |i| (sort_key.value(p, i), p.variants[i].id, p.id, i))
            })
            .collect();
        matching.sort();
        let keys: Vec<(String, u64)> = matching
            .iter()
            .map(|(k, id, _, _)| (k.clone(), *id))
            .collect();
        let paging = Paging {
            first,
            last,
            after,
            before,
            reverse: reverse.unwrap_or(false),
        };
        let w = paging.window(&keys)?;
        let mut products: std::collections::HashMap<u64, Arc<Product>> = Default::default();
        let mut page = Vec::new();
        for i in w.indices.clone() {
            let (_, _, pid, vix) = &matching[paging.index(keys.len(), i)];
            let p = products
                .entry(*pid)
                .or_insert_with(|| Arc::new(state.catalog.products[pid].clone()))
                .clone();
            page.push((paging.cursor(&keys, i), ProductVariant::of(&p, *vix)));
        }
        Ok(ProductVariantConnection {
            nodes: page.iter().map(|(_, n)| n.clone()).collect(),
            edges: page
                .into_iter()
                .map(|(cursor, node)| VariantEdge { cursor, node })
                .collect(),
            page_info: w.page_info,
        })
    }

    /// `productVariantsCount(query, limit = 10000)`.
    async fn product_variants_count(
        &self,
        ctx: &Context<'_>,
        query: Option<String>,
        #[graphql(default = 10000)] limit: Option<i32>,
    ) -> Result<Option<Count>> {
        let search = match &query {
            Some(q) => {
                let s = Search::variants(q);
                warn_search(ctx, q, &s);
                s
            }
            None => Search::default(),
        };
        let shop = ctx.data::<Shop>()?;
        let state = shop.lock();
        let matching = state
            .catalog
            .products
            .values()
            .map(|p| {
                p.variants
                    .iter()
                    .filter(|v| search.matches_variant(p, v))
                    .count()
            })
            .sum();
        Count::capped(matching, limit).map(Some)
    }

    /// Any object by global id; `null` when there is none.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Node>> {
        let (kind, n) = parse_any_gid(&id)?;
        let shop = ctx.data::<Shop>()?;
        let state = shop.lock();
        Ok(node_of(&state, &kind, n))
    }

    /// Objects by global id, in the order asked; `null` for each that does not exist
    /// (`[Node]!`). At most 250 ids.
    async fn nodes(&self, ctx: &Context<'_>, ids: Vec<ID>) -> Result<Vec<Option<Node>>> {
        if ids.len() > MAX_INPUT_ARRAY {
            return Err(too_many(ids.len()));
        }
        let parsed = ids.iter().map(parse_any_gid).collect::<Result<Vec<_>>>()?;
        let shop = ctx.data::<Shop>()?;
        let state = shop.lock();
        Ok(parsed
            .iter()
            .map(|(kind, n)| node_of(&state, kind, *n))
            .collect())
    }

    /// The state of an asynchronous `productSet`.
    async fn product_operation(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<Option<ProductOperation>> {
        let id = parse_gid(&id, "ProductSetOperation")?;
        let shop = ctx.data::<Shop>()?;
        let s = shop.lock();
        Ok(ProductSetOperation::of(&s, id).map(ProductOperation::ProductSetOperation))
    }
}

#[derive(Default)]
pub struct ShopQueries;

#[Object]
impl ShopQueries {
    /// The shop.
    async fn shop(&self, ctx: &Context<'_>) -> Result<ShopObj> {
        let shop = ctx.data::<Shop>()?;
        let s = shop.lock();
        Ok(ShopObj {
            id: gid("Shop", crate::shop::SHOP_ID),
            name: s.shop_name.clone(),
            myshopify_domain: s.shop_domain.clone(),
            url: Url(format!("https://{}", s.shop_domain)),
            currency_code: CurrencyCode::Usd,
            iana_timezone: "Etc/UTC".to_owned(),
            plan: ShopPlan {
                partner_development: false,
                public_display_name: match s.plan {
                    crate::shop::Plan::Standard => "Basic",
                    crate::shop::Plan::Advanced => "Advanced",
                    crate::shop::Plan::Plus | crate::shop::Plan::Enterprise => "Plus",
                }
                .to_owned(),
                shopify_plus: matches!(
                    s.plan,
                    crate::shop::Plan::Plus | crate::shop::Plan::Enterprise
                ),
            },
        })
    }

    /// The shop's active locations (inactive ones with `includeInactive`).
    #[allow(clippy::too_many_arguments)]
    async fn locations(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        #[graphql(default_with = "Some(false)")] reverse: Option<bool>,
        #[graphql(default_with = "Some(LocationSortKeys::Name)")] sort_key: Option<
            LocationSortKeys,
        >,
        query: Option<String>,
        #[graphql(default_with = "Some(false)")] include_legacy: Option<bool>,
        #[graphql(default_with = "Some(false)")] include_inactive: Option<bool>,
    ) -> Result<LocationConnection> {
        let _ = (query, include_legacy);
        let shop = ctx.data::<Shop>()?;
        let s = shop.lock();
        let mut locs: Vec<&crate::shop::SimLocation> = s
            .locations
            .iter()
            .filter(|l| l.active || include_inactive.unwrap_or(false))
            .collect();
        let sort_key = sort_key.unwrap_or(LocationSortKeys::Name);
        let key = |l: &crate::shop::SimLocation| match sort_key {
            LocationSortKeys::Name => l.name.to_lowercase(),
            LocationSortKeys::Id | LocationSortKeys::Relevance => format!("{:020}", l.id),
        };
        locs.sort_by_key(|l| (key(l), l.id));
        let keys: Vec<(String, u64)> = locs.iter().map(|l| (key(l), l.id)).collect();
        let paging = Paging {
            first,
            last,
            after,
            before,
            reverse: reverse.unwrap_or(false),
        };
        let w = paging.window(&keys)?;
        let node = |i: usize| Location::of(locs[paging.index(keys.len(), i)]);
        Ok(LocationConnection {
            nodes: w.indices.clone().map(node).collect(),
            edges: w
                .indices
                .clone()
                .map(|i| LocationEdge {
                    cursor: paging.cursor(&keys, i),
                    node: node(i),
                })
                .collect(),
            page_info: w.page_info,
        })
    }

    async fn location(&self, ctx: &Context<'_>, id: Option<ID>) -> Result<Option<Location>> {
        let shop = ctx.data::<Shop>()?;
        let s = shop.lock();
        let Some(id) = id else {
            // Without an id: the shop's primary location.
            return Ok(s.locations.first().map(Location::of));
        };
        let id = parse_gid(&id, "Location")?;
        Ok(s.locations.iter().find(|l| l.id == id).map(Location::of))
    }
}
