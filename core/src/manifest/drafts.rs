//! Giving a document meaning: the manifest's settings, its profiles of defaults, each job
//! drafted from its fields and its profile, and the dependency graph checked for unknown
//! references and cycles.

use super::*;

/// The fields a profile may set and a job may override. `None` means "not set here".
#[derive(Debug, Clone, Default)]
pub(super) struct Settings {
    pub(super) capabilities: Option<Vec<String>>,
    pub(super) labels: Option<Vec<String>>,
    pub(super) engine_class: Option<String>,
    pub(super) priority: Option<u32>,
    pub(super) max_attempts: Option<u32>,
    pub(super) wall_clock_ms: Option<u64>,
    pub(super) cost_budget_micros: Option<u64>,
    pub(super) preemptible: Option<bool>,
    pub(super) review: Option<bool>,
    pub(super) allowed_scope: Option<Vec<String>>,
    pub(super) artifacts: Option<Vec<String>>,
    pub(super) approvals: Option<u32>,
    pub(super) reviewers: Option<Vec<String>>,
    pub(super) concurrency_key: Option<String>,
    pub(super) affinity: Option<String>,
    pub(super) sandbox: Option<SandboxSpec>,
    pub(super) repo: Option<RepoSpec>,
}

pub(super) static NO_SETTINGS: Settings = Settings {
    capabilities: None,
    labels: None,
    engine_class: None,
    priority: None,
    max_attempts: None,
    wall_clock_ms: None,
    cost_budget_micros: None,
    preemptible: None,
    review: None,
    allowed_scope: None,
    artifacts: None,
    approvals: None,
    reviewers: None,
    concurrency_key: None,
    affinity: None,
    sandbox: None,
    repo: None,
};

impl Settings {
    pub(super) fn read(fields: &mut Fields, sink: &mut Sink) -> Settings {
        Settings {
            capabilities: read_list(
                fields,
                "capabilities",
                sink,
                CAPABILITIES_MAX,
                check_capability,
            )
            .map(sorted_unique),
            labels: read_list(fields, "labels", sink, LABELS_MAX, check_capability)
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
            artifacts: read_list(
                fields,
                "artifacts",
                sink,
                ARTIFACT_GLOBS_MAX,
                check_output_glob,
            ),
            approvals: read(fields, "approvals", sink, expect_int, check_approvals),
            reviewers: read_list(fields, "reviewers", sink, REVIEWERS_MAX, check_reviewer),
            concurrency_key: read(fields, "concurrency_key", sink, expect_string, |s| {
                check_limit_key(&s).map(|()| s)
            }),
            affinity: read(fields, "affinity", sink, expect_string, |s| {
                check_limit_key(&s).map(|()| s)
            }),
            sandbox: read_sandbox(fields, sink),
            repo: read_repo(fields, sink),
        }
    }

    /// A job's own settings win over its profile's: whole values, lists are not merged.
    pub(super) fn over(self, profile: &Settings) -> Settings {
        Settings {
            capabilities: self.capabilities.or_else(|| profile.capabilities.clone()),
            labels: self.labels.or_else(|| profile.labels.clone()),
            engine_class: self.engine_class.or_else(|| profile.engine_class.clone()),
            priority: self.priority.or(profile.priority),
            max_attempts: self.max_attempts.or(profile.max_attempts),
            wall_clock_ms: self.wall_clock_ms.or(profile.wall_clock_ms),
            cost_budget_micros: self.cost_budget_micros.or(profile.cost_budget_micros),
            preemptible: self.preemptible.or(profile.preemptible),
            review: self.review.or(profile.review),
            allowed_scope: self.allowed_scope.or_else(|| profile.allowed_scope.clone()),
            artifacts: self.artifacts.or_else(|| profile.artifacts.clone()),
            approvals: self.approvals.or(profile.approvals),
            reviewers: self.reviewers.or_else(|| profile.reviewers.clone()),
            concurrency_key: self
                .concurrency_key
                .or_else(|| profile.concurrency_key.clone()),
            affinity: self.affinity.or_else(|| profile.affinity.clone()),
            sandbox: self.sandbox.or_else(|| profile.sandbox.clone()),
            repo: self.repo.or_else(|| profile.repo.clone()),
        }
    }
}

/// The `sandbox` table: each field checked where it stands; `None` when any is wrong.
fn read_sandbox(fields: &mut Fields, sink: &mut Sink) -> Option<SandboxSpec> {
    let (node, location) = fields.take("sandbox")?;
    let mut table = expect_table(node, &location, sink)?;
    let before = sink.count();
    let defaults = SandboxSpec::default();
    let spec = SandboxSpec {
        network: read(&mut table, "network", sink, expect_bool, Ok).unwrap_or(defaults.network),
        memory_mib: read(&mut table, "memory_mib", sink, expect_int, |v| {
            u32::try_from(v).map_err(|_| format!("must be a number of MiB, got {v}"))
        }),
        cpu_millis: read(&mut table, "cpu_millis", sink, expect_int, |v| {
            u32::try_from(v).map_err(|_| format!("must be thousandths of a CPU, got {v}"))
        }),
    };
    table.finish(SANDBOX_FIELDS, sink);
    for (field, message) in spec.problems() {
        sink.push(join(&location, field), message);
    }
    (sink.count() == before).then_some(spec)
}

/// The `repo` table: `url` required, `rev` defaulting to `HEAD`; `None` when any is wrong.
fn read_repo(fields: &mut Fields, sink: &mut Sink) -> Option<RepoSpec> {
    let (node, location) = fields.take("repo")?;
    let mut table = expect_table(node, &location, sink)?;
    let before = sink.count();
    let url = read(&mut table, "url", sink, expect_string, Ok);
    let rev = read(&mut table, "rev", sink, expect_string, Ok);
    table.finish(REPO_FIELDS, sink);
    let Some(url) = url else {
        if sink.count() == before {
            sink.push(join(&location, "url"), "is required".to_owned());
        }
        return None;
    };
    let spec = RepoSpec {
        url,
        rev: rev.unwrap_or_else(|| "HEAD".to_owned()),
    };
    for (field, message) in spec.problems() {
        sink.push(join(&location, field), message);
    }
    (sink.count() == before).then_some(spec)
}

pub(super) struct Profile {
    pub(super) settings: Settings,
}

pub(super) fn read_profiles(
    field: Option<(Node, String)>,
    sink: &mut Sink,
) -> BTreeMap<String, Profile> {
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
pub(super) struct ReadJob {
    pub(super) key: Option<String>,
    pub(super) deps: Vec<String>,
    pub(super) profile: Option<String>,
    pub(super) has_product: bool,
    pub(super) draft: Option<Draft>,
}

pub(super) struct Draft {
    pub(super) key: String,
    pub(super) title: String,
    pub(super) payload: Payload,
    pub(super) product: Option<String>,
    pub(super) profile: Option<String>,
    pub(super) deps: Vec<String>,
    pub(super) idempotency_key: Option<String>,
    pub(super) settings: Settings,
}

impl Draft {
    pub(super) fn resolve(self, product: String, profile: &Settings) -> JobSpec {
        let settings = self.settings.over(profile);
        JobSpec {
            key: self.key,
            title: self.title,
            product,
            payload: self.payload,
            priority: settings.priority.unwrap_or(PRIORITY_DEFAULT),
            capabilities: settings.capabilities.unwrap_or_default(),
            labels: settings.labels.unwrap_or_default(),
            engine_class: settings.engine_class,
            profile: self.profile,
            deps: self.deps,
            idempotency_key: self.idempotency_key,
            allowed_scope: settings.allowed_scope.unwrap_or_default(),
            artifacts: settings.artifacts.unwrap_or_default(),
            max_attempts: settings.max_attempts.unwrap_or(MAX_ATTEMPTS_DEFAULT),
            wall_clock_ms: settings.wall_clock_ms,
            cost_budget_micros: settings.cost_budget_micros,
            preemptible: settings.preemptible.unwrap_or(true),
            review: settings.review.unwrap_or(false),
            approvals: settings.approvals.unwrap_or(APPROVALS_DEFAULT),
            reviewers: settings.reviewers.unwrap_or_default(),
            concurrency_key: settings.concurrency_key,
            affinity: settings.affinity,
            sandbox: settings.sandbox.unwrap_or_default(),
            repo: settings.repo,
        }
    }
}

pub(super) fn read_job(node: Node, location: &str, sink: &mut Sink) -> ReadJob {
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
pub(super) fn check_graph(jobs: &[ReadJob], sink: &mut Sink) -> Option<Vec<usize>> {
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
