//! Reading a manifest document, TOML or JSON, into a tree of our own (`Node`) with typed
//! accessors that report a wrong type at its location instead of failing the whole read.

use super::*;

pub(super) const ROOT_FIELDS: &[&str] = &["product", "profiles", "jobs"];
/// The fields of a `sandbox` table.
pub(super) const SANDBOX_FIELDS: &[&str] = &["network", "memory_mib", "cpu_millis"];
/// The fields of a `repo` table.
pub(super) const REPO_FIELDS: &[&str] = &["url", "rev"];

pub(super) const SETTINGS_FIELDS: &[&str] = &[
    "capabilities",
    "labels",
    "engine_class",
    "priority",
    "max_attempts",
    "wall_clock_secs",
    "cost_budget_usd",
    "preemptible",
    "review",
    "allowed_scope",
    "artifacts",
    "approvals",
    "reviewers",
    "concurrency_key",
    "affinity",
    "sandbox",
    "repo",
];
pub(super) const JOB_ONLY_FIELDS: &[&str] = &[
    "key",
    "title",
    "command",
    "prompt",
    "product",
    "profile",
    "deps",
    "idempotency_key",
];

/// A parsed document, TOML or JSON, before any meaning is given to it. Our own tree rather
/// than `serde_json::Value` because JSON cannot hold TOML's `nan`, and a NaN cost must be
/// reported as such, not silently read as "absent".
#[derive(Debug)]
pub(super) enum Node {
    /// JSON `null`; a field set to null counts as absent.
    Null,
    Bool(bool),
    /// i128 holds every JSON and TOML integer, so range checks see the real value.
    Int(i128),
    Float(f64),
    Str(String),
    Array(Vec<Node>),
    Table(BTreeMap<String, Node>),
    Datetime,
}

impl Node {
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Int(_) => "an integer",
            Node::Float(_) => "a float",
            Node::Str(_) => "a string",
            Node::Array(_) => "an array",
            Node::Table(_) => "a table",
            Node::Datetime => "a datetime",
        }
    }

    pub(super) fn from_toml(value: toml::Value) -> Node {
        match value {
            toml::Value::String(s) => Node::Str(s),
            toml::Value::Integer(i) => Node::Int(i.into()),
            toml::Value::Float(f) => Node::Float(f),
            toml::Value::Boolean(b) => Node::Bool(b),
            toml::Value::Datetime(_) => Node::Datetime,
            toml::Value::Array(items) => {
                Node::Array(items.into_iter().map(Node::from_toml).collect())
            }
            toml::Value::Table(table) => Node::Table(
                table
                    .into_iter()
                    .map(|(k, v)| (k, Node::from_toml(v)))
                    .collect(),
            ),
        }
    }

    pub(super) fn from_json(value: serde_json::Value) -> Node {
        use serde_json::Value;
        match value {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Bool(b),
            Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Node::Int(i.into()),
                (None, Some(u)) => Node::Int(u.into()),
                (None, None) => Node::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => Node::Str(s),
            Value::Array(items) => Node::Array(items.into_iter().map(Node::from_json).collect()),
            Value::Object(map) => Node::Table(
                map.into_iter()
                    .map(|(k, v)| (k, Node::from_json(v)))
                    .collect(),
            ),
        }
    }
}

/// Both parsers bound nesting depth (serde_json at 128, toml's parser likewise), so the
/// recursive conversion above cannot exhaust the stack.
pub(super) fn parse_document(text: &str) -> Result<Node, ManifestError> {
    if text.trim_start().starts_with('{') {
        serde_json::from_str::<serde_json::Value>(text)
            .map(Node::from_json)
            .map_err(|e| json_error(&e))
    } else {
        toml::from_str::<toml::Table>(text)
            .map(|table| Node::from_toml(toml::Value::Table(table)))
            .map_err(|e| toml_error(text, &e))
    }
}

pub(super) fn json_error(error: &serde_json::Error) -> ManifestError {
    let text = error.to_string();
    if error.line() == 0 {
        return ManifestError {
            location: "document".to_owned(),
            message: text,
        };
    }
    // serde_json appends " at line L column C"; the location carries that instead.
    let message = match text.rsplit_once(" at line ") {
        Some((message, _)) => message.to_owned(),
        None => text,
    };
    ManifestError {
        location: format!("line {}, column {}", error.line(), error.column()),
        message,
    }
}

pub(super) fn toml_error(text: &str, error: &toml::de::Error) -> ManifestError {
    let message = error.message().trim().to_owned();
    match error.span() {
        Some(span) => {
            let (line, column) = line_column(text, span.start);
            ManifestError {
                location: format!("line {line}, column {column}"),
                message,
            }
        }
        None => ManifestError {
            location: "document".to_owned(),
            message,
        },
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(super) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The fields of one table, taken out one by one; what is left at the end is unknown.
pub(super) struct Fields {
    pub(super) location: String,
    pub(super) map: BTreeMap<String, Node>,
}

impl Fields {
    pub(super) fn has(&self, name: &str) -> bool {
        !matches!(self.map.get(name), None | Some(Node::Null))
    }

    /// Removes a field, with its location. Null counts as absent.
    pub(super) fn take(&mut self, name: &str) -> Option<(Node, String)> {
        match self.map.remove(name)? {
            Node::Null => None,
            node => Some((node, join(&self.location, name))),
        }
    }

    /// Reports every field nobody took.
    pub(super) fn finish(self, known: &[&str], sink: &mut Sink) {
        for name in self.map.keys() {
            sink.push(
                join(&self.location, name),
                format!("unknown field (expected one of: {})", known.join(", ")),
            );
        }
    }
}

pub(super) fn expected(what: &str, found: &Node) -> String {
    format!("expected {what}, found {}", found.kind())
}

pub(super) fn expect_table(node: Node, location: &str, sink: &mut Sink) -> Option<Fields> {
    match node {
        Node::Table(map) => Some(Fields {
            location: location.to_owned(),
            map,
        }),
        other => {
            sink.push(location.to_owned(), expected("a table", &other));
            None
        }
    }
}

pub(super) fn expect_string(node: Node, location: &str, sink: &mut Sink) -> Option<String> {
    match node {
        Node::Str(s) => Some(s),
        other => {
            sink.push(location.to_owned(), expected("a string", &other));
            None
        }
    }
}

pub(super) fn expect_int(node: Node, location: &str, sink: &mut Sink) -> Option<i128> {
    match node {
        Node::Int(i) => Some(i),
        other => {
            sink.push(location.to_owned(), expected("an integer", &other));
            None
        }
    }
}

pub(super) fn expect_number(node: Node, location: &str, sink: &mut Sink) -> Option<f64> {
    match node {
        Node::Int(i) => Some(i as f64),
        Node::Float(f) => Some(f),
        other => {
            sink.push(location.to_owned(), expected("a number", &other));
            None
        }
    }
}

pub(super) fn expect_bool(node: Node, location: &str, sink: &mut Sink) -> Option<bool> {
    match node {
        Node::Bool(b) => Some(b),
        other => {
            sink.push(location.to_owned(), expected("a boolean", &other));
            None
        }
    }
}

/// An array of strings; every non-string element is reported, and then the list is `None`.
pub(super) fn expect_strings(node: Node, location: &str, sink: &mut Sink) -> Option<Vec<String>> {
    let Node::Array(items) = node else {
        sink.push(location.to_owned(), expected("an array of strings", &node));
        return None;
    };
    let mut strings = Vec::with_capacity(items.len());
    let mut clean = true;
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Node::Str(s) => strings.push(s),
            other => {
                sink.push(format!("{location}[{i}]"), expected("a string", &other));
                clean = false;
            }
        }
    }
    clean.then_some(strings)
}

/// Takes a field, checks its type, then its value; reports at the field's location.
pub(super) fn read<R, T>(
    fields: &mut Fields,
    name: &str,
    sink: &mut Sink,
    expect: fn(Node, &str, &mut Sink) -> Option<R>,
    check: impl FnOnce(R) -> Result<T, String>,
) -> Option<T> {
    let (node, location) = fields.take(name)?;
    let raw = expect(node, &location, sink)?;
    match check(raw) {
        Ok(value) => Some(value),
        Err(message) => {
            sink.push(location, message);
            None
        }
    }
}

/// Takes a list of strings, checks its length and each element.
pub(super) fn read_list(
    fields: &mut Fields,
    name: &str,
    sink: &mut Sink,
    max: usize,
    check: fn(&str) -> CheckResult,
) -> Option<Vec<String>> {
    let (node, location) = fields.take(name)?;
    let items = expect_strings(node, &location, sink)?;
    let before = sink.count();
    check_list(sink, &location, &items, max, check);
    (sink.count() == before).then_some(items)
}
