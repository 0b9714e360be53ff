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
    fn the_document_lists_every_error_code_the_api_answers_with() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).expect("valid JSON");
        let listed = doc["components"]["schemas"]["ErrorBody"]["properties"]["error"]["enum"]
            .as_array()
            .expect("the error codes are listed");
        // Every code is written once in error.rs, as `(StatusCode::..., "code")`.
        let source = include_str!("error.rs");
        let codes: Vec<&str> = source
            .split("StatusCode::")
            .skip(1)
            .filter_map(|rest| rest.split_once(", \"")?.1.split_once('"').map(|(c, _)| c))
            .collect();
        assert!(codes.len() >= 15, "found the codes: {codes:?}");
        for code in codes {
            assert!(
                listed.iter().any(|c| c == code),
                "{code} is not in openapi.json"
            );
        }
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
