//! One submit schema per registered kind: a job's `args` must fit its kind's payload type, so the
//! document says so (`SubmitJob` is a `oneOf` over the kinds, told apart by `kind`), and a client
//! generated from it gets a typed payload per kind. A batch's callback may name only the kinds
//! whose payload takes the callback's `{batch_id, counts, args}`.

use cowans_core::KindRegistry;
use serde_json::{Value, json};

use super::constraints::NAME;

pub fn add_submit_schemas(doc: &mut Value, kinds: &KindRegistry) {
    let schemas = &mut doc["components"]["schemas"];
    let base = schemas["SubmitJob"].clone();
    let mut submits = Vec::new();
    let mut callbacks = Vec::new();
    for k in kinds.kinds() {
        let args = hoist(schemas, k.kind, k.schema.clone());
        // Submit: the kind's payload; `queue` required where the kind has no default.
        let mut variant = base.clone();
        variant["properties"]["kind"] = json!({"const": k.kind, "description": k.description});
        variant["properties"]["args"] = args.clone();
        let mut required = vec![json!("kind")];
        if k.schema["required"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
        {
            required.push(json!("args"));
        }
        if k.queue.is_none() {
            required.push(json!("queue"));
        }
        variant["required"] = Value::Array(required);
        variant.as_object_mut().map(|v| v.remove("description"));
        let name = format!("SubmitJob.{}", k.kind);
        schemas[&name] = variant;
        submits.push(json!({"$ref": format!("#/components/schemas/{name}")}));
        // Callback: the kind's payload describes `{batch_id, counts, args}`.
        if k.takes_batch_callback() {
            let inner = args["properties"]
                .get("args")
                .cloned()
                .unwrap_or_else(|| json!({}));
            callbacks.push(json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["queue", "kind", "args"],
                "properties": {
                    "queue": {"type": "string", "pattern": NAME},
                    "kind": {"const": k.kind},
                    "args": inner,
                }
            }));
        }
    }
    let known: Vec<&str> = kinds.names().collect();
    if !kinds.rejects_unknown() {
        // Kinds nobody registered go unchecked: any payload, and a queue to wait in.
        let mut other = base.clone();
        other["properties"]["kind"] =
            json!({"type": "string", "pattern": NAME, "not": {"enum": known}});
        other["required"] = json!(["kind", "queue"]);
        schemas["SubmitJob.unregistered"] = other.clone();
        submits.push(json!({"$ref": "#/components/schemas/SubmitJob.unregistered"}));
        callbacks.push(json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["queue", "kind"],
            "properties": {
                "queue": {"type": "string", "pattern": NAME},
                "kind": other["properties"]["kind"].clone(),
                "args": {"type": "object"},
            }
        }));
    }
    schemas["SubmitJob"] = json!({
        "description": "A job to submit: one of the registered kinds (`GET /api/v1/kinds`), its `args` fitting the kind's payload.",
        "oneOf": submits,
    });
    schemas["Callback"] = json!({
        "description": "A job enqueued once when every job of the batch has finished; its args become `{\"batch_id\", \"counts\", \"args\"}`, which the callback kind's payload must take.",
        "oneOf": callbacks,
    });
}

/// The kind's payload schema, its `$defs` moved to the components under `<kind>.<name>` (an
/// OpenAPI document has one root, so `#/$defs/…` would point nowhere).
fn hoist(schemas: &mut Value, kind: &str, mut schema: Value) -> Value {
    let Some(root) = schema.as_object_mut() else {
        return schema;
    };
    root.remove("$schema");
    root.remove("title");
    let defs = root.remove("$defs").and_then(|d| match d {
        Value::Object(m) => Some(m),
        _ => None,
    });
    let rename = |name: &str| format!("#/components/schemas/{kind}.{name}");
    for (name, mut def) in defs.unwrap_or_default() {
        rewrite_refs(&mut def, &rename);
        schemas[format!("{kind}.{name}")] = def;
    }
    rewrite_refs(&mut schema, &rename);
    schema
}

fn rewrite_refs(v: &mut Value, rename: &impl Fn(&str) -> String) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get_mut("$ref")
                && let Some(name) = r.strip_prefix("#/$defs/")
            {
                *r = rename(name);
            }
            o.values_mut().for_each(|v| rewrite_refs(v, rename));
        }
        Value::Array(a) => a.iter_mut().for_each(|v| rewrite_refs(v, rename)),
        _ => {}
    }
}
