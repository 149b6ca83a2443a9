//! `productCreate`, `productUpdate`, `productDelete`, `productVariantsBulkUpdate`.

use super::*;
use crate::model::{DEFAULT_TITLE, ProductOption};

#[derive(Default)]
pub struct ProductMutations;

/// The product an identifier names (`id`, `handle` or `customId`, in that order), or why not.
pub(crate) fn identify(
    state: &ShopState,
    id: Option<&ID>,
    handle: Option<&str>,
    custom_id: Option<&UniqueMetafieldValueInput>,
) -> Result<Option<u64>> {
    if let Some(id) = id {
        let id = parse_gid(id, "Product")?;
        return Ok(state.catalog.products.contains_key(&id).then_some(id));
    }
    if let Some(c) = custom_id {
        return Ok(state.catalog.by_custom_id(c.namespace(), &c.key, &c.value));
    }
    Ok(handle.and_then(|h| state.catalog.by_handle(h)))
}

/// `metafields` input as the model's metafields (entries without a key are skipped).
pub(crate) fn metafields(input: &[MetafieldInput]) -> Vec<crate::model::Metafield> {
    input
        .iter()
        .filter_map(|m| {
            Some(crate::model::Metafield {
                namespace: m.namespace.clone().unwrap_or_else(|| "$app".to_owned()),
                key: m.key.clone()?,
                value: m.value.clone().unwrap_or_default(),
                kind: m
                    .kind
                    .clone()
                    .unwrap_or_else(|| "single_line_text_field".to_owned()),
            })
        })
        .collect()
}

/// Sets (or adds) metafields, by namespace and key.
pub(crate) fn merge_metafields(p: &mut Product, new: Vec<crate::model::Metafield>) {
    for m in new {
        match p
            .metafields
            .iter_mut()
            .find(|x| x.namespace == m.namespace && x.key == m.key)
        {
            Some(x) => *x = m,
            None => p.metafields.push(m),
        }
    }
}

#[Object]
impl ProductMutations {
    /// Creates a product with Shopify's standalone variant: the first value of each option
    /// (or the `Title` / `Default Title` default).
    async fn product_create(
        &self,
        ctx: &Context<'_>,
        product: Option<ProductCreateInput>,
    ) -> Result<ProductCreatePayload> {
        let shop = ctx.data::<Shop>()?;
        let mut s = shop.lock();
        let fail = |e| ProductCreatePayload {
            product: None,
            user_errors: e,
        };
        if let Some(e) = forced(&s, "productCreate") {
            return Ok(fail(e));
        }
        let Some(product) = product else {
            return Ok(fail(vec![user_error(&["title"], "Title can't be blank")]));
        };
        let title = product.title.clone().unwrap_or_default();
        if title.trim().is_empty() {
            return Ok(fail(vec![user_error(&["title"], "Title can't be blank")]));
        }
        let options = product.product_options.clone().unwrap_or_default();
        if options.len() > 3 {
            return Ok(fail(vec![user_error(
                &["productOptions"],
                "Can only specify a maximum of 3 options",
            )]));
        }
        if let Some(i) = options
            .iter()
            .position(|o| o.values.as_ref().is_none_or(|v| v.is_empty()))
        {
            return Ok(fail(vec![user_error(
                &["productOptions", &i.to_string(), "values"],
                "Each option must have at least one option value specified.",
            )]));
        }
        let now = s.clock.now();
        let id = s.catalog.next_id();
        let handle = match product.handle {
            Some(h) if s.catalog.by_handle(&h).is_some() => {
                return Ok(fail(vec![user_error(
                    &["handle"],
                    format!("Handle '{h}' already in use. Please provide a new handle."),
                )]));
            }
            Some(h) => h,
            None => s.catalog.free_handle(&slug(&title, id)),
        };
        let mut sorted: Vec<(usize, &OptionCreateInput)> = options.iter().enumerate().collect();
        sorted.sort_by_key(|(i, o)| (o.position.unwrap_or(*i as i32 + 1), *i));
        let mut model_options = Vec::new();
        for (_, o) in sorted {
            let values = o
                .values
                .iter()
                .flatten()
                .filter_map(|v| v.name.clone())
                .map(|n| (s.catalog.next_id(), n))
                .collect();
            model_options.push(ProductOption {
                id: s.catalog.next_id(),
                name: o.name.clone().unwrap_or_else(|| DEFAULT_TITLE.to_owned()),
                values,
            });
        }
        let mut p = Product {
            id,
            title,
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
            options: model_options,
            variants: vec![],
            metafields: metafields(product.metafields.as_deref().unwrap_or_default()),
        };
        // Shopify creates every product with its standalone variant.
        p.ensure_default_variant(&mut || s.catalog.next_id());
        s.catalog.products.insert(id, p);
        s.emit_product("products/create", id);
        Ok(ProductCreatePayload {
            product: s.catalog.products.get(&id).map(Into::into),
            user_errors: vec![],
        })
    }

    /// Updates the fields given; the product is named by `product.id` or (2026-04)
    /// `identifier`.
    async fn product_update(
        &self,
        ctx: &Context<'_>,
        product: Option<ProductUpdateInput>,
        identifier: Option<ProductUpdateIdentifiers>,
    ) -> Result<ProductUpdatePayload> {
        if identifier.is_some() && !since(ctx, "2026-04") {
            return Err(Error::new(
                "Field 'productUpdate' doesn't accept argument 'identifier'",
            ));
        }
        let shop = ctx.data::<Shop>()?;
        let mut s = shop.lock();
        let fail = |e| ProductUpdatePayload {
            product: None,
            user_errors: e,
        };
        if let Some(e) = forced(&s, "productUpdate") {
            return Ok(fail(e));
        }
        let Some(product) = product else {
            return Ok(fail(vec![user_error(&["id"], "Product does not exist")]));
        };
        let found = match (&identifier, &product.id) {
            (Some(i), _) => identify(&s, i.id.as_ref(), i.handle.as_deref(), i.custom_id.as_ref())?,
            (None, Some(id)) => identify(&s, Some(id), None, None)?,
            (None, None) => None,
        };
        let Some(id) = found else {
            return Ok(fail(vec![user_error(&["id"], "Product does not exist")]));
        };
        if let Some(h) = &product.handle
            && s.catalog.by_handle(h).is_some_and(|other| other != id)
        {
            return Ok(fail(vec![user_error(
                &["handle"],
                format!("Handle '{h}' already in use. Please provide a new handle."),
            )]));
        }
        let now = s.clock.now();
        let p = s.catalog.products.get_mut(&id).expect("found above");
        if let Some(t) = product.title {
            if t.trim().is_empty() {
                return Ok(fail(vec![user_error(&["title"], "Title can't be blank")]));
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
        if let Some(m) = &product.metafields {
            merge_metafields(p, metafields(m));
        }
        p.updated_at = now;
        s.emit_product("products/update", id);
        Ok(ProductUpdatePayload {
            product: s.catalog.products.get(&id).map(Into::into),
            user_errors: vec![],
        })
    }

    async fn product_delete(
        &self,
        ctx: &Context<'_>,
        input: ProductDeleteInput,
        #[graphql(default_with = "Some(true)")] synchronous: Option<bool>,
    ) -> Result<ProductDeletePayload> {
        let _ = synchronous;
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
                s.emit("products/delete", serde_json::json!({ "id": id }), None);
                ProductDeletePayload {
                    deleted_product_id: Some(input.id),
                    user_errors: vec![],
                }
            }
            None => ProductDeletePayload {
                deleted_product_id: None,
                user_errors: vec![user_error(&["id"], "Product does not exist")],
            },
        })
    }

    async fn product_variants_bulk_update(
        &self,
        ctx: &Context<'_>,
        product_id: ID,
        variants: Vec<ProductVariantsBulkInput>,
        #[graphql(default_with = "Some(false)")] allow_partial_updates: Option<bool>,
    ) -> Result<ProductVariantsBulkUpdatePayload> {
        use ProductVariantsBulkUpdateUserErrorCode as C;
        let pid = parse_gid(&product_id, "Product")?;
        if variants.iter().any(|v| v.barcodes.is_some()) && !since(ctx, "2026-10") {
            return Err(not_in_version(ctx, "ProductVariantsBulkInput", "barcodes"));
        }
        let shop = ctx.data::<Shop>()?;
        let mut s = shop.lock();
        let fail = |errors| ProductVariantsBulkUpdatePayload {
            product: None,
            product_variants: None,
            user_errors: errors,
        };
        if let Some(e) = forced_coded(&s, "productVariantsBulkUpdate", C::InvalidInput) {
            return Ok(fail(e));
        }
        let now = s.clock.now();
        let Some(p) = s.catalog.products.get_mut(&pid) else {
            return Ok(fail(vec![coded(
                &["productId"],
                "Product does not exist",
                C::ProductDoesNotExist,
            )]));
        };
        let mut errors = Vec::new();
        let mut updates = Vec::new();
        for (i, v) in variants.iter().enumerate() {
            let at = |f: &str| vec!["variants".to_owned(), i.to_string(), f.to_owned()];
            let err = |f: &str, m: &str, c| CodedError {
                code: Some(c),
                field: Some(at(f)),
                message: m.to_owned(),
            };
            let Some(id) = &v.id else {
                errors.push(err(
                    "id",
                    "Product variant is missing ID attribute",
                    C::ProductVariantIdMissing,
                ));
                continue;
            };
            let idx = parse_gid(id, "ProductVariant")
                .ok()
                .and_then(|vid| p.variants.iter().position(|x| x.id == vid));
            let negative = |m: &Option<Money>| m.as_ref().is_some_and(|m| m.0.starts_with('-'));
            match idx {
                None => errors.push(err(
                    "id",
                    "Product variant does not exist on this product",
                    C::ProductVariantDoesNotExist,
                )),
                Some(_) if negative(&v.price) || negative(&v.compare_at_price.value().cloned()) => {
                    errors.push(err(
                        "price",
                        "Price must be greater than or equal to 0",
                        C::GreaterThanOrEqualTo,
                    ))
                }
                Some(_) if !v.barcode.is_undefined() && v.barcodes.is_some() => errors.push(err(
                    "barcodes",
                    "Only one of barcode or barcodes can be specified",
                    C::CannotSpecifyBoth,
                )),
                Some(ix) => updates.push((ix, v)),
            }
        }
        if !errors.is_empty() && !allow_partial_updates.unwrap_or(false) {
            return Ok(fail(errors));
        }
        for (ix, v) in &updates {
            let t = &mut p.variants[*ix];
            if let Some(m) = &v.price {
                t.price = m.0.clone();
            }
            match &v.compare_at_price {
                MaybeUndefined::Value(m) => t.compare_at_price = Some(m.0.clone()),
                MaybeUndefined::Null => t.compare_at_price = None,
                MaybeUndefined::Undefined => {}
            }
            match &v.barcode {
                MaybeUndefined::Value(b) => t.set_barcodes(vec![(None, b.clone())]),
                MaybeUndefined::Null => t.set_barcodes(vec![]),
                MaybeUndefined::Undefined => {}
            }
            if let Some(bs) = &v.barcodes {
                t.set_barcodes(
                    bs.iter()
                        .map(|b| {
                            (
                                b.kind.map(|k| barcode_type_name(k).to_owned()),
                                b.value.clone(),
                            )
                        })
                        .collect(),
                );
            }
            if let Some(item) = &v.inventory_item {
                apply_inventory_item(t, item);
            }
            if let Some(pol) = v.inventory_policy {
                t.inventory_policy = pol.name().to_owned();
            }
            if let Some(tx) = v.taxable {
                t.taxable = tx;
            }
            t.updated_at = now;
        }
        if !updates.is_empty() {
            p.updated_at = now;
        }
        let arc = std::sync::Arc::new(p.clone());
        let changed = updates
            .iter()
            .map(|(ix, _)| ProductVariant::of(&arc, *ix))
            .collect();
        let product = Some(ProductObj::of(arc));
        if !updates.is_empty() {
            s.emit_product("products/update", pid);
        }
        Ok(ProductVariantsBulkUpdatePayload {
            product,
            product_variants: Some(changed),
            user_errors: errors,
        })
    }
}

pub(crate) fn barcode_type_name(k: BarcodeType) -> &'static str {
    match k {
        BarcodeType::Asin => "ASIN",
        BarcodeType::Ean => "EAN",
        BarcodeType::Gtin => "GTIN",
        BarcodeType::Isbn => "ISBN",
        BarcodeType::Upc => "UPC",
    }
}

/// `InventoryItemInput` onto a variant (its inventory item's fields live on the variant).
pub(crate) fn apply_inventory_item(v: &mut Variant, item: &InventoryItemInput) {
    if let Some(sku) = &item.sku {
        v.sku = Some(sku.clone());
    }
    if let Some(t) = item.tracked {
        v.tracked = t;
    }
    if let Some(r) = item.requires_shipping {
        v.requires_shipping = r;
    }
    if let Some(w) = item.measurement.as_ref().and_then(|m| m.weight.as_ref()) {
        v.weight = Some((w.unit.name().to_owned(), w.value));
    }
}

pub(crate) fn apply(
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

/// A handle from a title: lower case, non-alphanumerics as hyphens.
pub(crate) fn slug(title: &str, id: u64) -> String {
    let s: String = title
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { '-' })
        .collect();
    let mut out = String::new();
    for part in s.split('-').filter(|p| !p.is_empty()) {
        if !out.is_empty() {
            out.push('-');
        }
        out.push_str(part);
    }
    if out.is_empty() {
        format!("product-{id}")
    } else {
        out
    }
}
