//! `/v1/openapi.json`: the API's OpenAPI 3.1 document, kept beside the routes it describes
//! (`openapi.json` in this folder). A test checks every route of the router is in it.

use axum::http::header;
use axum::response::IntoResponse;

pub(crate) const DOCUMENT: &str = include_str!("openapi.json");

pub(crate) async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `.route("...", method(...))` in the router, as (path, methods).
    fn routes() -> Vec<(String, Vec<String>)> {
        let src = include_str!("lib.rs");
        src.split(".route(\"")
            .skip(1)
            .map(|rest| {
                let (path, tail) = rest.split_once('"').expect("route path");
                let call = &tail[..tail.find("))\n").unwrap_or(tail.len())];
                let methods = ["get", "post", "put", "delete"]
                    .iter()
                    .filter(|m| {
                        call.contains(&format!(" {m}("))
                            || call.contains(&format!(".{m}("))
                            || call.contains(&format!("({m}("))
                    })
                    .map(|m| m.to_string())
                    .collect();
                (path.to_string(), methods)
            })
            .collect()
    }

    #[test]
    fn the_document_lists_exactly_the_error_codes_the_api_answers_with() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).expect("valid JSON");
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

    #[test]
    fn the_document_describes_every_route_and_method() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).expect("valid JSON");
        let routes = routes();
        assert!(routes.len() > 25, "found the router's routes");
        for (path, methods) in routes {
            assert!(!methods.is_empty(), "{path}: no method found");
            for m in methods {
                assert!(
                    doc["paths"][&path][&m].is_object(),
                    "{m} {path} is missing from openapi.json"
                );
            }
        }
    }
}
