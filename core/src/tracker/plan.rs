//! From a tracker item to the jobs it creates: the source's first rule whose labels match
//! picks the product, extra capabilities, a priority and a template; the template is a
//! manifest (so it may declare a small DAG and profiles) with `{{title}}`, `{{body}}`,
//! `{{url}}` and `{{id}}` filled in, read by the manifest reader with all its checks. Each job
//! gets an idempotency key naming the item, so a repeated delivery creates nothing new.

use crate::manifest::{self, JobSpec};

use super::{IntakeError, SourceConfig, TrackerItem};

/// The template of a rule that names none: one job whose prompt is the item.
pub const DEFAULT_TEMPLATE: &str = r#"[[jobs]]
key = "work"
title = "{{title}}"
prompt = "{{title}}\n\n{{body}}\n\n{{url}}"
"#;

/// The jobs `item` creates under `source`'s rules, resolved and checked, parents first.
pub fn plan_jobs(
    source_name: &str,
    source: &SourceConfig,
    item: &TrackerItem,
) -> Result<Vec<JobSpec>, IntakeError> {
    let rule = source
        .rules
        .iter()
        .find(|r| r.labels.is_empty() || r.labels.iter().any(|l| item.labels.contains(l)))
        .ok_or_else(|| IntakeError::NoRule {
            labels: item.labels.clone(),
        })?;
    let template = match &rule.template {
        Some(name) => source
            .templates
            .get(name)
            .ok_or_else(|| IntakeError::Config(format!("rule names unknown template {name:?}")))?
            .as_str(),
        None => DEFAULT_TEMPLATE,
    };
    let text = format!(
        "product = \"{}\"\n{}",
        toml_escape(&rule.product),
        render(template, item)
    );
    let m = manifest::parse_manifest(&text)
        .map_err(|e| IntakeError::Template(e.0.iter().map(|p| p.to_string()).collect()))?;
    let mut jobs = m.jobs;
    for job in &mut jobs {
        job.capabilities.extend(rule.capabilities.iter().cloned());
        job.capabilities.sort_unstable();
        job.capabilities.dedup();
        if let Some(p) = rule.priority {
            job.priority = p;
        }
        job.idempotency_key = Some(format!("{source_name}:{}:{}", item.id, job.key));
        manifest::validate_job_spec(job)
            .map_err(|e| IntakeError::Template(e.0.iter().map(|p| p.to_string()).collect()))?;
    }
    Ok(jobs)
}

/// `template` with the item's fields in place, escaped for TOML basic strings (the templates
/// put placeholders inside `"…"`).
fn render(template: &str, item: &TrackerItem) -> String {
    template
        .replace("{{title}}", &toml_escape(&item.title))
        .replace("{{body}}", &toml_escape(&item.body))
        .replace("{{url}}", &toml_escape(&item.url))
        .replace("{{id}}", &toml_escape(&item.id))
}

fn toml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{IntakeRule, SourceKind};
    use super::*;
    use crate::manifest::Payload;

    fn source() -> SourceConfig {
        SourceConfig {
            kind: SourceKind::Github,
            secret: "s".into(),
            callback_url: None,
            callback_secret: None,
            rules: vec![
                IntakeRule {
                    labels: vec!["bug".into()],
                    product: "app".into(),
                    capabilities: vec!["linux".into()],
                    priority: Some(80),
                    template: Some("fix".into()),
                },
                IntakeRule {
                    labels: vec![],
                    product: "triage".into(),
                    capabilities: vec![],
                    priority: None,
                    template: None,
                },
            ],
            templates: [(
                "fix".to_string(),
                r#"[[jobs]]
key = "plan"
title = "Plan {{id}}"
prompt = "Plan a fix for: {{title}}"
[[jobs]]
key = "fix"
title = "Fix {{id}}"
prompt = "{{body}}"
deps = ["plan"]
"#
                .to_string(),
            )]
            .into(),
        }
    }

    fn item(labels: &[&str]) -> TrackerItem {
        TrackerItem {
            id: "acme/app#42".into(),
            revision: "1".into(),
            title: "Crash \"on\" start".into(),
            body: "line 1\nline 2 \\ slash".into(),
            url: "https://x/42".into(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            open: true,
        }
    }

    #[test]
    fn the_first_matching_rule_picks_product_capabilities_priority_and_template() {
        let jobs = plan_jobs("gh", &source(), &item(&["bug"])).unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(
            (jobs[0].key.as_str(), jobs[1].deps.clone()),
            ("plan", vec!["plan".to_string()])
        );
        assert!(jobs.iter().all(|j| j.product == "app" && j.priority == 80));
        assert_eq!(jobs[0].capabilities, ["linux"]);
        assert_eq!(
            jobs[1].payload,
            Payload::Prompt("line 1\nline 2 \\ slash".into())
        );
        assert_eq!(
            jobs[0].idempotency_key.as_deref(),
            Some("gh:acme/app#42:plan")
        );
    }

    #[test]
    fn an_item_no_rule_takes_names_its_labels_and_the_catch_all_takes_the_rest() {
        let jobs = plan_jobs("gh", &source(), &item(&["question"])).unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].product, "triage");
        assert_eq!(jobs[0].title, "Crash \"on\" start");
        let mut strict = source();
        strict.rules.pop();
        assert_eq!(
            plan_jobs("gh", &strict, &item(&["question"])).unwrap_err(),
            IntakeError::NoRule {
                labels: vec!["question".into()]
            }
        );
    }
}
