//! The value checks a job spec passes, shared by the manifest reader and
//! `validate_job_spec`: each returns the message to report, without the location, and the
//! `Sink` gathers every problem with its location, up to a bound.

use super::*;

pub(super) fn check_name(
    value: &str,
    max: usize,
    allowed: fn(char) -> bool,
    set: &str,
) -> CheckResult {
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

pub(super) fn check_key(value: &str) -> CheckResult {
    check_name(value, KEY_LEN_MAX, is_key_char, "[A-Za-z0-9._-]")
}

pub(super) fn check_capability(value: &str) -> CheckResult {
    check_name(
        value,
        CAPABILITY_LEN_MAX,
        is_capability_char,
        "[a-z0-9._:-]",
    )
}

pub(super) fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

pub(super) fn is_capability_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | ':' | '-')
}

pub(super) fn check_text(value: &str, max_bytes: usize) -> CheckResult {
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

pub(super) fn check_title(value: &str) -> CheckResult {
    check_text(value, TITLE_LEN_MAX_BYTES)
}

pub(super) fn check_payload_text(value: &str) -> CheckResult {
    check_text(value, PAYLOAD_LEN_MAX_BYTES)
}

pub(super) fn check_idempotency_key(value: &str) -> CheckResult {
    check_text(value, IDEMPOTENCY_KEY_LEN_MAX_BYTES)?;
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(())
}

pub(super) fn check_glob(value: &str) -> CheckResult {
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

/// An artifact glob names files inside the workspace: relative, never climbing out of it.
pub(super) fn check_output_glob(value: &str) -> CheckResult {
    check_glob(value)?;
    if value.starts_with('/') || value.split(['/', '\\']).any(|part| part == "..") {
        return Err(format!(
            "{} must stay inside the workspace (relative, no ..)",
            show(value)
        ));
    }
    Ok(())
}

pub(super) fn check_approvals(value: i128) -> Result<u32, String> {
    in_range(value, 1, APPROVALS_MAX.into()).map(|v| v as u32)
}

pub(super) fn check_reviewer(value: &str) -> CheckResult {
    check_text(value, REVIEWER_LEN_MAX_BYTES)
}

/// A `concurrency_key` or `affinity`: `kind:value` (`repo:acme/api`).
pub(super) fn check_limit_key(value: &str) -> CheckResult {
    crate::limits::check_key(value).map_err(|e| e.to_string())
}

pub(super) fn check_priority(value: i128) -> Result<u32, String> {
    in_range(value, 0, PRIORITY_MAX.into()).map(|v| v as u32)
}

pub(super) fn check_max_attempts(value: i128) -> Result<u32, String> {
    in_range(value, 1, MAX_ATTEMPTS_MAX.into()).map(|v| v as u32)
}

/// Returns the budget in milliseconds.
pub(super) fn check_wall_clock_secs(value: i128) -> Result<u64, String> {
    in_range(value, 1, WALL_CLOCK_MAX_SECS.into()).map(|secs| secs as u64 * 1_000)
}

/// Returns the budget in micro-dollars, rounded to the nearest.
pub(super) fn check_cost_usd(value: f64) -> Result<u64, String> {
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

pub(super) fn in_range(value: i128, min: i128, max: i128) -> Result<i128, String> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(format!("must be between {min} and {max}, got {value}"))
    }
}

pub(super) type CheckResult = Result<(), String>;

/// Checks a list's length, then each element, at `location[i]`.
pub(super) fn check_list(
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

pub(super) fn validate_spec_into(spec: &JobSpec, prefix: &str, sink: &mut Sink) {
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
    check(
        at("approvals"),
        check_approvals(spec.approvals.into()).map(drop),
    );
    for (field, value) in [
        ("concurrency_key", &spec.concurrency_key),
        ("affinity", &spec.affinity),
    ] {
        if let Some(v) = value {
            check(at(field), check_limit_key(v));
        }
    }
    if let Some(key) = &spec.idempotency_key {
        check(at("idempotency_key"), check_idempotency_key(key));
    }
    for (field, message) in spec.sandbox.problems() {
        check(at(&format!("sandbox.{field}")), Err(message));
    }
    if let Some(repo) = &spec.repo {
        for (field, message) in repo.problems() {
            check(at(&format!("repo.{field}")), Err(message));
        }
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
    let labels = at("labels");
    check_list(sink, &labels, &spec.labels, LABELS_MAX, check_capability);
    if !spec.labels.is_sorted_by(|a, b| a < b) {
        sink.push(labels, "must be sorted and without duplicates");
    }
    check_list(
        sink,
        &at("reviewers"),
        &spec.reviewers,
        REVIEWERS_MAX,
        check_reviewer,
    );
    let named: BTreeSet<&String> = spec.reviewers.iter().collect();
    if !named.is_empty()
        && check_approvals(spec.approvals.into()).is_ok()
        && named.len() < spec.approvals as usize
    {
        // No review of such a job could ever ship it.
        sink.push(
            at("approvals"),
            format!(
                "needs {} approvals but names only {} reviewer(s)",
                spec.approvals,
                named.len()
            ),
        );
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
    check_list(
        sink,
        &at("artifacts"),
        &spec.artifacts,
        ARTIFACT_GLOBS_MAX,
        check_output_glob,
    );
}

/// Collects problems up to [`MANIFEST_ERRORS_MAX`], then counts the rest.
#[derive(Default)]
pub(super) struct Sink {
    pub(super) errors: Vec<ManifestError>,
    pub(super) more: usize,
}

impl Sink {
    pub(super) fn push(&mut self, location: String, message: impl Into<String>) {
        if self.errors.len() < MANIFEST_ERRORS_MAX {
            self.errors.push(ManifestError {
                location,
                message: message.into(),
            });
        } else {
            self.more += 1;
        }
    }

    pub(super) fn count(&self) -> usize {
        self.errors.len() + self.more
    }

    pub(super) fn is_empty(&self) -> bool {
        self.count() == 0
    }

    pub(super) fn into_errors(mut self) -> ManifestErrors {
        if self.more > 0 {
            self.errors.push(ManifestError {
                location: "manifest".to_owned(),
                message: format!("{} more problems not listed", self.more),
            });
        }
        ManifestErrors(self.errors)
    }
}

pub(super) fn join(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

/// A user-supplied string for an error message: quoted, escaped and cut short, since it
/// may be arbitrarily long or hold control characters.
pub(super) fn show(value: &str) -> String {
    const SHOWN_CHARS_MAX: usize = 64;
    if value.chars().count() <= SHOWN_CHARS_MAX {
        format!("{value:?}")
    } else {
        let cut: String = value.chars().take(SHOWN_CHARS_MAX).collect();
        format!("{cut:?}…")
    }
}

/// The first few names of a list, for a hint in a message.
pub(super) fn some_names<'a>(names: impl ExactSizeIterator<Item = &'a String>) -> String {
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
