//! The OpenAPI document, generated from the handlers' annotations (served at
//! `/api/v1/openapi.json`; never edited by hand). Two passes complete it: every operation gets
//! the error responses every route can give (401/403/429 where credentials are needed, 500 and
//! 503 everywhere), each with the error body's schema; and the live events' schema (generated
//! from `cowans_core::Event`) is added to the components and referenced by the event routes.

use std::sync::LazyLock;

use cowans_core::Event;
use serde_json::{Value, json};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::{error::ErrorBody, routes};

struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "api_key",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some("An API key (cwk_…) from `cowans-api keys create`, or a JWT; X-Api-Key also works for keys"))
                        .build(),
                ),
            );
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Cowans API", description = "Job submission, queue administration, batches and live events. Every error answers `{\"error\": {\"code\", \"message\", \"details\"}}`; a 422's details name the field."),
    paths(
        routes::jobs::submit, routes::jobs::submit_many, routes::jobs::get, routes::jobs::list,
        routes::jobs::cancel, routes::jobs::retry, routes::kinds::list,
        routes::queues::list, routes::queues::get, routes::queues::pause, routes::queues::resume,
        routes::queues::set_limits,
        routes::dead::list, routes::dead::redrive, routes::dead::purge,
        routes::batches::create, routes::batches::get, routes::batches::cancel,
        routes::audit::list,
        routes::shops::add, routes::shops::list, routes::shops::get, routes::shops::patch,
        routes::shops::delete, routes::shops::start_pull, routes::shops::pulls, routes::shops::subscribe, routes::shops::pull,
        routes::shops::products, routes::shops::product, routes::webhooks::shopify,
        routes::changes::edit_product, routes::changes::list, routes::changes::get,
        routes::changes::approve, routes::changes::reject, routes::changes::resolve, routes::changes::push,
        routes::bulk_edits::preview, routes::bulk_edits::start, routes::bulk_edits::list, routes::bulk_edits::get,
        routes::imports::create, routes::imports::report, routes::exports::changes,
        routes::exports::products, routes::exports::jobs, routes::exports::dead, routes::exports::audit,
        crate::events::sse, crate::events::websocket, crate::events::schema,
        document,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerKey)
)]
pub struct ApiDoc;

/// The whole document, built once.
static DOCUMENT: LazyLock<Value> = LazyLock::new(build);

fn build() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    add_common_responses(&mut doc);
    add_event_schemas(&mut doc);
    doc
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    })
}

/// The errors any route may answer, added where the annotation did not list them.
fn add_common_responses(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut().filter_map(Value::as_object_mut) {
            let secured = op.get("security").is_some();
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            let mut common = vec![
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
                    ("429", "Over this caller's request rate; see Retry-After"),
                ]);
            }
            for (status, description) in common {
                responses
                    .entry(status)
                    .or_insert_with(|| error_response(description));
            }
        }
    }
}

/// `Event` and what it refers to, in the components; the event routes point at it.
fn add_event_schemas(doc: &mut Value) {
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

/// `GET /api/v1/openapi.json` (public): this document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI document (3.1)", body = Object)))]
pub async fn document() -> axum::Json<Value> {
    axum::Json(DOCUMENT.clone())
}
