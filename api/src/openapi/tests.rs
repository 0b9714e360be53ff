//! The document against the router (the same routes and methods, both ways), the API's error
//! codes, and its own consistency (every `$ref` resolves, every body has a media type).

use std::collections::BTreeSet;

use serde_json::Value;

use super::document_json;

fn document() -> Value {
    serde_json::from_str(document_json()).expect("the document is JSON")
}

/// Every `.route("...", method(...))` in the router (`lib.rs`), as `(path, method)`; a call
/// may span lines, and runs until the next `.route(` or `.fallback(`.
fn router_routes() -> BTreeSet<(String, String)> {
    let src = include_str!("../lib.rs");
    let router = &src[src.find("Router::new()").expect("the router")..];
    router
        .split(".route(")
        .skip(1)
        .flat_map(|rest| {
            let rest = rest.trim_start().strip_prefix('"').expect("a route's path");
            let (path, call) = rest.split_once('"').expect("a route's path");
            let call = &call[..call.find(".fallback(").unwrap_or(call.len())];
            ["get", "post", "put", "delete", "patch"]
                .into_iter()
                .filter(move |m| {
                    call.contains(&format!(" {m}("))
                        || call.contains(&format!(".{m}("))
                        || call.contains(&format!("({m}("))
                })
                .map(move |m| (path.to_string(), m.to_string()))
        })
        .collect()
}

#[test]
fn the_document_and_the_router_have_exactly_the_same_routes_and_methods() {
    let routes = router_routes();
    assert!(routes.len() > 50, "found the router's routes: {routes:?}");
    let doc = document();
    let described: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("a path item")
                .keys()
                .map(move |m| (path.clone(), m.clone()))
        })
        .collect();
    let missing: Vec<_> = routes.difference(&described).collect();
    let extra: Vec<_> = described.difference(&routes).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the document: {missing:?}"
    );
    assert!(extra.is_empty(), "described but not routed: {extra:?}");
}

#[test]
fn the_document_lists_exactly_the_error_codes_the_api_answers_with() {
    let doc = document();
    let mut listed: Vec<&str> =
        doc["components"]["schemas"]["ErrorBody"]["properties"]["error"]["enum"]
            .as_array()
            .expect("the error codes are listed")
            .iter()
            .map(|c| c.as_str().expect("a code is a string"))
            .collect();
    let mut codes: Vec<&str> = gigafactory_core::wire::ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .collect();
    listed.sort_unstable();
    codes.sort_unstable();
    assert_eq!(listed, codes);
}

/// Every `$ref` under `v`.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r);
            }
            m.values().for_each(|v| refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_reference_resolves_and_every_body_says_its_media_type() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(found.len() > 100, "the schemas are referred to");
    for r in found {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{r} is not a component schema"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} does not resolve"
        );
    }
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            if let Some(body) = op.get("requestBody") {
                let content = body["content"].as_object();
                assert!(
                    content.is_some_and(|c| !c.is_empty()),
                    "{method} {path}: a request body without content"
                );
            }
            let responses = op["responses"].as_object().expect("responses");
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path}: no success answer"
            );
        }
    }
}

#[test]
fn the_bodies_are_the_wire_types_schemas() {
    let doc = document();
    let submit = &doc["paths"]["/v1/jobs"]["post"];
    assert_eq!(
        submit["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/JobSpec"
    );
    let spec = &doc["components"]["schemas"]["JobSpec"];
    assert_eq!(
        spec["additionalProperties"], false,
        "unknown fields refused"
    );
    let required: BTreeSet<&str> = spec["required"]
        .as_array()
        .expect("required fields")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        required,
        BTreeSet::from(["key", "title", "product", "payload"]),
        "fields with defaults are optional"
    );
    assert_eq!(
        submit["responses"]["201"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/SubmitResponse"
    );
}

#[test]
fn a_job_lists_its_allowed_actions_and_an_action_takes_an_optional_reason() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    let listed = &schemas["JobView"]["properties"]["allowed_actions"];
    assert_eq!(listed["type"], "array", "{listed}");
    let action = &schemas["Action"];
    let names: BTreeSet<&str> = action["oneOf"]
        .as_array()
        .map(|variants| {
            variants
                .iter()
                .filter_map(|v| v["const"].as_str().or(v["enum"][0].as_str()))
                .collect()
        })
        .or_else(|| {
            action["enum"]
                .as_array()
                .map(|e| e.iter().filter_map(Value::as_str).collect())
        })
        .unwrap_or_default();
    assert_eq!(
        names,
        BTreeSet::from([
            "requeue",
            "retry",
            "cancel",
            "ship",
            "reject",
            "request_changes"
        ]),
        "{action}"
    );
    let act = &doc["paths"]["/v1/jobs/{id}/actions/{action}"]["post"];
    assert_eq!(
        act["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ActionBody"
    );
    assert_eq!(act["requestBody"]["required"], false);
    assert!(schemas["ActionBody"]["properties"]["reason"].is_object());
}
