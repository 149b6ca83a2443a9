//! Product, variant and inventory mutations.

use super::*;

#[derive(Default)]
pub struct ProductMutations;

#[Object]
impl ProductMutations {
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
        let mut p = Product {
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
            options: vec![],
            variants: vec![],
        };
        // Shopify creates every product with its standalone default variant.
        p.ensure_default_variant(&mut || s.catalog.next_id());
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
                        options: vec![],
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
        // Ids for a default variant, should the product end up with none.
        let fresh_ids: Vec<u64> = (0..4).map(|_| s.catalog.next_id()).collect();
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
                let mut variant = existing.unwrap_or_else(|| Variant::new(vid, item, vec![]));
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
        if p.variants.is_empty() {
            let mut more = fresh_ids.into_iter();
            p.ensure_default_variant(&mut || more.next().unwrap_or_default());
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
            .map(|(ix, _)| ProductVariant::of(p, *ix))
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
