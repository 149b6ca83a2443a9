//! Passes that complete utoipa's output: operation ids, security schemes, the error responses
//! every route can give, the live events' schema and the ops routes served beside the API.

use std::collections::BTreeSet;

use cowans_core::Event;
use serde_json::{Map, Value, json};

/// Every operation's id is `<tag>_<handler>` (`jobs_list`, `dead_letters_purge`): handlers of
/// different resources share names (`list`, `get`), and generated clients need unique ids.
pub fn name_operations(doc: &mut Value) {
    let mut seen = BTreeSet::new();
    for op in operations(doc) {
        let field = |name: &str| op.get(name).cloned().unwrap_or_default();
        let tag = field("tags")[0].as_str().unwrap_or("api").replace(' ', "_");
        let handler = field("operationId")
            .as_str()
            .unwrap_or("operation")
            .to_owned();
        let mut id = format!("{tag}_{handler}");
        let mut n = 2;
        while !seen.insert(id.clone()) {
            id = format!("{tag}_{handler}_{n}");
            n += 1;
        }
        op.insert("operationId".into(), json!(id));
    }
}

/// The two ways to send credentials: `Authorization: Bearer <API key or JWT>` or
/// `X-Api-Key: <API key>`; a secured operation takes either.
pub fn declare_security(doc: &mut Value) {
    doc["components"]["securitySchemes"] = json!({
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "API key (cwk_…) or JWT",
            "description": "An API key from `cowans-api keys create`, or a JWT signed with the configured secret (claims: sub, role, exp; optionally nbf, iat, iss, aud)"
        },
        "api_key": {
            "type": "apiKey",
            "in": "header",
            "name": "X-Api-Key",
            "description": "An API key from `cowans-api keys create`"
        }
    });
    for op in operations(doc) {
        if op.contains_key("security") {
            op.insert("security".into(), json!([{"bearer": []}, {"api_key": []}]));
        }
    }
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    })
}

/// The errors a route may answer, added where its annotation did not list them: 414, 431, 500
/// and 503 everywhere; 401/403/429 where credentials are needed; 422 where it takes input; 404 where
/// its path names something; 408/413/415 where it takes a body.
pub fn add_common_responses(doc: &mut Value) {
    for op in operations(doc) {
        let secured = op.contains_key("security");
        let params = op
            .get("parameters")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let in_path = params.iter().any(|p| p["in"] == "path");
        let body = op.contains_key("requestBody");
        let mut common = vec![
            ("414", "The URI is longer than the API reads (8 KiB)"),
            ("431", "The headers are larger than the API reads (64 KiB)"),
            ("500", "Unexpected failure (the cause is in the server log)"),
            ("503", "Timed out, or the database is unavailable; retry"),
        ];
        if secured {
            common.extend([
                (
                    "401",
                    "Missing, malformed, unknown, revoked or expired credentials",
                ),
                ("403", "The credential's role is too low for this route"),
                (
                    "429",
                    "Over this caller's request rate (or too many failed authentications from this address); see Retry-After",
                ),
            ]);
        }
        if body || !params.is_empty() {
            common.push(("422", "Invalid input; `details.field` names it"));
        }
        if in_path {
            common.push(("404", "What the path names does not exist"));
        }
        if body {
            common.extend([
                ("408", "The body stopped arriving"),
                ("413", "The body is larger than the route takes"),
                ("415", "The body's Content-Type is not one the route takes"),
            ]);
        }
        let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
            continue;
        };
        for (status, description) in common {
            responses
                .entry(status)
                .or_insert_with(|| error_response(description));
        }
    }
}

/// Exports answer CSV or, with `format=jsonl`, JSON Lines.
pub fn add_export_formats(doc: &mut Value) {
    for op in operations(doc) {
        if let Some(content) = op
            .get_mut("responses")
            .and_then(|r| r.get_mut("200"))
            .and_then(|r| r.get_mut("content"))
            .and_then(Value::as_object_mut)
            && content.contains_key("text/csv")
        {
            content.insert(
                "application/jsonl".into(),
                json!({"schema": {"type": "string", "description": "One JSON object per line"}}),
            );
        }
    }
}

/// `Event` and what it refers to, in the components; the event routes point at it.
pub fn add_event_schemas(doc: &mut Value) {
    let mut generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
        .into_generator();
    let event = generator.root_schema_for::<Event>();
    let definitions = generator.take_definitions(true);
    let Some(schemas) = doc["components"]["schemas"].as_object_mut() else {
        return;
    };
    schemas.insert("Event".to_owned(), event.to_value());
    for (name, schema) in definitions {
        schemas.entry(name).or_insert(schema);
    }
    let event_ref = json!({"$ref": "#/components/schemas/Event"});
    let sse = &mut doc["paths"]["/api/v1/events"]["get"]["responses"]["200"];
    sse["content"] = json!({"text/event-stream": {"schema": event_ref}});
    let ws = &mut doc["paths"]["/api/v1/events/ws"]["get"]["responses"]["101"];
    ws["content"] = json!({"application/json": {"schema": event_ref}});
}

/// `/health`, `/ready` and `/metrics`: served beside the API by every Cowans process, public.
pub fn add_ops_routes(doc: &mut Value) {
    let text = |description: &str| json!({"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}});
    let op = |id: &str, summary: &str, responses: Value| json!({"get": {"tags": ["ops"], "operationId": id, "summary": summary, "responses": responses}});
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    paths.insert(
        "/health".into(),
        op(
            "ops_health",
            "The process is alive (`ok`)",
            json!({"200": text("ok")}),
        ),
    );
    paths.insert(
        "/ready".into(),
        op(
            "ops_ready",
            "The database is reachable and every migration has run",
            json!({"200": text("ready"), "503": text("Not ready, and why (database unreachable, migrations pending)")}),
        ),
    );
    paths.insert(
        "/metrics".into(),
        op(
            "ops_metrics",
            "Prometheus metrics (text exposition format 0.0.4)",
            json!({"200": text("The metrics")}),
        ),
    );
}

/// Every operation object of the document.
pub fn operations(doc: &mut Value) -> impl Iterator<Item = &mut Map<String, Value>> {
    doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter_map(Value::as_object_mut)
}
