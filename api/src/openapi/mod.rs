//! `/v1/openapi.json`: the API's OpenAPI 3.1 document, assembled once per process from the
//! route table in `routes.rs` (every operation listed once, with its role, parameters, bodies
//! and answers) and the JSON Schemas `schemars` derives from the wire types, so a field added
//! to a body is in the document without anyone editing it. Tests check that the router and
//! the document have exactly the same routes, and that the error codes listed are the API's.

mod questions;
mod routes;
mod schedules;
mod secrets;

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

/// The document as served: built on first use, then the same bytes for the process's life.
pub(crate) fn document_json() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| build().to_string())
}

pub(crate) async fn document() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
}

/// The whole document.
fn build() -> Value {
    let mut doc = Doc::new();
    routes::describe(&mut doc);
    schedules::describe(&mut doc);
    doc.finish()
}

/// Who may call an operation (the document's `x-role`), which also says whether it takes a
/// bearer token.
#[derive(Debug, Clone, Copy)]
pub(super) enum Access {
    /// Anyone, without a token.
    Open,
    /// Anyone whose body carries the tracker source's HMAC signature (no token).
    Signature,
    /// Any valid token.
    Any,
    Viewer,
    Operator,
    Admin,
    Factory,
    Enrollment,
}

impl Access {
    fn role(self) -> &'static str {
        match self {
            Access::Open => "none",
            Access::Signature => "signature",
            Access::Any => "any",
            Access::Viewer => "viewer",
            Access::Operator => "operator",
            Access::Admin => "admin",
            Access::Factory => "factory",
            Access::Enrollment => "enrollment",
        }
    }
}

/// The document being assembled: paths, and the generator holding every named schema the
/// operations referred to (they become `components.schemas`).
pub(super) struct Doc {
    schemas: SchemaGenerator,
    paths: Map<String, Value>,
}

/// One operation being described; each method adds to its entry in the document.
pub(super) struct Op<'a> {
    doc: &'a mut Doc,
    path: &'static str,
    method: &'static str,
}

const ERROR_REF: &str = "#/components/schemas/ErrorBody";

impl Doc {
    fn new() -> Self {
        let settings = SchemaSettings::draft2020_12().with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        });
        Doc {
            schemas: SchemaGenerator::new(settings),
            paths: Map::new(),
        }
    }

    pub(super) fn get(&mut self, path: &'static str, summary: &str, access: Access) -> Op<'_> {
        self.op("get", path, summary, access)
    }

    pub(super) fn post(&mut self, path: &'static str, summary: &str, access: Access) -> Op<'_> {
        self.op("post", path, summary, access)
    }

    pub(super) fn put(&mut self, path: &'static str, summary: &str, access: Access) -> Op<'_> {
        self.op("put", path, summary, access)
    }

    pub(super) fn delete(&mut self, path: &'static str, summary: &str, access: Access) -> Op<'_> {
        self.op("delete", path, summary, access)
    }

    /// A new operation: its path parameters (strings unless said otherwise), its role, and
    /// the error body every failure answers with.
    fn op(
        &mut self,
        method: &'static str,
        path: &'static str,
        summary: &str,
        access: Access,
    ) -> Op<'_> {
        self.schemas
            .subschema_for::<gigafactory_core::wire::ErrorBody>();
        let parameters: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = json!({
            "summary": summary,
            "operationId": operation_id(method, path),
            "x-role": access.role(),
            "responses": {
                "default": {
                    "description": "the error, with a stable `error` code",
                    "content": {"application/json": {"schema": {"$ref": ERROR_REF}}}
                }
            }
        });
        if !parameters.is_empty() {
            op["parameters"] = Value::Array(parameters);
        }
        if matches!(access, Access::Open | Access::Signature) {
            op["security"] = json!([]);
        }
        let item = self
            .paths
            .entry(path)
            .or_insert_with(|| Value::Object(Map::new()));
        assert!(
            item.get(method).is_none(),
            "{method} {path} described twice"
        );
        item[method] = op;
        Op {
            doc: self,
            path,
            method,
        }
    }

    fn finish(mut self) -> Value {
        let schemas = self.schemas.take_definitions(true);
        json!({
            "openapi": "3.1.0",
            "info": {
                "title": "Gigafactory API",
                "version": "1",
                "description": "Jobs, factories and their leases, budgets, limits and trackers. \
                    Every error answers with the `ErrorBody` JSON object."
            },
            "security": [{"bearer": []}],
            "components": {
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                "schemas": schemas
            },
            "paths": self.paths
        })
    }
}

/// `get /v1/jobs/{id}/logs` → `get_v1_jobs_id_logs`: unique, since a path has each method once.
fn operation_id(method: &str, path: &str) -> String {
    let words: Vec<&str> = path
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        format!("{method}_root")
    } else {
        format!("{method}_{}", words.join("_"))
    }
}

impl Op<'_> {
    fn entry(&mut self) -> &mut Value {
        &mut self.doc.paths[self.path][self.method]
    }

    fn schema<T: JsonSchema>(&mut self) -> Value {
        self.doc.schemas.subschema_for::<T>().to_value()
    }

    /// The request body: `T` as JSON, required.
    pub(super) fn json<T: JsonSchema>(mut self) -> Self {
        let schema = self.schema::<T>();
        self.entry()["requestBody"] = json!({
            "required": true,
            "content": {"application/json": {"schema": schema}}
        });
        self
    }

    /// The request body: `T` as JSON, which may be left out.
    pub(super) fn optional_json<T: JsonSchema>(mut self, description: &str) -> Self {
        let schema = self.schema::<T>();
        self.entry()["requestBody"] = json!({
            "required": false,
            "description": description,
            "content": {"application/json": {"schema": schema}}
        });
        self
    }

    /// A request body that is not one JSON type: each media type with its schema.
    pub(super) fn body(mut self, description: &str, content: Value) -> Self {
        self.entry()["requestBody"] = json!({
            "required": true,
            "description": description,
            "content": content
        });
        self
    }

    /// The query parameters: the fields of `T` (the route's query struct), each optional
    /// unless `T` requires it.
    pub(super) fn query<T: JsonSchema>(mut self) -> Self {
        let object = T::json_schema(&mut self.doc.schemas).to_value();
        let required: Vec<&str> = object["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut params: Vec<Value> = object["properties"]
            .as_object()
            .map(|props| {
                props
                    .iter()
                    .map(|(name, schema)| {
                        let mut p = json!({
                            "name": name,
                            "in": "query",
                            "required": required.contains(&name.as_str()),
                            "schema": without_null(schema.clone()),
                        });
                        if let Some(d) = schema.get("description") {
                            p["description"] = d.clone();
                        }
                        p
                    })
                    .collect()
            })
            .unwrap_or_default();
        let entry = self.entry();
        match entry.get_mut("parameters").and_then(Value::as_array_mut) {
            Some(existing) => existing.append(&mut params),
            None => entry["parameters"] = Value::Array(params),
        }
        self
    }

    /// A path parameter's schema, when it is not any string.
    pub(super) fn param(mut self, name: &str, schema: Value) -> Self {
        let params = self.entry()["parameters"]
            .as_array_mut()
            .expect("the path has parameters");
        let p = params
            .iter_mut()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no path parameter {name}"));
        p["schema"] = schema;
        self
    }

    /// A request header the operation reads.
    pub(super) fn header(mut self, name: &str, description: &str) -> Self {
        let h = json!({"name": name, "in": "header", "required": false,
            "description": description, "schema": {"type": "string"}});
        let entry = self.entry();
        match entry.get_mut("parameters").and_then(Value::as_array_mut) {
            Some(existing) => existing.push(h),
            None => entry["parameters"] = json!([h]),
        }
        self
    }

    /// An answer with `T` as JSON.
    pub(super) fn answers<T: JsonSchema>(mut self, status: u16, description: &str) -> Self {
        let schema = self.schema::<T>();
        self.entry()["responses"][status.to_string()] = json!({
            "description": description,
            "content": {"application/json": {"schema": schema}}
        });
        self
    }

    /// An answer that is not one JSON type: each media type with its schema.
    pub(super) fn answers_with(mut self, status: u16, description: &str, content: Value) -> Self {
        self.entry()["responses"][status.to_string()] = json!({
            "description": description,
            "content": content
        });
        self
    }

    /// An answer without a body.
    pub(super) fn empty(mut self, status: u16, description: &str) -> Self {
        self.entry()["responses"][status.to_string()] = json!({"description": description});
        self
    }

    /// A `$ref` to `T`'s schema (added to the components), for content built by hand.
    pub(super) fn reference<T: JsonSchema>(&mut self) -> Value {
        self.schema::<T>()
    }
}

/// A query parameter's schema without its `null` (a query value is absent, never null).
fn without_null(mut schema: Value) -> Value {
    if let Some(map) = schema.as_object_mut()
        && map.get("default") == Some(&Value::Null)
    {
        map.remove("default");
    }
    if let Some(types) = schema.get_mut("type").and_then(Value::as_array_mut) {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            schema["type"] = types[0].clone();
        }
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
        let kept: Vec<&Value> = any.iter().filter(|s| s["type"] != "null").collect();
        if let [one] = kept.as_slice() {
            return (*one).clone();
        }
    }
    schema
}

#[cfg(test)]
mod tests;
