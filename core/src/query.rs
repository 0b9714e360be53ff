//! Which jobs a listing shows: the filter operators give the jobs table, the CLI and the API,
//! as a pure predicate over a job.

use crate::job::{FactoryId, Job};

/// Every field narrows the listing; an empty filter shows every job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobFilter {
    /// A state name (`queued`, `running`, …).
    pub state: Option<String>,
    pub product: Option<String>,
    /// A capability the job requires.
    pub capability: Option<String>,
    /// The factory holding the job's lease.
    pub factory: Option<FactoryId>,
    /// Case-insensitive substring of the title or key.
    pub text: Option<String>,
    /// Whether the job waits for an operator's answer to its question.
    pub waiting_for_input: Option<bool>,
}

impl JobFilter {
    pub fn matches(&self, j: &Job) -> bool {
        self.state.as_deref().is_none_or(|s| s == j.state.name())
            && self.product.as_deref().is_none_or(|p| p == j.spec.product)
            && self
                .capability
                .as_deref()
                .is_none_or(|c| j.spec.capabilities.iter().any(|x| x == c))
            && self
                .factory
                .is_none_or(|f| j.state.lease().is_some_and(|l| l.factory == f))
            && self
                .waiting_for_input
                .is_none_or(|w| w == crate::job::question::open(j).is_some())
            && self.text.as_deref().is_none_or(|t| {
                let t = t.to_lowercase();
                j.spec.title.to_lowercase().contains(&t) || j.spec.key.to_lowercase().contains(&t)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobId, JobState, Lease, new_job};
    use crate::manifest::JobSpec;
    use uuid::Uuid;

    #[test]
    fn every_field_narrows_the_listing() {
        let spec: JobSpec = serde_json::from_value(serde_json::json!({
            "key": "build-api", "title": "Build the API", "product": "acme",
            "payload": {"command": "make"}, "capabilities": ["rust"]
        }))
        .unwrap();
        let f = FactoryId(Uuid::from_u128(5));
        let job = Job {
            state: JobState::Running {
                lease: Lease {
                    epoch: 1,
                    factory: f,
                    granted_at: 0,
                    expires_at: 1,
                },
            },
            ..new_job(JobId(Uuid::from_u128(1)), spec, Vec::new(), 0)
        };
        assert!(JobFilter::default().matches(&job));
        let only = |filter: JobFilter| filter.matches(&job);
        assert!(only(JobFilter {
            state: Some("running".into()),
            ..Default::default()
        }));
        assert!(!only(JobFilter {
            state: Some("queued".into()),
            ..Default::default()
        }));
        assert!(only(JobFilter {
            product: Some("acme".into()),
            ..Default::default()
        }));
        assert!(!only(JobFilter {
            capability: Some("gpu".into()),
            ..Default::default()
        }));
        assert!(only(JobFilter {
            factory: Some(f),
            ..Default::default()
        }));
        assert!(!only(JobFilter {
            factory: Some(FactoryId(Uuid::nil())),
            ..Default::default()
        }));
        assert!(only(JobFilter {
            text: Some("THE api".into()),
            ..Default::default()
        }));
        assert!(!only(JobFilter {
            text: Some("deploy".into()),
            ..Default::default()
        }));
    }
}
