//! `productSet(input: ProductSetInput!, synchronous: Boolean = true, identifier:
//! ProductSetIdentifiers): ProductSetPayload` — the whole-product upsert, as the 2026-10
//! reference documents it: list fields (options with their values, variants, metafields) are
//! replaced in full, other fields change only when given; `productOptions` and `variants` come
//! together or not at all; a product created without them gets Shopify's standalone default
//! variant.

use std::collections::HashSet;

use super::products::{apply, apply_inventory_item, barcode_type_name, identify, metafields, slug};
use super::*;
use crate::model::{Metafield, ProductOption, variant_title};

/// Shopify's per-product limits.
const MAX_OPTIONS: usize = 3;
const MAX_VARIANTS: usize = 2048;
const MAX_BARCODES: usize = 20;

type Code = ProductSetUserErrorCode;
type SetError = CodedError<Code>;

fn err(field: &[&str], message: impl Into<String>, code: Code) -> SetError {
    coded(field, message, code)
}

fn at(path: &[String]) -> Vec<&str> {
    path.iter().map(String::as_str).collect()
}

#[derive(Default)]
pub struct ProductSetMutation;

/// The options as the input sets them: `(id if kept, name, values as (id if kept, name))`.
struct PlannedOption {
    id: Option<u64>,
    name: String,
    values: Vec<(Option<u64>, String)>,
}

/// One variant as the input sets it, its option values resolved to names in option order.
struct PlannedVariant<'a> {
    input: &'a ProductVariantSetInput,
    existing: Option<u64>,
    values: Vec<String>,
}

fn plan_options(
    input: &[OptionSetInput],
    old: Option<&Product>,
    errors: &mut Vec<SetError>,
) -> Vec<PlannedOption> {
    if input.len() > MAX_OPTIONS {
        errors.push(err(
            &["input", "productOptions"],
            format!("Can only specify a maximum of {MAX_OPTIONS} options"),
            Code::OptionsOverLimit,
        ));
        return vec![];
    }
    let old_options: &[ProductOption] = old.map_or(&[], |p| &p.options);
    let mut ordered: Vec<(usize, &OptionSetInput)> = input.iter().enumerate().collect();
    ordered.sort_by_key(|(i, o)| (o.position.unwrap_or(*i as i32 + 1), *i));
    let mut names = HashSet::new();
    let mut planned = Vec::new();
    for (i, o) in ordered {
        let path = |f: &str| {
            vec![
                "input".to_owned(),
                "productOptions".to_owned(),
                i.to_string(),
                f.to_owned(),
            ]
        };
        let existing = match &o.id {
            Some(id) => {
                let found = parse_gid(id, "ProductOption")
                    .ok()
                    .and_then(|id| old_options.iter().find(|x| x.id == id));
                if found.is_none() {
                    errors.push(err(
                        &at(&path("id")),
                        "Option does not exist",
                        Code::OptionDoesNotExist,
                    ));
                    continue;
                }
                found
            }
            None => o
                .name
                .as_ref()
                .and_then(|n| old_options.iter().find(|x| x.name.eq_ignore_ascii_case(n))),
        };
        let Some(name) = o.name.clone().or_else(|| existing.map(|x| x.name.clone())) else {
            errors.push(err(
                &at(&path("name")),
                "Option name can't be blank",
                Code::InvalidInput,
            ));
            continue;
        };
        if !names.insert(name.to_lowercase()) {
            errors.push(err(
                &at(&path("name")),
                format!("Duplicated option name '{name}'"),
                Code::DuplicatedOptionName,
            ));
            continue;
        }
        let values_in = o.values.as_deref().unwrap_or_default();
        if values_in.is_empty() {
            errors.push(err(
                &at(&path("values")),
                "Each option must have at least one option value specified.",
                Code::OptionValuesMissing,
            ));
            continue;
        }
        let old_values: &[(u64, String)] = existing.map_or(&[], |x| &x.values);
        let mut seen = HashSet::new();
        let mut values = Vec::new();
        for (j, v) in values_in.iter().enumerate() {
            let vpath = vec![
                "input".to_owned(),
                "productOptions".to_owned(),
                i.to_string(),
                "values".to_owned(),
                j.to_string(),
            ];
            let kept = match &v.id {
                Some(id) => {
                    let found = parse_gid(id, "ProductOptionValue")
                        .ok()
                        .and_then(|id| old_values.iter().find(|x| x.0 == id));
                    if found.is_none() {
                        errors.push(err(
                            &at(&vpath),
                            "Option value does not exist",
                            Code::OptionValueDoesNotExist,
                        ));
                        continue;
                    }
                    found
                }
                None => v
                    .name
                    .as_ref()
                    .and_then(|n| old_values.iter().find(|x| &x.1 == n)),
            };
            let Some(vname) = v.name.clone().or_else(|| kept.map(|x| x.1.clone())) else {
                errors.push(err(
                    &at(&vpath),
                    "Option value name can't be blank",
                    Code::InvalidInput,
                ));
                continue;
            };
            if !seen.insert(vname.to_lowercase()) {
                errors.push(err(
                    &at(&vpath),
                    format!("Duplicated option value '{vname}'"),
                    Code::DuplicatedOptionValue,
                ));
                continue;
            }
            values.push((kept.map(|x| x.0), vname));
        }
        planned.push(PlannedOption {
            id: existing.map(|x| x.id),
            name,
            values,
        });
    }
    planned
}

fn plan_variants<'a>(
    input: &'a [ProductVariantSetInput],
    options: &[PlannedOption],
    old: Option<&Product>,
    locations: &[u64],
    errors: &mut Vec<SetError>,
) -> Vec<PlannedVariant<'a>> {
    if input.len() > MAX_VARIANTS {
        errors.push(err(
            &["input", "variants"],
            format!("Number of product variants exceeds shop limit of {MAX_VARIANTS}"),
            Code::VariantsOverLimit,
        ));
        return vec![];
    }
    let mut combos = HashSet::new();
    let mut planned = Vec::new();
    for (i, v) in input.iter().enumerate() {
        let path = |f: &[&str]| {
            let mut p = vec!["input".to_owned(), "variants".to_owned(), i.to_string()];
            p.extend(f.iter().map(|s| (*s).to_owned()));
            p
        };
        let n_errors = errors.len();
        let existing = match &v.id {
            Some(id) => {
                let found = parse_gid(id, "ProductVariant")
                    .ok()
                    .filter(|id| old.is_some_and(|p| p.variants.iter().any(|x| x.id == *id)));
                if found.is_none() {
                    errors.push(err(
                        &at(&path(&["id"])),
                        "Product variant does not exist",
                        Code::ProductVariantDoesNotExist,
                    ));
                }
                found
            }
            None => None,
        };
        // Each option exactly once, by option id or name; each value declared on its option.
        let mut values: Vec<Option<String>> = vec![None; options.len()];
        for (j, ov) in v.option_values.iter().enumerate() {
            let vpath = path(&["optionValues", &j.to_string()]);
            let option = match (&ov.option_id, &ov.option_name) {
                (Some(oid), _) => parse_gid(oid, "ProductOption")
                    .ok()
                    .and_then(|oid| options.iter().position(|o| o.id == Some(oid))),
                (None, Some(name)) => options
                    .iter()
                    .position(|o| o.name.eq_ignore_ascii_case(name)),
                (None, None) => None,
            };
            let Some(oi) = option else {
                errors.push(err(
                    &at(&vpath),
                    "Option does not exist",
                    Code::OptionDoesNotExist,
                ));
                continue;
            };
            let value = match (&ov.id, &ov.name) {
                (Some(vid), _) => parse_gid(vid, "ProductOptionValue").ok().and_then(|vid| {
                    options[oi]
                        .values
                        .iter()
                        .find(|(id, _)| *id == Some(vid))
                        .map(|(_, n)| n.clone())
                }),
                (None, Some(name)) => options[oi]
                    .values
                    .iter()
                    .find(|(_, n)| n == name)
                    .map(|(_, n)| n.clone()),
                (None, None) => None,
            };
            let Some(value) = value else {
                errors.push(err(
                    &at(&vpath),
                    "Option value does not exist",
                    Code::OptionValueDoesNotExist,
                ));
                continue;
            };
            if values[oi].replace(value).is_some() {
                errors.push(err(
                    &at(&vpath),
                    format!("Option '{}' is given more than once", options[oi].name),
                    Code::InvalidVariant,
                ));
            }
        }
        if errors.len() == n_errors && values.iter().any(Option::is_none) {
            errors.push(err(
                &at(&path(&["optionValues"])),
                "The variant must have a value for every product option",
                Code::InvalidVariant,
            ));
        }
        let negative = |m: Option<&Money>| m.is_some_and(|m| m.0.starts_with('-'));
        if negative(v.price.as_ref()) {
            errors.push(err(
                &at(&path(&["price"])),
                "Price must be greater than or equal to 0",
                Code::InvalidVariant,
            ));
        }
        if negative(v.compare_at_price.value()) {
            errors.push(err(
                &at(&path(&["compareAtPrice"])),
                "Compare at price must be greater than or equal to 0",
                Code::InvalidVariant,
            ));
        }
        if !v.barcode.is_undefined() && v.barcodes.is_some() {
            errors.push(err(
                &at(&path(&["barcodes"])),
                "A variant input can't set both barcode and barcodes",
                Code::InvalidVariant,
            ));
        }
        if v.barcodes.as_ref().is_some_and(|b| b.len() > MAX_BARCODES) {
            errors.push(err(
                &at(&path(&["barcodes"])),
                format!("A variant accepts up to {MAX_BARCODES} barcodes"),
                Code::InvalidVariant,
            ));
        }
        for (k, q) in v.inventory_quantities.iter().flatten().enumerate() {
            let qpath = path(&["inventoryQuantities", &k.to_string()]);
            let known = parse_gid(&q.location_id, "Location")
                .ok()
                .is_some_and(|l| locations.contains(&l));
            if !known {
                errors.push(err(
                    &at(&qpath),
                    "The specified location could not be found.",
                    Code::InvalidInput,
                ));
            } else if q.name != "available" && q.name != "on_hand" {
                errors.push(err(
                    &at(&qpath),
                    "The quantity name must be either 'available' or 'on_hand'",
                    Code::InvalidInput,
                ));
            }
        }
        if errors.len() > n_errors {
            continue;
        }
        let values: Vec<String> = values.into_iter().flatten().collect();
        if !combos.insert(values.join("\u{1f}").to_lowercase()) {
            errors.push(err(
                &at(&path(&["optionValues"])),
                format!("The variant '{}' already exists.", variant_title(&values)),
                Code::InvalidVariant,
            ));
            continue;
        }
        planned.push(PlannedVariant {
            input: v,
            existing,
            values,
        });
    }
    planned
}

fn set_variant(t: &mut Variant, v: &ProductVariantSetInput, values: Vec<String>) {
    t.title = variant_title(&values);
    t.option_values = values;
    if let Some(p) = &v.price {
        t.price = p.0.clone();
    }
    match &v.compare_at_price {
        MaybeUndefined::Value(m) => t.compare_at_price = Some(m.0.clone()),
        MaybeUndefined::Null => t.compare_at_price = None,
        MaybeUndefined::Undefined => {}
    }
    match &v.sku {
        MaybeUndefined::Value(s) => t.sku = Some(s.clone()),
        MaybeUndefined::Null => t.sku = None,
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
    // `inventoryItem.sku` and the variant's own `sku` set the same SKU; the inventory item's
    // wins when both are given.
    if let Some(item) = &v.inventory_item {
        apply_inventory_item(t, item);
    }
    if let Some(p) = v.inventory_policy {
        t.inventory_policy = p.name().to_owned();
    }
    if let Some(x) = v.taxable {
        t.taxable = x;
    }
    for q in v.inventory_quantities.iter().flatten() {
        if let Ok(location) = parse_gid(&q.location_id, "Location") {
            t.levels.insert(location, i64::from(q.quantity));
        }
    }
}

#[Object]
impl ProductSetMutation {
    /// Creates or updates a whole product. With `identifier` the product is found by `id`
    /// (update only), `handle` or `customId` (upsert: created when absent). With
    /// `synchronous: false` the answer is a `productSetOperation` to poll with
    /// `productOperation(id)` (CREATED → ACTIVE → COMPLETE over half a second of the sim clock).
    async fn product_set(
        &self,
        ctx: &Context<'_>,
        input: ProductSetInput,
        #[graphql(default_with = "Some(true)")] synchronous: Option<bool>,
        identifier: Option<ProductSetIdentifiers>,
    ) -> Result<ProductSetPayload> {
        let synchronous = synchronous.unwrap_or(true);
        if input
            .variants
            .iter()
            .flatten()
            .any(|v| v.barcodes.is_some())
            && !since(ctx, "2026-10")
        {
            return Err(not_in_version(ctx, "ProductVariantSetInput", "barcodes"));
        }
        if input
            .variants
            .as_ref()
            .is_some_and(|v| v.len() > MAX_INPUT_ARRAY)
        {
            // Checked like every input array (in variables too, by the endpoint).
            return Err(too_many(input.variants.as_ref().map_or(0, Vec::len)));
        }
        let shop = ctx.data::<Shop>()?;
        let mut s = shop.lock();
        let fail = |errors: Vec<SetError>| ProductSetPayload {
            product: None,
            product_set_operation: None,
            user_errors: errors,
        };
        if let Some(e) = forced_coded(&s, "productSet", Code::GenericError) {
            return Ok(fail(e));
        }
        let now = s.clock.now();
        let mut errors = Vec::new();

        // Which product: by identifier (or none: a new product).
        let ident = identifier.unwrap_or(ProductSetIdentifiers {
            custom_id: None,
            handle: None,
            id: None,
        });
        let existing = identify(
            &s,
            ident.id.as_ref(),
            ident.handle.as_deref(),
            ident.custom_id.as_ref(),
        )?;
        if ident.id.is_some() && existing.is_none() {
            return Ok(fail(vec![err(
                &["identifier", "id"],
                "Resource matching the identifier was not found.",
                Code::NotFound,
            )]));
        }
        if let (Some(h), Some(ih)) = (&input.handle, &ident.handle)
            && ident.id.is_none()
            && ident.custom_id.is_none()
            && h != ih
        {
            errors.push(err(
                &["input", "handle"],
                "The identifier value does not match the value of the corresponding field in the input.",
                Code::InputMismatch,
            ));
        }
        let mut custom: Option<Metafield> = None;
        if let Some(c) = &ident.custom_id
            && ident.id.is_none()
        {
            let given = input.metafields.as_ref().map(|m| metafields(m));
            let matches = |m: &Metafield| m.namespace == c.namespace() && m.key == c.key;
            if let Some(given) = &given
                && !given.iter().any(|m| matches(m) && m.value == c.value)
            {
                errors.push(err(
                    &["input", "metafields"],
                    "The input argument `metafields` (if present) must contain the `customId` value.",
                    Code::MetafieldMismatch,
                ));
            }
            custom = Some(Metafield {
                namespace: c.namespace().to_owned(),
                key: c.key.clone(),
                value: c.value.clone(),
                kind: "id".to_owned(),
            });
        }
        let old = existing.and_then(|id| s.catalog.products.get(&id));

        // Options and variants: together or not at all, then checked in full.
        match (&input.product_options, &input.variants) {
            (None, Some(_)) => errors.push(err(
                &["input", "productOptions"],
                "Must specify product options when updating variants.",
                Code::ProductOptionsInputMissing,
            )),
            (Some(_), None) => errors.push(err(
                &["input", "variants"],
                "Must specify variants when updating options.",
                Code::VariantsInputMissing,
            )),
            _ => {}
        }
        let locations: Vec<u64> = s.locations.iter().map(|l| l.id).collect();
        let planned_options = input
            .product_options
            .as_deref()
            .map(|o| plan_options(o, old, &mut errors));
        let planned_variants = match (&planned_options, &input.variants) {
            (Some(opts), Some(vs)) => Some(plan_variants(vs, opts, old, &locations, &mut errors)),
            _ => None,
        };

        // Title and handle.
        let title = input.title.clone().or_else(|| old.map(|p| p.title.clone()));
        if title.as_deref().is_none_or(|t| t.trim().is_empty()) {
            errors.push(err(
                &["input", "title"],
                "Title can't be blank",
                Code::InvalidProduct,
            ));
        }
        let wanted_handle = input
            .handle
            .clone()
            .or_else(|| (existing.is_none()).then(|| ident.handle.clone()).flatten());
        if let Some(h) = &wanted_handle
            && s.catalog
                .by_handle(h)
                .is_some_and(|other| Some(other) != existing)
        {
            errors.push(err(
                &["input", "handle"],
                format!("Handle '{h}' already in use. Please provide a new handle."),
                Code::HandleNotUnique,
            ));
        }
        if !errors.is_empty() {
            return Ok(fail(errors));
        }

        // Apply.
        let id = match existing {
            Some(id) => id,
            None => {
                let id = s.catalog.next_id();
                let title = title.clone().unwrap_or_default();
                let handle = match &wanted_handle {
                    Some(h) => h.clone(),
                    None => s.catalog.free_handle(&slug(&title, id)),
                };
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
                        metafields: vec![],
                    },
                );
                id
            }
        };
        // Ids for what is new (they need the catalog's counter, so before borrowing the product).
        let mut new_option_ids: Vec<(u64, Vec<u64>)> = Vec::new();
        for o in planned_options.iter().flatten() {
            let oid = s.catalog.next_id();
            let values = o.values.iter().map(|_| s.catalog.next_id()).collect();
            new_option_ids.push((oid, values));
        }
        let new_variant_ids: Vec<(u64, u64)> = planned_variants
            .iter()
            .flatten()
            .map(|_| (s.catalog.next_id(), s.catalog.next_id()))
            .collect();
        let default_ids: Vec<u64> = (0..4).map(|_| s.catalog.next_id()).collect();
        let p = s
            .catalog
            .products
            .get_mut(&id)
            .expect("inserted or found above");
        if let Some(t) = input.title.clone() {
            p.title = t;
        }
        apply(
            p,
            wanted_handle,
            input.status,
            input.vendor.clone(),
            input.product_type.clone(),
            input.tags.clone(),
            input.description_html.clone(),
        );
        if let Some(m) = &input.metafields {
            p.metafields = metafields(m);
        }
        if let Some(c) = custom
            && p.metafield(&c.namespace, &c.key) != Some(c.value.as_str())
        {
            p.metafields
                .retain(|m| !(m.namespace == c.namespace && m.key == c.key));
            p.metafields.push(c);
        }
        if let (Some(opts), Some(vars)) = (planned_options, planned_variants) {
            p.options = opts
                .into_iter()
                .zip(new_option_ids)
                .map(|(o, (fresh, fresh_values))| ProductOption {
                    id: o.id.unwrap_or(fresh),
                    name: o.name,
                    values: o
                        .values
                        .into_iter()
                        .zip(fresh_values)
                        .map(|((vid, n), f)| (vid.unwrap_or(f), n))
                        .collect(),
                })
                .collect();
            let old_variants = std::mem::take(&mut p.variants);
            let mut ordered: Vec<(usize, PlannedVariant<'_>)> =
                vars.into_iter().enumerate().collect();
            ordered.sort_by_key(|(i, v)| (v.input.position.unwrap_or(*i as i32 + 1), *i));
            for (i, v) in ordered {
                let (vid, item) = new_variant_ids[i];
                let mut t = v
                    .existing
                    .and_then(|id| old_variants.iter().find(|o| o.id == id).cloned())
                    .unwrap_or_else(|| Variant {
                        created_at: now,
                        ..Variant::new(vid, item, vec![])
                    });
                set_variant(&mut t, v.input, v.values);
                t.updated_at = now;
                p.variants.push(t);
            }
        }
        if p.variants.is_empty() {
            let mut more = default_ids.into_iter();
            p.updated_at = now;
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
            return Ok(ProductSetPayload {
                product: None,
                product_set_operation: ProductSetOperation::of(&s, op),
                user_errors: vec![],
            });
        }
        Ok(ProductSetPayload {
            product: s.catalog.products.get(&id).map(Into::into),
            product_set_operation: None,
            user_errors: vec![],
        })
    }
}
