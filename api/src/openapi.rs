//! The OpenAPI document, generated from the handlers' annotations (served at
//! `/api/v1/openapi.json`; never edited by hand).

use utoipa::{
    Modify, OpenApi, ToSchema,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::routes;

/// Every error: `{"error": {"code", "message", "details"}}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    #[schema(value_type = Object, example = json!({"code": "invalid", "message": "queue: must not be empty", "details": {"field": "queue"}}))]
    error: serde_json::Value,
}

struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "api_key",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some("An API key (cwk_…) from `cowans-api keys create`; X-Api-Key also works"))
                        .build(),
                ),
            );
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Cowans API", description = "Job submission, queue administration, batches and live events."),
    paths(
        routes::jobs::submit, routes::jobs::submit_many, routes::jobs::get, routes::jobs::list,
        routes::jobs::cancel, routes::jobs::retry, routes::kinds::list,
        routes::queues::list, routes::queues::get, routes::queues::pause, routes::queues::resume,
        routes::dead::list, routes::dead::redrive, routes::dead::purge,
        routes::batches::create, routes::batches::get, routes::batches::cancel,
        routes::audit::list, crate::events::sse, crate::events::websocket,
    ),
    components(schemas(ErrorBody, routes::jobs::SubmitJob, routes::jobs::Submitted, routes::jobs::JobView,
        routes::dead::Redrive, routes::dead::Purge, routes::batches::CreateBatch)),
    modifiers(&BearerKey)
)]
pub struct ApiDoc;

/// `GET /api/v1/openapi.json` (public).
pub async fn document() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
