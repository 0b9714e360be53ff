//! Job manifests and job specs: parsing, profile resolution and validation.
//!
//! A manifest is TOML (or JSON, when its first non-blank character is `{`) declaring many
//! jobs, the dependencies between them by key, and named profiles of defaults. Guarantees:
//! - [`parse_manifest`] returns either every job fully resolved (profile defaults applied,
//!   every field concrete and valid) or every problem it found, each with its location
//!   (`jobs[3].priority`, `profiles.agent.allowed_scope[1]`, `jobs[key=build-api].deps`).
//!   Only a syntax error stops it early, since nothing after it can be read.
//! - Unknown fields are refused at every level, so a typo never falls back to a default.
//! - Jobs come out parents first; jobs that do not depend on each other keep their order in
//!   the document. A dependency cycle is refused and named in order (`cycle: a -> b -> a`).
//! - [`validate_job_spec`] applies the same value checks to one job on its own (the REST
//!   API's single submission), so a job is valid or not whatever way it arrived.
//! - Everything is bounded (jobs per manifest, list lengths, text sizes, listed problems), so
//!   a hostile manifest costs time and memory in proportion to its size, no more.
//!
//! Jobs and fields are located by 0-based index: `jobs[0]` is the first `[[jobs]]`.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::dag;

/// Most jobs one manifest may declare.
pub const MANIFEST_JOBS_MAX: usize = 10_000;
/// Most profiles one manifest may define.
pub const MANIFEST_PROFILES_MAX: usize = 256;
/// Most problems one error report lists; one more line counts the rest.
pub const MANIFEST_ERRORS_MAX: usize = 1_000;
/// Longest job key, dependency reference, product or profile name, in characters.
pub const KEY_LEN_MAX: usize = 128;
/// Longest capability or engine class name, in characters.
pub const CAPABILITY_LEN_MAX: usize = 64;
/// Most capabilities one job may require.
pub const CAPABILITIES_MAX: usize = 64;
/// Most dependencies of one job. Bounded because a job record must fit the store's value
/// limit (100 KB).
pub const DEPS_MAX: usize = 1_000;
/// Most path globs in one job's allowed scope.
pub const ALLOWED_SCOPE_MAX: usize = 256;
/// Longest path glob, in bytes.
pub const GLOB_LEN_MAX_BYTES: usize = 1_024;
/// Longest title, in bytes.
pub const TITLE_LEN_MAX_BYTES: usize = 512;
/// Longest command or prompt, in bytes: well under the store's 100 KB value limit so the
/// rest of the job record still fits.
pub const PAYLOAD_LEN_MAX_BYTES: usize = 64 * 1024;
/// Longest idempotency key, in bytes.
pub const IDEMPOTENCY_KEY_LEN_MAX_BYTES: usize = 256;
/// Highest priority; 0 is the lowest.
pub const PRIORITY_MAX: u32 = 1_000;
/// Priority of a job that names none, directly or through its profile.
pub const PRIORITY_DEFAULT: u32 = 50;
/// Attempts of a job that names none.
pub const MAX_ATTEMPTS_DEFAULT: u32 = 3;
/// Most attempts a job may ask for.
pub const MAX_ATTEMPTS_MAX: u32 = 100;
/// Longest wall-clock budget: 30 days.
pub const WALL_CLOCK_MAX_SECS: u64 = 30 * 24 * 3_600;
/// Largest cost budget: one million USD, in micro-dollars.
pub const COST_BUDGET_MAX_MICROS: u64 = 1_000_000 * MICROS_PER_USD;

const MICROS_PER_USD: u64 = 1_000_000;

/// What a job runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Payload {
    /// A shell command the factory runs.
    Command(String),
    /// A prompt the factory gives its agent.
    Prompt(String),
}

/// One fully resolved job: profile defaults applied, every field concrete.
///
/// Also the body of a single-job submission: deserializing it from JSON applies the same
/// defaults as a manifest, refuses unknown fields, and sorts and deduplicates capabilities.
/// Deserialization checks only shapes; call [`validate_job_spec`] (or use
/// [`parse_job_spec_json`], which does both) before trusting the values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Unique within its manifest; dependencies refer to it.
    pub key: String,
    pub title: String,
    /// The tenant the job belongs to (its budget, weights and idempotency namespace).
    pub product: String,
    pub payload: Payload,
    /// 0..=1000, higher runs first.
    #[serde(default = "default_priority")]
    pub priority: u32,
    /// Capabilities a factory must all have (a hard filter). Sorted and deduplicated.
    #[serde(default, deserialize_with = "sorted_unique_strings")]
    pub capabilities: Vec<String>,
    /// The agent engine the job needs (`claude`, ...), if any.
    #[serde(default)]
    pub engine_class: Option<String>,
    /// The profile the job inherited its defaults from, kept for display and filtering.
    #[serde(default)]
    pub profile: Option<String>,
    /// In a manifest, keys of other jobs of the manifest; in a single submission, job ids.
    #[serde(default)]
    pub deps: Vec<String>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Path globs the job may change.
    #[serde(default)]
    pub allowed_scope: Vec<String>,
    /// 1..=100.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    #[serde(default)]
    pub wall_clock_ms: Option<u64>,
    /// USD × 1,000,000.
    #[serde(default)]
    pub cost_budget_micros: Option<u64>,
    #[serde(default = "default_true")]
    pub preemptible: bool,
    /// When true, success leads to `review` and an operator ships or rejects it.
    #[serde(default)]
    pub review: bool,
}

/// A parsed manifest: its jobs in topological order, dependencies before dependents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub jobs: Vec<JobSpec>,
}

/// One problem in a manifest or job spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{location}: {message}")]
pub struct ManifestError {
    /// Where: a field path (`jobs[3].priority`) or, for syntax errors, `line L, column C`.
    pub location: String,
    pub message: String,
}

/// Every problem found; the submission should be fixed and sent again as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestErrors(pub Vec<ManifestError>);

impl fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestErrors {}

/// Parses and validates a TOML or JSON manifest. See the module doc for the guarantees.
pub fn parse_manifest(text: &str) -> Result<Manifest, ManifestErrors> {
    let root = parse_document(text).map_err(|error| ManifestErrors(vec![error]))?;
    let mut sink = Sink::default();
    // Top-level fields have bare locations (`product`, `jobs`), hence the empty prefix.
    let mut fields = match root {
        Node::Table(map) => Fields {
            location: String::new(),
            map,
        },
        other => {
            sink.push("document".to_owned(), expected("a table", &other));
            return Err(sink.into_errors());
        }
    };

    let product_given = fields.has("product");
    let default_product = read(&mut fields, "product", &mut sink, expect_string, |s| {
        check_key(&s).map(|()| s)
    });
    let profiles = read_profiles(fields.take("profiles"), &mut sink);
    let jobs_field = fields.take("jobs");
    fields.finish(ROOT_FIELDS, &mut sink);

    let job_nodes = match jobs_field {
        Some((Node::Array(items), _)) if !items.is_empty() => items,
        Some((Node::Array(_), _)) | None => {
            sink.push("jobs".to_owned(), "a manifest needs at least one job");
            Vec::new()
        }
        Some((other, location)) => {
            sink.push(location, expected("an array of tables", &other));
            Vec::new()
        }
    };
    if job_nodes.len() > MANIFEST_JOBS_MAX {
        // Refuse before reading them: the work must stay proportional to what we accept.
        sink.push(
            "jobs".to_owned(),
            format!(
                "too many jobs: {} (at most {MANIFEST_JOBS_MAX})",
                job_nodes.len()
            ),
        );
        return Err(sink.into_errors());
    }

    let jobs: Vec<ReadJob> = job_nodes
        .into_iter()
        .enumerate()
        .map(|(i, node)| read_job(node, &format!("jobs[{i}]"), &mut sink))
        .collect();
    for (i, job) in jobs.iter().enumerate() {
        if let Some(name) = &job.profile
            && !profiles.contains_key(name)
        {
            sink.push(
                format!("jobs[{i}].profile"),
                format!(
                    "unknown profile {} (defined: {})",
                    show(name),
                    some_names(profiles.keys())
                ),
            );
        }
        if !job.has_product && !product_given {
            sink.push(
                format!("jobs[{i}].product"),
                "missing: name a product on the job or set a top-level `product`",
            );
        }
    }
    let order = check_graph(&jobs, &mut sink);

    if !sink.is_empty() {
        return Err(sink.into_errors());
    }
    let mut specs = Vec::with_capacity(jobs.len());
    for (i, job) in jobs.into_iter().enumerate() {
        let location = format!("jobs[{i}]");
        let profile = match &job.profile {
            Some(name) => profiles.get(name).map(|p| &p.settings),
            None => Some(&NO_SETTINGS),
        };
        let product = job
            .draft
            .as_ref()
            .and_then(|d| d.product.clone())
            .or_else(|| default_product.clone());
        match (job.draft, product, profile) {
            (Some(draft), Some(product), Some(profile)) => {
                let spec = draft.resolve(product, profile);
                // Defence in depth: the reader checked each value where it was written;
                // the resolved job must pass the same checks a single submission passes.
                validate_spec_into(&spec, &location, &mut sink);
                specs.push(spec);
            }
            _ => sink.push(location, "internal error: job was not resolved"),
        }
    }
    let Some(order) = order else {
        sink.push("jobs".to_owned(), "internal error: no topological order");
        return Err(sink.into_errors());
    };
    if !sink.is_empty() {
        return Err(sink.into_errors());
    }
    let mut by_index: Vec<Option<JobSpec>> = specs.into_iter().map(Some).collect();
    let jobs = order.iter().filter_map(|&i| by_index[i].take()).collect();
    Ok(Manifest { jobs })
}

/// Checks one job spec on its own, reporting every problem with the field as location
/// (`priority`, `capabilities[1]`). Dependencies are checked for shape only: whether they
/// exist is the caller's business (manifest keys here, job ids in the store).
pub fn validate_job_spec(spec: &JobSpec) -> Result<(), ManifestErrors> {
    let mut sink = Sink::default();
    validate_spec_into(spec, "", &mut sink);
    if sink.is_empty() {
        Ok(())
    } else {
        Err(sink.into_errors())
    }
}

/// Reads one job spec from JSON (a single submission) and validates it. A malformed body is
/// one error located at `line L, column C`.
pub fn parse_job_spec_json(text: &str) -> Result<JobSpec, ManifestErrors> {
    let spec: JobSpec =
        serde_json::from_str(text).map_err(|e| ManifestErrors(vec![json_error(&e)]))?;
    validate_job_spec(&spec)?;
    Ok(spec)
}

fn default_priority() -> u32 {
    PRIORITY_DEFAULT
}

fn default_max_attempts() -> u32 {
    MAX_ATTEMPTS_DEFAULT
}

fn default_true() -> bool {
    true
}

fn sorted_unique_strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Vec::<String>::deserialize(d).map(sorted_unique)
}

fn sorted_unique(mut items: Vec<String>) -> Vec<String> {
    items.sort_unstable();
    items.dedup();
    items
}

// ---------------------------------------------------------------------------------------
// Value checks, shared by the manifest reader and `validate_job_spec`. Each returns the
// message to report, without the location.

fn check_name(value: &str, max: usize, allowed: fn(char) -> bool, set: &str) -> CheckResult {
    if value.is_empty() {
        return Err("must not be empty".to_owned());
    }
    // The allowed sets are ASCII, so bytes and characters agree once the charset passed.
    if !value.chars().all(allowed) || value.len() > max {
        return Err(format!(
            "must be 1 to {max} characters from {set}, got {}",
            show(value)
        ));
    }
    Ok(())
}

fn check_key(value: &str) -> CheckResult {
    check_name(value, KEY_LEN_MAX, is_key_char, "[A-Za-z0-9._-]")
}

fn check_capability(value: &str) -> CheckResult {
    check_name(
        value,
        CAPABILITY_LEN_MAX,
        is_capability_char,
        "[a-z0-9._:-]",
    )
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

fn is_capability_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | ':' | '-')
}

fn check_text(value: &str, max_bytes: usize) -> CheckResult {
    if value.trim().is_empty() {
        return Err("must not be empty".to_owned());
    }
    if value.len() > max_bytes {
        return Err(format!(
            "must be at most {max_bytes} bytes, got {}",
            value.len()
        ));
    }
    Ok(())
}

fn check_title(value: &str) -> CheckResult {
    check_text(value, TITLE_LEN_MAX_BYTES)
}

fn check_payload_text(value: &str) -> CheckResult {
    check_text(value, PAYLOAD_LEN_MAX_BYTES)
}

fn check_idempotency_key(value: &str) -> CheckResult {
    check_text(value, IDEMPOTENCY_KEY_LEN_MAX_BYTES)?;
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(())
}

fn check_glob(value: &str) -> CheckResult {
    if value.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if value.len() > GLOB_LEN_MAX_BYTES {
        return Err(format!(
            "must be at most {GLOB_LEN_MAX_BYTES} bytes, got {}",
            value.len()
        ));
    }
    globset::Glob::new(value)
        .map(|_| ())
        .map_err(|e| format!("invalid glob {}: {}", show(value), e.kind()))
}

fn check_priority(value: i128) -> Result<u32, String> {
    in_range(value, 0, PRIORITY_MAX.into()).map(|v| v as u32)
}

fn check_max_attempts(value: i128) -> Result<u32, String> {
    in_range(value, 1, MAX_ATTEMPTS_MAX.into()).map(|v| v as u32)
}

/// Returns the budget in milliseconds.
fn check_wall_clock_secs(value: i128) -> Result<u64, String> {
    in_range(value, 1, WALL_CLOCK_MAX_SECS.into()).map(|secs| secs as u64 * 1_000)
}

/// Returns the budget in micro-dollars, rounded to the nearest.
fn check_cost_usd(value: f64) -> Result<u64, String> {
    let max_usd = (COST_BUDGET_MAX_MICROS / MICROS_PER_USD) as f64;
    if !value.is_finite() {
        return Err(format!("must be a finite number of USD, got {value}"));
    }
    if value < 0.0 {
        return Err(format!("must not be negative, got {value}"));
    }
    if value > max_usd {
        return Err(format!("must be at most {max_usd} USD, got {value}"));
    }
    // In range, so the product is below 2^53 and the cast is exact after rounding.
    Ok((value * MICROS_PER_USD as f64).round() as u64)
}

fn in_range(value: i128, min: i128, max: i128) -> Result<i128, String> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(format!("must be between {min} and {max}, got {value}"))
    }
}

type CheckResult = Result<(), String>;

/// Checks a list's length, then each element, at `location[i]`.
fn check_list(
    sink: &mut Sink,
    location: &str,
    items: &[String],
    max: usize,
    check: fn(&str) -> CheckResult,
) {
    if items.len() > max {
        sink.push(
            location.to_owned(),
            format!("must have at most {max} entries, got {}", items.len()),
        );
        // The elements of an oversized list are not worth reading one by one.
        return;
    }
    for (i, item) in items.iter().enumerate() {
        if let Err(message) = check(item) {
            sink.push(format!("{location}[{i}]"), message);
        }
    }
}

fn validate_spec_into(spec: &JobSpec, prefix: &str, sink: &mut Sink) {
    let at = |field: &str| join(prefix, field);
    let mut check = |location: String, result: CheckResult| {
        if let Err(message) = result {
            sink.push(location, message);
        }
    };
    check(at("key"), check_key(&spec.key));
    check(at("title"), check_title(&spec.title));
    check(at("product"), check_key(&spec.product));
    match &spec.payload {
        Payload::Command(text) => check(at("payload.command"), check_payload_text(text)),
        Payload::Prompt(text) => check(at("payload.prompt"), check_payload_text(text)),
    }
    check(
        at("priority"),
        check_priority(spec.priority.into()).map(drop),
    );
    if let Some(engine) = &spec.engine_class {
        check(at("engine_class"), check_capability(engine));
    }
    if let Some(profile) = &spec.profile {
        check(at("profile"), check_key(profile));
    }
    if let Some(key) = &spec.idempotency_key {
        check(at("idempotency_key"), check_idempotency_key(key));
    }
    check(
        at("max_attempts"),
        check_max_attempts(spec.max_attempts.into()).map(drop),
    );
    if let Some(ms) = spec.wall_clock_ms {
        let max_ms = WALL_CLOCK_MAX_SECS * 1_000;
        check(
            at("wall_clock_ms"),
            in_range(ms.into(), 1, max_ms.into()).map(drop),
        );
    }
    if let Some(micros) = spec.cost_budget_micros {
        let result = in_range(micros.into(), 0, COST_BUDGET_MAX_MICROS.into());
        check(at("cost_budget_micros"), result.map(drop));
    }

    let capabilities = at("capabilities");
    check_list(
        sink,
        &capabilities,
        &spec.capabilities,
        CAPABILITIES_MAX,
        check_capability,
    );
    if !spec.capabilities.is_sorted_by(|a, b| a < b) {
        sink.push(capabilities, "must be sorted and without duplicates");
    }
    let deps = at("deps");
    check_list(sink, &deps, &spec.deps, DEPS_MAX, check_key);
    let mut seen = BTreeSet::new();
    for dep in &spec.deps {
        if !seen.insert(dep) {
            sink.push(deps.clone(), format!("duplicate dependency {}", show(dep)));
        }
    }
    check_list(
        sink,
        &at("allowed_scope"),
        &spec.allowed_scope,
        ALLOWED_SCOPE_MAX,
        check_glob,
    );
}

// ---------------------------------------------------------------------------------------
// Reading the document.

const ROOT_FIELDS: &[&str] = &["product", "profiles", "jobs"];
const SETTINGS_FIELDS: &[&str] = &[
    "capabilities",
    "engine_class",
    "priority",
    "max_attempts",
    "wall_clock_secs",
    "cost_budget_usd",
    "preemptible",
    "review",
    "allowed_scope",
];
const JOB_ONLY_FIELDS: &[&str] = &[
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
enum Node {
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
    fn kind(&self) -> &'static str {
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

    fn from_toml(value: toml::Value) -> Node {
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

    fn from_json(value: serde_json::Value) -> Node {
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
fn parse_document(text: &str) -> Result<Node, ManifestError> {
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

fn json_error(error: &serde_json::Error) -> ManifestError {
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

fn toml_error(text: &str, error: &toml::de::Error) -> ManifestError {
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
fn line_column(text: &str, offset: usize) -> (usize, usize) {
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
struct Fields {
    location: String,
    map: BTreeMap<String, Node>,
}

impl Fields {
    fn has(&self, name: &str) -> bool {
        !matches!(self.map.get(name), None | Some(Node::Null))
    }

    /// Removes a field, with its location. Null counts as absent.
    fn take(&mut self, name: &str) -> Option<(Node, String)> {
        match self.map.remove(name)? {
            Node::Null => None,
            node => Some((node, join(&self.location, name))),
        }
    }

    /// Reports every field nobody took.
    fn finish(self, known: &[&str], sink: &mut Sink) {
        for name in self.map.keys() {
            sink.push(
                join(&self.location, name),
                format!("unknown field (expected one of: {})", known.join(", ")),
            );
        }
    }
}

fn expected(what: &str, found: &Node) -> String {
    format!("expected {what}, found {}", found.kind())
}

fn expect_table(node: Node, location: &str, sink: &mut Sink) -> Option<Fields> {
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

fn expect_string(node: Node, location: &str, sink: &mut Sink) -> Option<String> {
    match node {
        Node::Str(s) => Some(s),
        other => {
            sink.push(location.to_owned(), expected("a string", &other));
            None
        }
    }
}

fn expect_int(node: Node, location: &str, sink: &mut Sink) -> Option<i128> {
    match node {
        Node::Int(i) => Some(i),
        other => {
            sink.push(location.to_owned(), expected("an integer", &other));
            None
        }
    }
}

fn expect_number(node: Node, location: &str, sink: &mut Sink) -> Option<f64> {
    match node {
        Node::Int(i) => Some(i as f64),
        Node::Float(f) => Some(f),
        other => {
            sink.push(location.to_owned(), expected("a number", &other));
            None
        }
    }
}

fn expect_bool(node: Node, location: &str, sink: &mut Sink) -> Option<bool> {
    match node {
        Node::Bool(b) => Some(b),
        other => {
            sink.push(location.to_owned(), expected("a boolean", &other));
            None
        }
    }
}

/// An array of strings; every non-string element is reported, and then the list is `None`.
fn expect_strings(node: Node, location: &str, sink: &mut Sink) -> Option<Vec<String>> {
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
fn read<R, T>(
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
fn read_list(
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

/// The fields a profile may set and a job may override. `None` means "not set here".
#[derive(Debug, Clone, Default)]
struct Settings {
    capabilities: Option<Vec<String>>,
    engine_class: Option<String>,
    priority: Option<u32>,
    max_attempts: Option<u32>,
    wall_clock_ms: Option<u64>,
    cost_budget_micros: Option<u64>,
    preemptible: Option<bool>,
    review: Option<bool>,
    allowed_scope: Option<Vec<String>>,
}

static NO_SETTINGS: Settings = Settings {
    capabilities: None,
    engine_class: None,
    priority: None,
    max_attempts: None,
    wall_clock_ms: None,
    cost_budget_micros: None,
    preemptible: None,
    review: None,
    allowed_scope: None,
};

impl Settings {
    fn read(fields: &mut Fields, sink: &mut Sink) -> Settings {
        Settings {
            capabilities: read_list(
                fields,
                "capabilities",
                sink,
                CAPABILITIES_MAX,
                check_capability,
            )
            .map(sorted_unique),
            engine_class: read(fields, "engine_class", sink, expect_string, |s| {
                check_capability(&s).map(|()| s)
            }),
            priority: read(fields, "priority", sink, expect_int, check_priority),
            max_attempts: read(fields, "max_attempts", sink, expect_int, check_max_attempts),
            wall_clock_ms: read(
                fields,
                "wall_clock_secs",
                sink,
                expect_int,
                check_wall_clock_secs,
            ),
            cost_budget_micros: read(
                fields,
                "cost_budget_usd",
                sink,
                expect_number,
                check_cost_usd,
            ),
            preemptible: read(fields, "preemptible", sink, expect_bool, Ok),
            review: read(fields, "review", sink, expect_bool, Ok),
            allowed_scope: read_list(fields, "allowed_scope", sink, ALLOWED_SCOPE_MAX, check_glob),
        }
    }

    /// A job's own settings win over its profile's: whole values, lists are not merged.
    fn over(self, profile: &Settings) -> Settings {
        Settings {
            capabilities: self.capabilities.or_else(|| profile.capabilities.clone()),
            engine_class: self.engine_class.or_else(|| profile.engine_class.clone()),
            priority: self.priority.or(profile.priority),
            max_attempts: self.max_attempts.or(profile.max_attempts),
            wall_clock_ms: self.wall_clock_ms.or(profile.wall_clock_ms),
            cost_budget_micros: self.cost_budget_micros.or(profile.cost_budget_micros),
            preemptible: self.preemptible.or(profile.preemptible),
            review: self.review.or(profile.review),
            allowed_scope: self.allowed_scope.or_else(|| profile.allowed_scope.clone()),
        }
    }
}

struct Profile {
    settings: Settings,
}

fn read_profiles(field: Option<(Node, String)>, sink: &mut Sink) -> BTreeMap<String, Profile> {
    let mut profiles = BTreeMap::new();
    let Some((node, location)) = field else {
        return profiles;
    };
    let Some(table) = expect_table(node, &location, sink) else {
        return profiles;
    };
    if table.map.len() > MANIFEST_PROFILES_MAX {
        sink.push(
            location,
            format!(
                "too many profiles: {} (at most {MANIFEST_PROFILES_MAX})",
                table.map.len()
            ),
        );
        return profiles;
    }
    for (name, node) in table.map {
        let location = match check_key(&name) {
            Ok(()) => format!("profiles.{name}"),
            Err(message) => {
                let location = format!("profiles[{}]", show(&name));
                sink.push(location.clone(), format!("profile name {message}"));
                location
            }
        };
        let settings = match expect_table(node, &location, sink) {
            Some(mut fields) => {
                let settings = Settings::read(&mut fields, sink);
                fields.finish(SETTINGS_FIELDS, sink);
                settings
            }
            None => Settings::default(),
        };
        // Kept even when broken, so its jobs are not also told it does not exist.
        profiles.insert(name, Profile { settings });
    }
    profiles
}

/// What was read of one job. The graph checks need the key and deps even from a job with
/// other problems; `draft` exists only when the job itself had none.
struct ReadJob {
    key: Option<String>,
    deps: Vec<String>,
    profile: Option<String>,
    has_product: bool,
    draft: Option<Draft>,
}

struct Draft {
    key: String,
    title: String,
    payload: Payload,
    product: Option<String>,
    profile: Option<String>,
    deps: Vec<String>,
    idempotency_key: Option<String>,
    settings: Settings,
}

impl Draft {
    fn resolve(self, product: String, profile: &Settings) -> JobSpec {
        let settings = self.settings.over(profile);
        JobSpec {
            key: self.key,
            title: self.title,
            product,
            payload: self.payload,
            priority: settings.priority.unwrap_or(PRIORITY_DEFAULT),
            capabilities: settings.capabilities.unwrap_or_default(),
            engine_class: settings.engine_class,
            profile: self.profile,
            deps: self.deps,
            idempotency_key: self.idempotency_key,
            allowed_scope: settings.allowed_scope.unwrap_or_default(),
            max_attempts: settings.max_attempts.unwrap_or(MAX_ATTEMPTS_DEFAULT),
            wall_clock_ms: settings.wall_clock_ms,
            cost_budget_micros: settings.cost_budget_micros,
            preemptible: settings.preemptible.unwrap_or(true),
            review: settings.review.unwrap_or(false),
        }
    }
}

fn read_job(node: Node, location: &str, sink: &mut Sink) -> ReadJob {
    let before = sink.count();
    let Some(mut fields) = expect_table(node, location, sink) else {
        return ReadJob {
            key: None,
            deps: Vec::new(),
            profile: None,
            has_product: false,
            draft: None,
        };
    };
    let required = |fields: &Fields, name: &str, sink: &mut Sink| {
        if !fields.has(name) {
            sink.push(join(location, name), "missing required field");
        }
    };
    required(&fields, "key", sink);
    required(&fields, "title", sink);
    let key = read(&mut fields, "key", sink, expect_string, |s| {
        check_key(&s).map(|()| s)
    });
    let title = read(&mut fields, "title", sink, expect_string, |s| {
        check_title(&s).map(|()| s)
    });

    let (has_command, has_prompt) = (fields.has("command"), fields.has("prompt"));
    match (has_command, has_prompt) {
        (true, true) => sink.push(
            location.to_owned(),
            "set exactly one of `command` and `prompt`, not both",
        ),
        (false, false) => sink.push(
            location.to_owned(),
            "missing payload: set `command` (a shell command) or `prompt` (an agent prompt)",
        ),
        _ => {}
    }
    let payload_text = |s: String| check_payload_text(&s).map(|()| s);
    let command = read(&mut fields, "command", sink, expect_string, payload_text);
    let prompt = read(&mut fields, "prompt", sink, expect_string, payload_text);
    let payload = match (command, prompt) {
        (Some(command), None) if !has_prompt => Some(Payload::Command(command)),
        (None, Some(prompt)) if !has_command => Some(Payload::Prompt(prompt)),
        _ => None,
    };

    let has_product = fields.has("product");
    let product = read(&mut fields, "product", sink, expect_string, |s| {
        check_key(&s).map(|()| s)
    });
    let profile = read(&mut fields, "profile", sink, expect_string, |s| {
        check_key(&s).map(|()| s)
    });
    // Whether each dependency exists is checked with the whole graph, in `check_graph`.
    let deps = read_list(&mut fields, "deps", sink, DEPS_MAX, |_| Ok(()));
    let idempotency_key = read(&mut fields, "idempotency_key", sink, expect_string, |s| {
        check_idempotency_key(&s).map(|()| s)
    });
    let settings = Settings::read(&mut fields, sink);
    let known: Vec<&str> = JOB_ONLY_FIELDS
        .iter()
        .chain(SETTINGS_FIELDS)
        .copied()
        .collect();
    fields.finish(&known, sink);

    let deps = deps.unwrap_or_default();
    let clean = sink.count() == before;
    let draft = match (clean, &key, title, payload) {
        (true, Some(key), Some(title), Some(payload)) => Some(Draft {
            key: key.clone(),
            title,
            payload,
            product,
            profile: profile.clone(),
            deps: deps.clone(),
            idempotency_key,
            settings,
        }),
        _ => None,
    };
    ReadJob {
        key,
        deps,
        profile,
        has_product,
        draft,
    }
}

/// Checks keys are unique and dependencies exist, are not the job itself, and form no
/// cycle. Returns the job indices in topological order when they form a DAG.
fn check_graph(jobs: &[ReadJob], sink: &mut Sink) -> Option<Vec<usize>> {
    let mut first_with_key: BTreeMap<&str, usize> = BTreeMap::new();
    // Whether job i is the first to use its key: only those enter the graph, so that a
    // duplicate, already reported, does not also cause confusing dependency errors.
    let mut owns_key = vec![false; jobs.len()];
    for (i, job) in jobs.iter().enumerate() {
        let Some(key) = job.key.as_deref() else {
            continue;
        };
        match first_with_key.entry(key) {
            Entry::Vacant(entry) => {
                entry.insert(i);
                owns_key[i] = true;
            }
            Entry::Occupied(entry) => sink.push(
                format!("jobs[{i}].key"),
                format!(
                    "duplicate key {} (first used by jobs[{}])",
                    show(key),
                    entry.get()
                ),
            ),
        }
    }
    let job_location = |i: usize| match (&jobs[i].key, owns_key[i]) {
        (Some(key), true) => format!("jobs[key={key}]"),
        _ => format!("jobs[{i}]"),
    };

    let mut edges = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let mut seen = BTreeSet::new();
        for dep in &job.deps {
            let problem = if !seen.insert(dep.as_str()) {
                format!("duplicate dependency {}", show(dep))
            } else if job.key.as_deref() == Some(dep.as_str()) {
                "a job cannot depend on itself".to_owned()
            } else if let Some(&parent) = first_with_key.get(dep.as_str()) {
                if owns_key[i] {
                    edges.push((i, parent));
                }
                continue;
            } else {
                format!("unknown dependency {}: no job has this key", show(dep))
            };
            sink.push(format!("{}.deps", job_location(i)), problem);
        }
    }

    // Indices as graph keys make the topological order fall back to document order.
    let nodes: Vec<usize> = (0..jobs.len()).collect();
    match dag::topo_order(&nodes, &edges) {
        Ok(order) => Some(order),
        Err(cycle) => {
            let names: Vec<&str> = cycle
                .iter()
                .map(|&i| jobs[i].key.as_deref().unwrap_or("?"))
                .collect();
            sink.push(
                format!("{}.deps", job_location(cycle[0])),
                format!("cycle: {}", names.join(" -> ")),
            );
            None
        }
    }
}

/// Collects problems up to [`MANIFEST_ERRORS_MAX`], then counts the rest.
#[derive(Default)]
struct Sink {
    errors: Vec<ManifestError>,
    more: usize,
}

impl Sink {
    fn push(&mut self, location: String, message: impl Into<String>) {
        if self.errors.len() < MANIFEST_ERRORS_MAX {
            self.errors.push(ManifestError {
                location,
                message: message.into(),
            });
        } else {
            self.more += 1;
        }
    }

    fn count(&self) -> usize {
        self.errors.len() + self.more
    }

    fn is_empty(&self) -> bool {
        self.count() == 0
    }

    fn into_errors(mut self) -> ManifestErrors {
        if self.more > 0 {
            self.errors.push(ManifestError {
                location: "manifest".to_owned(),
                message: format!("{} more problems not listed", self.more),
            });
        }
        ManifestErrors(self.errors)
    }
}

fn join(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

/// A user-supplied string for an error message: quoted, escaped and cut short, since it
/// may be arbitrarily long or hold control characters.
fn show(value: &str) -> String {
    const SHOWN_CHARS_MAX: usize = 64;
    if value.chars().count() <= SHOWN_CHARS_MAX {
        format!("{value:?}")
    } else {
        let cut: String = value.chars().take(SHOWN_CHARS_MAX).collect();
        format!("{cut:?}…")
    }
}

/// The first few names of a list, for a hint in a message.
fn some_names<'a>(names: impl ExactSizeIterator<Item = &'a String>) -> String {
    const SHOWN_NAMES_MAX: usize = 10;
    let count = names.len();
    if count == 0 {
        return "none".to_owned();
    }
    let shown: Vec<&str> = names.take(SHOWN_NAMES_MAX).map(String::as_str).collect();
    let rest = count - shown.len();
    if rest == 0 {
        shown.join(", ")
    } else {
        format!("{} and {rest} more", shown.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FULL: &str = r#"
product = "payments"

[profiles.agent]
capabilities = ["rust", "linux"]
engine_class = "claude"
priority = 50
max_attempts = 3
wall_clock_secs = 3600
cost_budget_usd = 5.0
preemptible = true
review = false
allowed_scope = ["src/**"]

[[jobs]]
key = "build-api"
title = "Build the API"
command = "cargo build"
profile = "agent"
priority = 80
capabilities = ["rust"]
deps = ["schema"]
idempotency_key = "payments/build-api/v1"
allowed_scope = ["api/**"]
wall_clock_secs = 600
cost_budget_usd = 2.5

[[jobs]]
key = "schema"
title = "Design the schema"
prompt = "Write the schema"
product = "ledger"
preemptible = false
review = true
"#;

    fn errors_of(text: &str) -> Vec<ManifestError> {
        match parse_manifest(text) {
            Ok(manifest) => panic!("expected errors, got {manifest:?}"),
            Err(errors) => errors.0,
        }
    }

    fn has_error(errors: &[ManifestError], location: &str, message_part: &str) -> bool {
        errors
            .iter()
            .any(|e| e.location == location && e.message.contains(message_part))
    }

    #[track_caller]
    fn assert_error(errors: &[ManifestError], location: &str, message_part: &str) {
        assert!(
            has_error(errors, location, message_part),
            "no error at {location} containing {message_part:?} in:\n{}",
            ManifestErrors(errors.to_vec())
        );
    }

    fn job(key: &str, extra: &str) -> String {
        format!("[[jobs]]\nkey = \"{key}\"\ntitle = \"t\"\ncommand = \"true\"\n{extra}\n")
    }

    fn manifest(jobs: &[String]) -> String {
        format!("product = \"p\"\n{}", jobs.concat())
    }

    #[test]
    fn resolves_a_full_manifest_with_profile_defaults_applied() {
        let manifest = parse_manifest(FULL).expect("valid manifest");
        let schema = &manifest.jobs[0];
        let build = &manifest.jobs[1];
        assert_eq!(
            *build,
            JobSpec {
                key: "build-api".into(),
                title: "Build the API".into(),
                product: "payments".into(),
                payload: Payload::Command("cargo build".into()),
                priority: 80,
                capabilities: vec!["rust".into()],
                engine_class: Some("claude".into()),
                profile: Some("agent".into()),
                deps: vec!["schema".into()],
                idempotency_key: Some("payments/build-api/v1".into()),
                allowed_scope: vec!["api/**".into()],
                max_attempts: 3,
                wall_clock_ms: Some(600_000),
                cost_budget_micros: Some(2_500_000),
                preemptible: true,
                review: false,
            }
        );
        assert_eq!(schema.key, "schema");
        assert_eq!(schema.product, "ledger");
        assert_eq!(schema.payload, Payload::Prompt("Write the schema".into()));
        assert!(!schema.preemptible);
        assert!(schema.review);
    }

    #[test]
    fn job_values_replace_profile_values_instead_of_merging() {
        let text = format!(
            "product = \"p\"\n[profiles.base]\ncapabilities = [\"linux\", \"rust\"]\n\
             wall_clock_secs = 60\nallowed_scope = [\"a/**\"]\n{}{}",
            job("own", "profile = \"base\"\ncapabilities = [\"gpu\"]"),
            job("inherits", "profile = \"base\""),
        );
        let manifest = parse_manifest(&text).expect("valid manifest");
        assert_eq!(manifest.jobs[0].capabilities, vec!["gpu".to_owned()]);
        assert_eq!(manifest.jobs[0].allowed_scope, vec!["a/**".to_owned()]);
        assert_eq!(
            manifest.jobs[1].capabilities,
            vec!["linux".to_owned(), "rust".to_owned()]
        );
        assert_eq!(manifest.jobs[1].wall_clock_ms, Some(60_000));
    }

    #[test]
    fn applies_built_in_defaults_when_nothing_sets_a_field() {
        let manifest = parse_manifest(&manifest(&[job("a", "")])).expect("valid manifest");
        let spec = &manifest.jobs[0];
        assert_eq!(spec.priority, PRIORITY_DEFAULT);
        assert_eq!(spec.max_attempts, MAX_ATTEMPTS_DEFAULT);
        assert!(spec.preemptible);
        assert!(!spec.review);
        assert_eq!(spec.capabilities, Vec::<String>::new());
        assert_eq!(spec.engine_class, None);
        assert_eq!(spec.profile, None);
        assert_eq!(spec.wall_clock_ms, None);
        assert_eq!(spec.cost_budget_micros, None);
    }

    #[test]
    fn sorts_and_deduplicates_capabilities() {
        let text = manifest(&[job("a", "capabilities = [\"rust\", \"linux\", \"rust\"]")]);
        let manifest = parse_manifest(&text).expect("valid manifest");
        assert_eq!(
            manifest.jobs[0].capabilities,
            vec!["linux".to_owned(), "rust".to_owned()]
        );
    }

    #[test]
    fn orders_parents_first_and_keeps_document_order_otherwise() {
        let text = manifest(&[
            job("deploy", "deps = [\"test\", \"build\"]"),
            job("zeta", ""),
            job("test", "deps = [\"build\"]"),
            job("build", ""),
            job("alpha", ""),
        ]);
        let keys: Vec<String> = parse_manifest(&text)
            .expect("valid manifest")
            .jobs
            .into_iter()
            .map(|j| j.key)
            .collect();
        assert_eq!(keys, ["zeta", "build", "test", "deploy", "alpha"]);
    }

    #[test]
    fn accepts_json_with_the_same_shape() {
        let json = r#"
            { "product": "payments",
              "profiles": { "agent": { "engine_class": "claude", "cost_budget_usd": 1 } },
              "jobs": [
                { "key": "b", "title": "B", "prompt": "do b", "profile": "agent", "deps": ["a"] },
                { "key": "a", "title": "A", "command": "make", "wall_clock_secs": null }
              ] }"#;
        let manifest = parse_manifest(json).expect("valid json manifest");
        assert_eq!(manifest.jobs[0].key, "a");
        assert_eq!(manifest.jobs[1].engine_class.as_deref(), Some("claude"));
        assert_eq!(manifest.jobs[1].cost_budget_micros, Some(1_000_000));
        assert_eq!(manifest.jobs[0].wall_clock_ms, None, "null means absent");
    }

    #[test]
    fn reports_every_problem_at_once_with_its_location() {
        let text = r#"
product = "p"
[profiles.agent]
allowed_scope = ["src/**", "a[", ""]
[[jobs]]
key = "bad key"
title = ""
command = "x"
priority = 1001
max_attempts = 0
[[jobs]]
key = "ok"
title = "fine"
prompt = "p"
profile = "nope"
capabilities = ["Rust", "linux"]
cost_budget_usd = -1
"#;
        let errors = errors_of(text);
        assert_error(&errors, "profiles.agent.allowed_scope[1]", "invalid glob");
        assert_error(
            &errors,
            "profiles.agent.allowed_scope[2]",
            "must not be empty",
        );
        assert_error(&errors, "jobs[0].key", "[A-Za-z0-9._-]");
        assert_error(&errors, "jobs[0].title", "must not be empty");
        assert_error(&errors, "jobs[0].priority", "between 0 and 1000");
        assert_error(&errors, "jobs[0].max_attempts", "between 1 and 100");
        assert_error(
            &errors,
            "jobs[1].profile",
            "unknown profile \"nope\" (defined: agent)",
        );
        assert_error(&errors, "jobs[1].capabilities[0]", "[a-z0-9._:-]");
        assert_error(&errors, "jobs[1].cost_budget_usd", "must not be negative");
        assert_eq!(errors.len(), 9, "{}", ManifestErrors(errors.clone()));
    }

    #[test]
    fn refuses_unknown_fields_at_every_level() {
        let text = "product = \"p\"\nversion = 2\n[profiles.x]\ncolour = \"red\"\n\
                    [[jobs]]\nkey = \"a\"\ntitle = \"t\"\ncommand = \"c\"\npriorty = 3\n";
        let errors = errors_of(text);
        assert_error(&errors, "version", "unknown field");
        assert_error(&errors, "profiles.x.colour", "unknown field");
        assert_error(
            &errors,
            "jobs[0].priorty",
            "unknown field (expected one of: key, title",
        );
        assert_eq!(errors.len(), 3);
    }

    #[test]
    fn requires_exactly_one_of_command_and_prompt() {
        let both = "product = \"p\"\n[[jobs]]\nkey = \"a\"\ntitle = \"t\"\ncommand = \"c\"\nprompt = \"p\"\n";
        assert_error(&errors_of(both), "jobs[0]", "not both");
        let neither = "product = \"p\"\n[[jobs]]\nkey = \"a\"\ntitle = \"t\"\n";
        assert_error(&errors_of(neither), "jobs[0]", "missing payload");
        let empty = "product = \"p\"\n[[jobs]]\nkey = \"a\"\ntitle = \"t\"\ncommand = \"  \"\n";
        assert_error(&errors_of(empty), "jobs[0].command", "must not be empty");
    }

    #[test]
    fn refuses_missing_and_duplicate_keys() {
        let text = "product = \"p\"\n[[jobs]]\ntitle = \"t\"\ncommand = \"c\"\n".to_owned()
            + &job("a", "")
            + &job("a", "");
        let errors = errors_of(&text);
        assert_error(&errors, "jobs[0].key", "missing required field");
        assert_error(
            &errors,
            "jobs[2].key",
            "duplicate key \"a\" (first used by jobs[1])",
        );
        assert_eq!(errors.len(), 2);
    }

    #[test]
    fn refuses_keys_outside_the_charset_or_too_long() {
        for bad in ["a b", "é", "a/b", &"k".repeat(KEY_LEN_MAX + 1)] {
            let text = manifest(&[job(bad, "")]);
            assert_error(
                &errors_of(&text),
                "jobs[0].key",
                "characters from [A-Za-z0-9._-]",
            );
        }
        let longest = "k".repeat(KEY_LEN_MAX);
        assert!(parse_manifest(&manifest(&[job(&longest, "")])).is_ok());
    }

    #[test]
    fn refuses_unknown_and_self_dependencies() {
        let text = manifest(&[
            job("a", "deps = [\"a\", \"ghost\", \"b\", \"b\"]"),
            job("b", ""),
        ]);
        let errors = errors_of(&text);
        assert_error(&errors, "jobs[key=a].deps", "cannot depend on itself");
        assert_error(&errors, "jobs[key=a].deps", "unknown dependency \"ghost\"");
        assert_error(&errors, "jobs[key=a].deps", "duplicate dependency \"b\"");
        assert_eq!(errors.len(), 3);
    }

    #[test]
    fn names_a_dependency_cycle_in_order() {
        let text = manifest(&[
            job("x", ""),
            job("a", "deps = [\"b\"]"),
            job("b", "deps = [\"c\", \"x\"]"),
            job("c", "deps = [\"a\"]"),
        ]);
        let errors = errors_of(&text);
        assert_eq!(
            errors,
            vec![ManifestError {
                location: "jobs[key=a].deps".into(),
                message: "cycle: a -> b -> c -> a".into(),
            }]
        );
    }

    #[test]
    fn refuses_bad_capability_and_engine_names() {
        let text = manifest(&[job(
            "a",
            "capabilities = [\"ok:1\", \"UPPER\", \"\"]\nengine_class = \"Claude Code\"",
        )]);
        let errors = errors_of(&text);
        assert_error(&errors, "jobs[0].capabilities[1]", "[a-z0-9._:-]");
        assert_error(&errors, "jobs[0].capabilities[2]", "must not be empty");
        assert_error(&errors, "jobs[0].engine_class", "[a-z0-9._:-]");
        assert_eq!(errors.len(), 3);
    }

    #[test]
    fn refuses_nan_infinite_and_negative_costs() {
        for (value, message) in [("nan", "finite"), ("inf", "finite"), ("-0.5", "negative")] {
            let text = manifest(&[job("a", &format!("cost_budget_usd = {value}"))]);
            assert_error(&errors_of(&text), "jobs[0].cost_budget_usd", message);
        }
        let too_much = manifest(&[job("a", "cost_budget_usd = 1e7")]);
        assert_error(&errors_of(&too_much), "jobs[0].cost_budget_usd", "at most");
    }

    #[test]
    fn converts_seconds_to_milliseconds_and_dollars_to_micros() {
        let text = manifest(&[job(
            "a",
            "wall_clock_secs = 90\ncost_budget_usd = 0.1234567",
        )]);
        let spec = &parse_manifest(&text).expect("valid").jobs[0];
        assert_eq!(spec.wall_clock_ms, Some(90_000));
        assert_eq!(
            spec.cost_budget_micros,
            Some(123_457),
            "rounded to the nearest micro"
        );
    }

    #[test]
    fn refuses_out_of_range_integers_and_wrong_types() {
        let text = manifest(&[job(
            "a",
            "priority = -1\nmax_attempts = 101\nwall_clock_secs = 0\npreemptible = \"yes\"\n\
             deps = [1]\ntitle2 = 1",
        )]);
        let errors = errors_of(&text);
        assert_error(&errors, "jobs[0].priority", "got -1");
        assert_error(&errors, "jobs[0].max_attempts", "got 101");
        assert_error(&errors, "jobs[0].wall_clock_secs", "got 0");
        assert_error(
            &errors,
            "jobs[0].preemptible",
            "expected a boolean, found a string",
        );
        assert_error(
            &errors,
            "jobs[0].deps[0]",
            "expected a string, found an integer",
        );
        assert_error(&errors, "jobs[0].title2", "unknown field");
        let float = manifest(&[job("a", "priority = 5.0")]);
        assert_error(
            &errors_of(&float),
            "jobs[0].priority",
            "expected an integer, found a float",
        );
    }

    #[test]
    fn refuses_more_than_the_job_limit() {
        let jobs: String = (0..=MANIFEST_JOBS_MAX)
            .map(|i| format!("{{key = \"j{i}\"}},"))
            .collect();
        let text = format!("product = \"p\"\njobs = [{jobs}]");
        let errors = errors_of(&text);
        assert_eq!(errors.len(), 1);
        assert_error(&errors, "jobs", "too many jobs: 10001 (at most 10000)");
    }

    #[test]
    fn refuses_more_than_the_profile_limit() {
        let profiles: String = (0..=MANIFEST_PROFILES_MAX)
            .map(|i| format!("[profiles.p{i}]\n"))
            .collect();
        let errors = errors_of(&(manifest(&[job("a", "profile = \"zz\"")]) + &profiles));
        assert_error(&errors, "profiles", "too many profiles: 257 (at most 256)");
        assert_error(&errors, "jobs[0].profile", "(defined: none)");
        assert_eq!(errors.len(), 2);
    }

    #[test]
    fn hints_at_the_first_few_defined_profiles() {
        let profiles: String = (0..12).map(|i| format!("[profiles.p{i:02}]\n")).collect();
        let errors = errors_of(&(manifest(&[job("a", "profile = \"zz\"")]) + &profiles));
        assert_error(
            &errors,
            "jobs[0].profile",
            "(defined: p00, p01, p02, p03, p04, p05, p06, p07, p08, p09 and 2 more)",
        );
    }

    #[test]
    fn refuses_an_empty_manifest() {
        assert_error(&errors_of("product = \"p\""), "jobs", "at least one job");
        assert_error(
            &errors_of("product = \"p\"\njobs = []"),
            "jobs",
            "at least one job",
        );
        let both = errors_of("product = \"a b\"");
        assert_error(&both, "product", "[A-Za-z0-9._-]");
        assert_error(&both, "jobs", "at least one job");
    }

    #[test]
    fn requires_a_product_when_a_job_names_none() {
        let text = job("a", "") + &job("b", "product = \"q\"");
        let errors = errors_of(&text);
        assert_error(&errors, "jobs[0].product", "missing");
        assert_eq!(errors.len(), 1);
        let spec = &parse_manifest(&(job("b", "product = \"q\"")))
            .expect("valid")
            .jobs[0];
        assert_eq!(spec.product, "q");
    }

    #[test]
    fn locates_toml_syntax_errors_by_line_and_column() {
        let errors = errors_of("product = \"p\"\n[[jobs]\nkey = 1\n");
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].location.starts_with("line 2, column "),
            "{:?}",
            errors[0]
        );
    }

    #[test]
    fn locates_json_syntax_errors_by_line_and_column() {
        let errors = errors_of("{\n  \"product\": \"p\",\n  \"jobs\": [,]\n}");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].location, "line 3, column 12");
        assert!(!errors[0].message.contains("at line"), "{:?}", errors[0]);
    }

    #[test]
    fn survives_deeply_nested_input() {
        let toml = format!("product = {}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(errors_of(&toml).len(), 1);
        let json = format!(
            "{{\"product\": {}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(errors_of(&json).len(), 1);
    }

    #[test]
    fn caps_the_listed_problems_and_counts_the_rest() {
        let capabilities = vec!["\"BAD\""; CAPABILITIES_MAX].join(", ");
        let jobs: Vec<String> = (0..20)
            .map(|i| {
                job(
                    &format!("j{i}"),
                    &format!("capabilities = [{capabilities}]"),
                )
            })
            .collect();
        let errors = errors_of(&manifest(&jobs));
        assert_eq!(errors.len(), MANIFEST_ERRORS_MAX + 1);
        let last = errors.last().expect("a summary line");
        assert_eq!(last.location, "manifest");
        assert_eq!(
            last.message,
            format!("{} more problems not listed", 20 * 64 - 1_000)
        );
    }

    #[test]
    fn parses_a_ten_thousand_deep_chain() {
        let jobs: Vec<String> = (0..MANIFEST_JOBS_MAX)
            .map(|i| match i {
                0 => job("j0", ""),
                _ => job(&format!("j{i}"), &format!("deps = [\"j{}\"]", i - 1)),
            })
            .rev()
            .collect();
        let manifest = parse_manifest(&manifest(&jobs)).expect("a chain is a DAG");
        assert_eq!(manifest.jobs.len(), MANIFEST_JOBS_MAX);
        assert_eq!(manifest.jobs[0].key, "j0");
        assert_eq!(
            manifest.jobs[MANIFEST_JOBS_MAX - 1].key,
            format!("j{}", MANIFEST_JOBS_MAX - 1)
        );
    }

    #[test]
    fn displays_one_line_per_problem() {
        let errors = ManifestErrors(vec![
            ManifestError {
                location: "jobs[0].key".into(),
                message: "missing required field".into(),
            },
            ManifestError {
                location: "jobs[1]".into(),
                message: "missing payload".into(),
            },
        ]);
        assert_eq!(
            errors.to_string(),
            "jobs[0].key: missing required field\njobs[1]: missing payload"
        );
    }

    #[test]
    fn job_spec_json_takes_the_manifest_defaults() {
        let json = r#"{"key": "k", "title": "t", "product": "p",
                       "payload": {"command": "make"}, "capabilities": ["rust", "linux", "rust"],
                       "deps": ["0190b6c4-4d5e-7f00-8000-000000000001"]}"#;
        let spec = parse_job_spec_json(json).expect("valid spec");
        assert_eq!(spec.priority, PRIORITY_DEFAULT);
        assert_eq!(spec.max_attempts, MAX_ATTEMPTS_DEFAULT);
        assert!(spec.preemptible);
        assert!(!spec.review);
        assert_eq!(spec.capabilities, ["linux", "rust"]);
    }

    #[test]
    fn job_spec_json_refuses_unknown_fields() {
        let json = r#"{"key": "k", "title": "t", "product": "p", "payload": {"command": "c"}, "colour": 1}"#;
        let errors = parse_job_spec_json(json).expect_err("unknown field").0;
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].message.contains("unknown field `colour`"),
            "{errors:?}"
        );
        assert!(
            errors[0].location.starts_with("line 1, column "),
            "{errors:?}"
        );
    }

    #[test]
    fn validate_job_spec_reports_every_problem_by_field() {
        let spec = JobSpec {
            key: "".into(),
            title: "t".into(),
            product: "p q".into(),
            payload: Payload::Prompt("".into()),
            priority: 5_000,
            capabilities: vec!["b".into(), "a".into()],
            engine_class: None,
            profile: None,
            deps: vec!["x".into(), "x".into()],
            idempotency_key: Some("a\nb".into()),
            allowed_scope: vec!["ok/**".into(), "{".into()],
            max_attempts: 0,
            wall_clock_ms: Some(0),
            cost_budget_micros: Some(COST_BUDGET_MAX_MICROS + 1),
            preemptible: true,
            review: false,
        };
        let errors = validate_job_spec(&spec).expect_err("many problems").0;
        for (location, part) in [
            ("key", "must not be empty"),
            ("product", "[A-Za-z0-9._-]"),
            ("payload.prompt", "must not be empty"),
            ("priority", "between 0 and 1000"),
            ("capabilities", "sorted"),
            ("deps", "duplicate dependency \"x\""),
            ("idempotency_key", "control characters"),
            ("allowed_scope[1]", "invalid glob"),
            ("max_attempts", "between 1 and 100"),
            ("wall_clock_ms", "got 0"),
            ("cost_budget_micros", "between 0 and"),
        ] {
            assert_error(&errors, location, part);
        }
        assert_eq!(errors.len(), 11, "{}", ManifestErrors(errors.clone()));
    }

    #[test]
    fn every_resolved_job_passes_single_job_validation() {
        for spec in parse_manifest(FULL).expect("valid").jobs {
            assert_eq!(validate_job_spec(&spec), Ok(()));
        }
    }

    #[test]
    fn job_spec_round_trips_through_json() {
        for spec in parse_manifest(FULL).expect("valid").jobs {
            let json = serde_json::to_string(&spec).expect("serializes");
            assert_eq!(parse_job_spec_json(&json), Ok(spec));
        }
    }

    /// Random dependency graphs over up to 12 jobs, each edge given as (job, dep) indices.
    fn random_graph() -> impl Strategy<Value = (usize, Vec<(usize, usize)>)> {
        (1usize..=12).prop_flat_map(|n| (Just(n), prop::collection::vec((0..n, 0..n), 0..=24)))
    }

    proptest! {
        #[test]
        fn accepts_exactly_the_acyclic_manifests_and_orders_parents_first(
            (n, edges) in random_graph(),
        ) {
            let mut deps: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
            for &(job, dep) in &edges {
                if job != dep {
                    deps[job].insert(dep);
                }
            }
            let jobs: Vec<String> = (0..n)
                .map(|i| {
                    let list: Vec<String> = deps[i].iter().map(|d| format!("\"j{d}\"")).collect();
                    job(&format!("j{i}"), &format!("deps = [{}]", list.join(", ")))
                })
                .collect();
            let flat: Vec<(usize, usize)> =
                (0..n).flat_map(|i| deps[i].iter().map(move |&d| (i, d))).collect();
            let nodes: Vec<usize> = (0..n).collect();
            let cyclic = dag::find_cycle(&nodes, &flat).is_some();
            match parse_manifest(&manifest(&jobs)) {
                Ok(parsed) => {
                    prop_assert!(!cyclic);
                    let position = |key: &str| parsed.jobs.iter().position(|j| j.key == key).unwrap();
                    for spec in &parsed.jobs {
                        for dep in &spec.deps {
                            prop_assert!(position(dep) < position(&spec.key));
                        }
                    }
                }
                Err(errors) => {
                    prop_assert!(cyclic);
                    prop_assert_eq!(errors.0.len(), 1);
                    prop_assert!(errors.0[0].message.starts_with("cycle: "));
                }
            }
        }
    }
}
