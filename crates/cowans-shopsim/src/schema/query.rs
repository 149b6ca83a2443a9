//! The query root: products (search, sort, paging), one product, bulk operations.

use super::*;

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

    /// `productsCount(query, limit = 10000)`: the matching products, counted up to `limit`
    /// (`null`: no limit); `AT_LEAST` when the count stopped there.
    async fn products_count(
        &self,
        ctx: &Context<'_>,
        query: Option<String>,
        #[graphql(default = 10000)] limit: Option<i32>,
    ) -> Result<Count> {
        if let Some(l) = limit
            && l < 0
        {
            return Err(Error::new("limit must be greater than or equal to 0"));
        }
        let search = query.as_deref().map(Search::parse).unwrap_or_default();
        let shop = ctx.data::<Shop>()?;
        let state = shop.lock();
        let matching = state
            .catalog
            .products
            .values()
            .filter(|p| search.matches(p))
            .count();
        let (count, precision) = match limit.map(|l| l as usize) {
            Some(l) if matching > l => (l, CountPrecision::AtLeast),
            _ => (matching, CountPrecision::Exact),
        };
        Ok(Count {
            count: i32::try_from(count).unwrap_or(i32::MAX),
            precision,
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
