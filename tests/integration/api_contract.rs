//! The API's contract: the generated OpenAPI document lists every route with its role.

use reqwest::Method;

use crate::support::api::api;

#[tokio::test]
async fn the_openapi_document_is_generated_and_lists_every_route() {
    let api = api().await;
    let (s, doc) = api
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(s, 200, "public");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let expected = [
        ("post", "/api/v1/jobs"),
        ("get", "/api/v1/jobs"),
        ("post", "/api/v1/jobs/bulk"),
        ("get", "/api/v1/jobs/{id}"),
        ("post", "/api/v1/jobs/{id}/cancel"),
        ("post", "/api/v1/jobs/{id}/retry"),
        ("get", "/api/v1/queues"),
        ("get", "/api/v1/queues/{queue}"),
        ("post", "/api/v1/queues/{queue}/pause"),
        ("post", "/api/v1/queues/{queue}/resume"),
        ("get", "/api/v1/queues/{queue}/dead"),
        ("post", "/api/v1/queues/{queue}/dead/redrive"),
        ("post", "/api/v1/queues/{queue}/dead/purge"),
        ("post", "/api/v1/batches"),
        ("get", "/api/v1/batches/{id}"),
        ("post", "/api/v1/batches/{id}/cancel"),
        ("get", "/api/v1/audit"),
        ("get", "/api/v1/events"),
        ("get", "/api/v1/events/ws"),
        ("get", "/api/v1/kinds"),
    ];
    for (method, path) in expected {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} missing from the document");
        assert!(
            op["description"]
                .as_str()
                .unwrap_or("")
                .starts_with("Role: "),
            "{method} {path} declares its role"
        );
        assert!(
            op["security"].is_array(),
            "{method} {path} declares its security"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["SubmitJob"]["properties"]["queue"].is_object());
}
