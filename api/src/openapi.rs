//! `/v1/openapi.json`: the API's OpenAPI 3.1 document, kept beside the routes it describes
//! (`openapi.json` in this folder). A test checks every route of the router is in it.

use axum::http::header;
use axum::response::IntoResponse;

pub(crate) const DOCUMENT: &str = include_str!("openapi.json");

pub(crate) async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}
