//! The limits and patterns the server checks, declared in the document: parameters by name (the
//! same name means the same rule on every route, except where a route says otherwise) and the
//! properties of request bodies. Every integer gets the range of its Rust type, so a number that
//! fits the schema also fits the handler.

use serde_json::{Value, json};

use super::passes::operations;
use crate::routes::{MAX_PAGE, jobs::MAX_BULK};

/// Queue and kind names: `cowans_core::QueueName`.
pub const NAME: &str = "^[a-z0-9._-]{1,128}$";
/// A shop's name or numeric id.
const SHOP: &str = "^[a-z0-9][a-z0-9_-]{0,62}$";
/// A Shopify product id, numeric or its GID.
const PRODUCT_ID: &str = "^(gid://shopify/Product/)?[1-9][0-9]{0,17}$";
const CHANGE_SOURCES: [&str; 3] = ["edit", "bulk_edit", "import"];

/// Product statuses, as filters take them.
const STATUSES: [&str; 4] = ["active", "archived", "draft", "unlisted"];

fn change_states() -> Vec<&'static str> {
    cowans_catalog::ChangeState::ALL
        .map(cowans_catalog::ChangeState::as_str)
        .to_vec()
}

fn fields() -> Vec<&'static str> {
    cowans_catalog::FIELDS.iter().map(|f| f.name).collect()
}

pub fn apply(doc: &mut Value) {
    for op in operations(doc) {
        let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
            continue;
        };
        for p in params {
            let name = p["name"].as_str().unwrap_or_default().to_owned();
            if let Some(rule) = parameter(&name, p["in"].as_str().unwrap_or_default()) {
                merge(&mut p["schema"], rule);
            }
        }
    }
    // Per-route meanings of a shared name.
    let state_of_jobs = json!({"enum": cowans_core::JobState::ALL.map(|s| s.as_str())});
    for path in ["/api/v1/jobs", "/api/v1/jobs/export"] {
        param_of(doc, path, "state", state_of_jobs.clone());
    }
    param_of(
        doc,
        "/api/v1/errors",
        "class",
        json!({"enum": cowans_core::error_groups::CLASSES}),
    );
    for path in [
        "/api/v1/shops/{shop}/changes",
        "/api/v1/shops/{shop}/changes/export",
    ] {
        param_of(doc, path, "state", json!({"enum": change_states()}));
        param_of(doc, path, "source", json!({"enum": CHANGE_SOURCES}));
        param_of(doc, path, "field", json!({"enum": fields()}));
    }
    for path in [
        "/api/v1/shops/{shop}/products",
        "/api/v1/shops/{shop}/products/export",
    ] {
        param_of(doc, path, "status", json!({"enum": STATUSES}));
    }
    param_of(
        doc,
        "/api/v1/shops/{shop}/products/{id}",
        "id",
        json!({"pattern": PRODUCT_ID}),
    );
    param_of(
        doc,
        "/api/v1/shops/{shop}/bulk-edits/preview",
        "sample",
        json!({"minimum": 0, "maximum": 1000}),
    );
    bodies(doc);
    // An import's body is a file: any bytes are one (rows that are not products are reported
    // row by row in the answer), so the document does not pretend to a shape.
    if let Some(content) =
        doc["paths"]["/api/v1/shops/{shop}/imports"]["post"]["requestBody"]["content"]
            .as_object_mut()
    {
        for media in content.values_mut() {
            media["schema"] = json!({"description": "The file: CSV (the export's columns) or JSON Lines of products"});
        }
    }
}

/// The rule of a parameter by name and location.
fn parameter(name: &str, location: &str) -> Option<Value> {
    Some(match (name, location) {
        ("limit", "query") => json!({"minimum": 1, "maximum": MAX_PAGE}),
        ("format", "query") => json!({"enum": ["csv", "jsonl"]}),
        ("queue", "path") => json!({"pattern": NAME}),
        ("shop", "path") => json!({"pattern": SHOP}),
        ("product", "query") => json!({"pattern": PRODUCT_ID}),
        _ => return None,
    })
}

fn param_of(doc: &mut Value, path: &str, name: &str, rule: Value) {
    let Some(item) = doc["paths"].get_mut(path).and_then(Value::as_object_mut) else {
        return;
    };
    for op in item.values_mut() {
        if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
            for p in params.iter_mut().filter(|p| p["name"] == name) {
                merge(&mut p["schema"], rule.clone());
            }
        }
    }
}

/// Request bodies: limits of their properties, and the bodies whose fields go together.
fn bodies(doc: &mut Value) {
    let schemas = &mut doc["components"]["schemas"];
    let mut prop = |schema: &str, property: &str, rule: Value| {
        if let Some(p) = schemas[schema]["properties"].get_mut(property) {
            merge(p, rule);
        }
    };
    let key = json!({"minLength": 1, "maxLength": cowans_queue::MAX_KEY});
    prop("SubmitJob", "queue", json!({"pattern": NAME}));
    prop(
        "SubmitJob",
        "priority",
        json!({"minimum": i16::MIN, "maximum": i16::MAX}),
    );
    prop(
        "SubmitJob",
        "max_attempts",
        json!({"minimum": 1, "maximum": i32::MAX}),
    );
    prop("SubmitJob", "unique_key", key.clone());
    prop("SubmitJob", "rate_key", key);
    prop(
        "SubmitJob",
        "run_at",
        json!({"description": "Not before this time (years 1 to 9999)."}),
    );
    prop(
        "CreateBatch",
        "jobs",
        json!({"minItems": 1, "maxItems": MAX_BULK}),
    );
    prop(
        "CreateBatch",
        "description",
        json!({"maxLength": cowans_queue::MAX_BATCH_DESCRIPTION}),
    );
    prop("Callback", "queue", json!({"pattern": NAME}));
    prop("PurgeRequest", "kind", json!({"pattern": NAME}));
    prop(
        "StartPull",
        "kind",
        json!({"enum": ["full", "incremental", "reconcile"]}),
    );
    prop("ChangeQuery", "state", json!({"enum": change_states()}));
    prop("ChangeQuery", "source", json!({"enum": CHANGE_SOURCES}));
    prop("ChangeQuery", "product", json!({"pattern": PRODUCT_ID}));
    prop("ChangeQuery", "field", json!({"enum": fields()}));
    let int32 = i64::from(i32::MAX);
    prop(
        "Limits",
        "concurrency_limit",
        json!({"minimum": 1, "maximum": int32}),
    );
    prop(
        "Limits",
        "rate_jobs",
        json!({"minimum": 1, "maximum": int32}),
    );
    prop(
        "Limits",
        "rate_period_ms",
        json!({"minimum": 1, "maximum": 366_i64 * 24 * 3600 * 1000}),
    );
    prop(
        "AddShop",
        "name",
        json!({"pattern": "^(?![0-9]+$)[a-z0-9][a-z0-9_-]{0,62}$"}),
    );
    prop("AddShop", "domain", json!({"pattern": "^[^/ ]{1,255}$"}));
    for schema in ["AddShop", "PatchShop"] {
        prop(
            schema,
            "api_version",
            json!({"pattern": "^[0-9]{4}-[0-9]{2}$"}),
        );
    }
    prop(
        "ResolveBody",
        "fields",
        json!({
            "minProperties": 1,
            "propertyNames": {"minLength": 1},
            "additionalProperties": {"oneOf": [
                {"enum": ["proposed", "current"]},
                {"type": "object", "additionalProperties": false, "required": ["value"], "properties": {"value": {}}}
            ]}
        }),
    );
    let reason = json!({"type": ["string", "null"], "maxLength": 1000, "description": "Why (kept with each change and in the audit log)."});
    // A rate is both numbers, or neither (absent or null).
    schemas["Limits"]["anyOf"] = json!([
        {"required": ["rate_jobs", "rate_period_ms"],
         "properties": {"rate_jobs": {"type": "integer"}, "rate_period_ms": {"type": "integer"}}},
        {"properties": {"rate_jobs": {"type": "null"}, "rate_period_ms": {"type": "null"}}}
    ]);
    schemas["DecideBody"] = json!({
        "description": "A decision on `ids`, or on every change matching `filter` when `expected` is still their count (409 with details.actual otherwise).",
        "oneOf": [
            {"type": "object", "additionalProperties": false, "required": ["ids"], "properties": {
                "ids": {"type": "array", "minItems": 1, "maxItems": MAX_BULK, "items": {"type": "integer", "format": "int64"}},
                "reason": reason.clone()}},
            {"type": "object", "additionalProperties": false, "required": ["filter", "expected"], "properties": {
                "filter": {"$ref": "#/components/schemas/ChangeQuery"},
                "expected": {"type": "integer", "format": "int64", "minimum": 0},
                "reason": reason}}
        ]
    });
    schemas["RedriveRequest"] = json!({
        "description": "Which dead letters to make available again: these `ids`, or `all` of the queue (of `kind`, if given).",
        "oneOf": [
            {"type": "object", "additionalProperties": false, "required": ["ids"], "properties": {
                "ids": {"type": "array", "minItems": 1, "maxItems": MAX_BULK, "items": {"type": "integer", "format": "int64"}}}},
            {"type": "object", "additionalProperties": false, "required": ["all"], "properties": {
                "all": {"const": true},
                "kind": {"type": ["string", "null"], "pattern": NAME}}}
        ]
    });
}

/// Every integer without a range gets its type's.
pub fn bound_integers(v: &mut Value) {
    match v {
        Value::Object(o) => {
            let range = match o.get("format").and_then(Value::as_str) {
                Some("int64") => Some((json!(i64::MIN), json!(i64::MAX))),
                Some("int32") => Some((json!(i32::MIN), json!(i32::MAX))),
                Some("uint64" | "uint") => Some((json!(0), json!(u64::MAX))),
                Some("uint32") => Some((json!(0), json!(u32::MAX))),
                Some("uint16") => Some((json!(0), json!(u16::MAX))),
                Some("int16") => Some((json!(i16::MIN), json!(i16::MAX))),
                _ => None,
            };
            if let Some((min, max)) = range {
                o.entry("minimum").or_insert(min);
                o.entry("maximum").or_insert(max);
            }
            o.values_mut().for_each(bound_integers);
        }
        Value::Array(a) => a.iter_mut().for_each(bound_integers),
        _ => {}
    }
}

/// Adds `rule`'s keys to `schema` (replacing the ones it names).
/// Adds `rule` to `schema`. An `enum` on a nullable schema (`type` lists `null`) also lists
/// `null`: the enum would refuse what the type allows (a filter sent as `null` means no filter).
fn merge(schema: &mut Value, mut rule: Value) {
    let nullable = schema["type"]
        .as_array()
        .is_some_and(|t| t.contains(&json!("null")));
    if nullable && let Some(values) = rule.get_mut("enum").and_then(Value::as_array_mut) {
        values.push(Value::Null);
    }
    if let (Some(s), Value::Object(r)) = (schema.as_object_mut(), rule) {
        s.extend(r);
    }
}
