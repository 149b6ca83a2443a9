//! The OpenAPI document, generated from the handlers' annotations and the registered job kinds
//! (served at `/api/v1/openapi.json`; never edited by hand). Passes over utoipa's output make it
//! the contract the server enforces, so a client generated from it, or a schema fuzzer, finds no
//! difference ([`passes`]): unique operation ids, the two ways to send credentials, the limits
//! and patterns the server checks ([`constraints`]), the error responses every route can give,
//! one submit schema per registered kind ([`kinds`]), the live events' schema and the ops routes.
//! The test suite runs schemathesis against the served document to keep it true.

mod constraints;
mod kinds;
mod passes;

use axum::{
    body::Bytes,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use cowans_core::KindRegistry;
use serde_json::Value;
use utoipa::OpenApi;

use crate::{ApiState, error::ErrorBody, routes};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Cowans API",
        description = "Job submission, queue administration, batches and live events. Every error answers `{\"error\": {\"code\", \"message\", \"details\"}}`; a 422's details name the field. No string (nor key, nor query parameter) may contain U+0000, which Postgres cannot store: such input is refused with 422 naming the field. Integers may be written with a zero fraction (`5.0`)."
    ),
    paths(
        routes::jobs::submit,
        routes::jobs::submit_many,
        routes::jobs::get,
        routes::jobs::list,
        routes::jobs::cancel,
        routes::jobs::retry,
        routes::kinds::list,
        routes::queues::list,
        routes::queues::get,
        routes::queues::pause,
        routes::queues::resume,
        routes::queues::set_limits,
        routes::dead::list,
        routes::dead::redrive,
        routes::dead::purge,
        routes::batches::create,
        routes::batches::get,
        routes::batches::cancel,
        routes::audit::list,
        routes::errors::list,
        routes::shops::add,
        routes::shops::list,
        routes::shops::get,
        routes::shops::patch,
        routes::shops::delete,
        routes::shops::start_pull,
        routes::shops::pulls,
        routes::shops::subscribe,
        routes::shops::pull,
        routes::shops::products,
        routes::shops::product,
        routes::webhooks::shopify,
        routes::changes::edit_product,
        routes::changes::list,
        routes::changes::get,
        routes::changes::approve,
        routes::changes::reject,
        routes::changes::resolve,
        routes::changes::push,
        routes::bulk_edits::preview,
        routes::bulk_edits::start,
        routes::bulk_edits::list,
        routes::bulk_edits::get,
        routes::imports::create,
        routes::imports::report,
        routes::exports::changes,
        routes::exports::products,
        routes::exports::jobs,
        routes::exports::dead,
        routes::exports::audit,
        crate::events::sse,
        crate::events::websocket,
        crate::events::schema,
        document,
    ),
    components(schemas(ErrorBody))
)]
pub struct ApiDoc;

/// The document of an API whose job submits are checked against `kinds`.
pub fn build(kinds: &KindRegistry) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    passes::name_operations(&mut doc);
    passes::declare_security(&mut doc);
    constraints::apply(&mut doc);
    kinds::add_submit_schemas(&mut doc, kinds);
    constraints::bound_integers(&mut doc);
    passes::add_common_responses(&mut doc);
    passes::add_export_formats(&mut doc);
    passes::add_event_schemas(&mut doc);
    passes::add_ops_routes(&mut doc);
    doc
}

/// The served document, serialised once per server.
#[derive(Clone)]
pub struct Document(Bytes);

impl Document {
    pub fn new(kinds: &KindRegistry) -> Self {
        Self(Bytes::from(
            serde_json::to_vec(&build(kinds)).unwrap_or_default(),
        ))
    }
}

/// `GET /api/v1/openapi.json` (public): this document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI document (3.1)", body = Object)))]
pub async fn document(State(state): State<ApiState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi.0.clone(),
    )
        .into_response()
}
