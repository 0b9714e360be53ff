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

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use crate::checkout::RepoSpec;
use crate::dag;
use crate::sandbox::SandboxSpec;

mod checks;
mod document;
mod drafts;

use checks::*;
use document::*;
use drafts::*;

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
/// Most labels one job may carry.
pub const LABELS_MAX: usize = 16;
/// Most dependencies of one job. Bounded because a job record must fit the store's value
/// limit (100 KB).
pub const DEPS_MAX: usize = 1_000;
/// Most path globs in one job's allowed scope.
pub const ALLOWED_SCOPE_MAX: usize = 256;
/// Artifact globs of one job.
pub const ARTIFACT_GLOBS_MAX: usize = 32;
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
/// Checks a product's or a profile's name as a manifest does (secrets' scopes use it).
pub fn check_product_name(value: &str) -> Result<(), String> {
    checks::check_key(value)
}

/// Priority of a job that names none, directly or through its profile.
pub const PRIORITY_DEFAULT: u32 = 50;
/// Attempts of a job that names none.
pub const MAX_ATTEMPTS_DEFAULT: u32 = 3;
/// Approvals a review needs unless the job says.
pub const APPROVALS_DEFAULT: u32 = 1;
/// Most approvals a review may need.
pub const APPROVALS_MAX: u32 = 10;
/// Most reviewers a job may name.
pub const REVIEWERS_MAX: usize = 16;
/// Longest reviewer name, in bytes (a token's name).
pub const REVIEWER_LEN_MAX_BYTES: usize = 128;
/// Most attempts a job may ask for.
pub const MAX_ATTEMPTS_MAX: u32 = 100;
/// Longest wall-clock budget: 30 days.
pub const WALL_CLOCK_MAX_SECS: u64 = 30 * 24 * 3_600;
/// Largest cost budget: one million USD, in micro-dollars.
pub const COST_BUDGET_MAX_MICROS: u64 = 1_000_000 * MICROS_PER_USD;

const MICROS_PER_USD: u64 = 1_000_000;

/// What a job runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
    /// Labels (a team, say) that budgets may narrow to. Sorted and deduplicated.
    #[serde(default, deserialize_with = "sorted_unique_strings")]
    pub labels: Vec<String>,
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
    /// Workspace globs whose files the agent saves as the attempt's artifacts when it ends.
    #[serde(default)]
    pub artifacts: Vec<String>,
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
    /// Approvals a review needs before the job ships (1..=10); one rejection sends it back.
    #[serde(default = "default_approvals")]
    pub approvals: u32,
    /// Who may approve or reject it (token names); empty: any operator.
    #[serde(default)]
    pub reviewers: Vec<String>,
    /// Jobs sharing it hold at most the limit set on it (`PUT /v1/limits/{key}`) at once.
    #[serde(default)]
    pub concurrency_key: Option<String>,
    /// What a factory may hold warm for the job (a repository, a cache key); factories that
    /// report it warm score higher.
    #[serde(default)]
    pub affinity: Option<String>,
    /// What the job may reach and hold where it runs: the network, memory and CPU.
    #[serde(default)]
    pub sandbox: SandboxSpec,
    /// The git repository the job works in, checked out at `rev` as its working directory.
    #[serde(default)]
    pub repo: Option<RepoSpec>,
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
    // (product, idempotency key) → the job that has it first.
    let mut keyed: BTreeMap<(String, String), usize> = BTreeMap::new();
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
                check_key_unique(&mut keyed, &spec, i, &mut sink);
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

/// Two jobs of one manifest under one idempotency key (in one product) cannot both be made:
/// the later one would silently be the earlier. Each later one is reported, with the job
/// that has the key first.
fn check_key_unique(
    keyed: &mut BTreeMap<(String, String), usize>,
    spec: &JobSpec,
    i: usize,
    sink: &mut Sink,
) {
    let Some(key) = &spec.idempotency_key else {
        return;
    };
    match keyed.entry((spec.product.clone(), key.clone())) {
        Entry::Vacant(v) => {
            v.insert(i);
        }
        Entry::Occupied(o) => sink.push(
            format!("jobs[{i}].idempotency_key"),
            format!(
                "{} is also the key of jobs[{}]: each job needs its own",
                show(key),
                o.get()
            ),
        ),
    }
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

/// Checks one capability or engine class name (the rule a job's `capabilities` follow), so
/// that what a factory offers can be matched against what jobs need.
pub fn check_capability_name(value: &str) -> Result<(), String> {
    check_capability(value)
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

fn default_approvals() -> u32 {
    APPROVALS_DEFAULT
}

fn default_true() -> bool {
    true
}

/// Reads a list of strings sorted and deduplicated, as a spec's capabilities and labels are
/// kept; for `deserialize_with`, also on the spec shapes older records were stored in.
pub fn sorted_unique_strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Vec::<String>::deserialize(d).map(sorted_unique)
}

fn sorted_unique(mut items: Vec<String>) -> Vec<String> {
    items.sort_unstable();
    items.dedup();
    items
}

#[cfg(test)]
mod tests;

impl JobSpec {
    /// A spec with every optional field at its default: priority 50, three attempts,
    /// preemptible, no review (one approval when on), no capabilities, labels, limits or
    /// budget. Check it with [`validate_job_spec`] before trusting it.
    pub fn new(key: &str, title: &str, product: &str, payload: Payload) -> JobSpec {
        JobSpec {
            key: key.into(),
            title: title.into(),
            product: product.into(),
            payload,
            priority: PRIORITY_DEFAULT,
            capabilities: Vec::new(),
            labels: Vec::new(),
            engine_class: None,
            profile: None,
            deps: Vec::new(),
            idempotency_key: None,
            allowed_scope: Vec::new(),
            artifacts: Vec::new(),
            max_attempts: MAX_ATTEMPTS_DEFAULT,
            wall_clock_ms: None,
            cost_budget_micros: None,
            preemptible: true,
            review: false,
            approvals: APPROVALS_DEFAULT,
            reviewers: Vec::new(),
            concurrency_key: None,
            affinity: None,
            sandbox: SandboxSpec::default(),
            repo: None,
        }
    }

    /// What the job wants warm: its `affinity`, or else its repository's URL (when the URL
    /// reads as a key), so factories holding the repository's mirror score higher.
    pub fn affinity_key(&self) -> Option<&str> {
        self.affinity
            .as_deref()
            .or_else(|| self.repo.as_ref().and_then(RepoSpec::default_affinity))
    }

    /// A valid spec for tests (see `the_test_spec_is_a_valid_job_spec`): product acme, needs
    /// `rust`, three attempts, preemptible, no review.
    #[cfg(test)]
    pub(crate) fn sample() -> JobSpec {
        JobSpec {
            capabilities: vec!["rust".into()],
            ..JobSpec::new(
                "build-api",
                "Build the API",
                "acme",
                Payload::Command("make".into()),
            )
        }
    }
}
