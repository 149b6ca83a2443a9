//! The API's contract: the generated OpenAPI document lists every route with its role, a typed
//! response for every status it documents (error bodies included), and the live events' schema.

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
        ("put", "/api/v1/queues/{queue}/limits"),
        ("get", "/api/v1/queues/{queue}/dead"),
        ("post", "/api/v1/queues/{queue}/dead/redrive"),
        ("post", "/api/v1/queues/{queue}/dead/purge"),
        ("post", "/api/v1/batches"),
        ("get", "/api/v1/batches/{id}"),
        ("post", "/api/v1/batches/{id}/cancel"),
        ("get", "/api/v1/audit"),
        ("get", "/api/v1/errors"),
        ("get", "/api/v1/events"),
        ("get", "/api/v1/events/ws"),
        ("get", "/api/v1/kinds"),
        ("post", "/api/v1/shops"),
        ("get", "/api/v1/shops"),
        ("get", "/api/v1/shops/{shop}"),
        ("patch", "/api/v1/shops/{shop}"),
        ("delete", "/api/v1/shops/{shop}"),
        ("post", "/api/v1/shops/{shop}/pull"),
        ("get", "/api/v1/shops/{shop}/pulls"),
        ("get", "/api/v1/shops/{shop}/products"),
        ("get", "/api/v1/shops/{shop}/products/{id}"),
        ("get", "/api/v1/pulls/{id}"),
        ("post", "/api/v1/shops/{shop}/webhooks"),
        ("get", "/api/v1/shops/{shop}/products/export"),
        ("get", "/api/v1/jobs/export"),
        ("get", "/api/v1/queues/{queue}/dead/export"),
        ("get", "/api/v1/audit/export"),
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
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer", "API key or JWT");
    assert_eq!(
        (&schemes["api_key"]["in"], &schemes["api_key"]["name"]),
        (
            &serde_json::json!("header"),
            &serde_json::json!("X-Api-Key")
        )
    );
    // Every operation has its own id (generated clients name their methods after them).
    let mut ids = std::collections::BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            let id = op["operationId"].as_str().expect("an operation id");
            assert!(ids.insert(id.to_owned()), "operation id {id} repeats");
        }
    }
    assert!(ids.contains("jobs_list") && ids.contains("dead_letters_list"));
    // No kinds registered: any kind goes, with a queue to wait in.
    let any = &doc["components"]["schemas"]["SubmitJob.unregistered"];
    assert!(any["properties"]["queue"].is_object(), "{any}");
    assert_eq!(any["required"], serde_json::json!(["kind", "queue"]));
}

#[tokio::test]
async fn each_registered_kind_has_its_submit_schema_with_its_payload() {
    let api = crate::support::api::api_with_kinds().await;
    let (_, doc) = api
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    let schemas = &doc["components"]["schemas"];
    let submit = schemas["SubmitJob"]["oneOf"].as_array().unwrap();
    assert!(
        submit.contains(&serde_json::json!({"$ref": "#/components/schemas/SubmitJob.demo.sleep"})),
        "{submit:?}"
    );
    assert!(
        schemas.get("SubmitJob.unregistered").is_none(),
        "unknown kinds are refused, so none is documented"
    );
    let sleep = &schemas["SubmitJob.demo.sleep"];
    assert_eq!(sleep["properties"]["kind"]["const"], "demo.sleep");
    assert_eq!(
        sleep["properties"]["args"]["required"],
        serde_json::json!(["ms"])
    );
    assert_eq!(
        sleep["required"],
        serde_json::json!(["kind", "args"]),
        "its payload has a required field; its queue has a default"
    );
    // The limits the server enforces.
    let priority = &sleep["properties"]["priority"];
    assert_eq!(
        (&priority["minimum"], &priority["maximum"]),
        (&serde_json::json!(-32768), &serde_json::json!(32767))
    );
    assert_eq!(sleep["properties"]["max_attempts"]["minimum"], 1);
    assert_eq!(sleep["properties"]["unique_key"]["maxLength"], 512);
    let limit = doc["paths"]["/api/v1/jobs"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(
        (&limit["schema"]["minimum"], &limit["schema"]["maximum"]),
        (&serde_json::json!(1), &serde_json::json!(1000))
    );
}

#[tokio::test]
async fn every_route_documents_a_typed_body_for_every_status_and_the_events_schema_is_published() {
    let api = api().await;
    let (_, doc) = api
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    let resolve = |schema: &serde_json::Value| -> serde_json::Value {
        match schema["$ref"].as_str() {
            Some(r) => {
                let name = r.rsplit('/').next().unwrap();
                doc["components"]["schemas"][name].clone()
            }
            None => schema.clone(),
        }
    };
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let responses = op["responses"].as_object().unwrap();
            if op["tags"][0] == "ops" {
                // /health, /ready, /metrics: plain text, no credentials.
                assert!(
                    responses["200"]["content"]["text/plain"].is_object(),
                    "{path}"
                );
                continue;
            }
            let secured = op.get("security").is_some();
            for status in ["500", "503"].into_iter().chain(
                secured
                    .then_some(["401", "403", "429"])
                    .into_iter()
                    .flatten(),
            ) {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} does not document {status}"
                );
            }
            for (status, response) in responses {
                let content = response["content"].as_object().unwrap_or_else(|| {
                    panic!("{method} {path} {status} has no body schema: {response}")
                });
                for (media, body) in content {
                    let schema = resolve(&body["schema"]);
                    assert!(
                        schema.is_object() && schema != serde_json::json!({}),
                        "{method} {path} {status} {media} has an empty schema"
                    );
                    if status.starts_with('4') || status.starts_with('5') {
                        assert_eq!(
                            body["schema"]["$ref"], "#/components/schemas/ErrorBody",
                            "{method} {path} {status} answers the error shape"
                        );
                    }
                }
            }
        }
    }
    assert_eq!(
        operations, 57,
        "every route the router serves is in the document, and the ops routes beside it"
    );
    let error = &doc["components"]["schemas"]["ErrorBody"];
    assert!(error["properties"]["error"].is_object(), "{error}");
    let detail = resolve(&error["properties"]["error"]);
    for field in ["code", "message", "details"] {
        assert!(detail["properties"][field].is_object(), "{detail}");
    }

    // The events: in the document, and served on their own.
    let event = &doc["components"]["schemas"]["Event"];
    let (s, served) = api
        .call(Method::GET, "/api/v1/events/schema.json", None, None)
        .await;
    assert_eq!(s, 200, "public");
    let variants = |schema: &serde_json::Value| -> Vec<String> {
        schema["oneOf"]
            .as_array()
            .unwrap_or_else(|| panic!("{schema}"))
            .iter()
            .map(|v| {
                v["properties"]["type"]["const"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    let names = variants(event);
    assert_eq!(names, variants(&served));
    assert_eq!(
        names,
        cowans_core::Event::NAMES,
        "every event type is documented"
    );
    assert_eq!(
        doc["paths"]["/api/v1/events"]["get"]["responses"]["200"]["content"]["text/event-stream"]["schema"]
            ["$ref"],
        "#/components/schemas/Event"
    );
}

#[tokio::test]
async fn refusals_outside_the_handlers_answer_the_one_error_shape_naming_the_field() {
    let api = api().await;
    let op = Some(api.operator.as_str());
    let (s, v) = api
        .call(Method::GET, "/api/v1/jobs/abc", Some(&api.viewer), None)
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"]["details"]["field"], "id", "{v}");
    // A path segment that is not UTF-8 once decoded.
    let (s, v) = api
        .call(Method::GET, "/api/v1/queues/%FF", Some(&api.viewer), None)
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"]["details"]["field"], "path", "{v}");
    let (s, v) = api.call(Method::DELETE, "/api/v1/jobs", op, None).await;
    assert_eq!(s, 405, "{v}");
    crate::support::api::assert_error_shape(&v, "method_not_allowed");
    // Values the database could not store are refused before it sees them, by field name.
    let (s, v) = api
        .call(
            Method::PUT,
            "/api/v1/queues/q/limits",
            op,
            Some(serde_json::json!({"concurrency_limit": 3_000_000_000u64})),
        )
        .await;
    assert_eq!(
        (s.as_u16(), &v["error"]["details"]["field"]),
        (422, &serde_json::json!("concurrency_limit")),
        "{v}"
    );
    assert!(
        !v.to_string().contains("constraint"),
        "no database text: {v}"
    );
    let (s, v) = api
        .call(
            Method::PUT,
            "/api/v1/queues/q/limits",
            op,
            Some(serde_json::json!({"rate_jobs": 5, "rate_period_ms": 18446744073709551615u64})),
        )
        .await;
    assert_eq!(
        (s.as_u16(), &v["error"]["details"]["field"]),
        (422, &serde_json::json!("rate_period_ms")),
        "{v}"
    );
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/jobs",
            op,
            Some(serde_json::json!({"queue": "q", "kind": "k", "run_at": "-5000-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(
        (s.as_u16(), &v["error"]["details"]["field"]),
        (422, &serde_json::json!("run_at")),
        "{v}"
    );
    assert!(
        !v.to_string().contains("out of range"),
        "no database text: {v}"
    );
}
