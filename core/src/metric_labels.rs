//! The bounded values of the node's metric labels, and the pure mappings onto them. Every
//! value a label can take is listed here, so each series can be exported at 0 before its
//! first event (an alert or a panel never meets "no data" on a healthy node), and no id or
//! free text can become a label value.

use crate::job::Command;

/// Which factory write a stale epoch refused: `gigafactory_fenced_writes_total{route}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceRoute {
    Renew,
    Stage,
    Complete,
    Fail,
    Release,
    Logs,
    Usage,
    Artifact,
    /// A job's question to an operator (`POST /v1/jobs/{id}/question`).
    Question,
    /// A fenced command no route above sends; kept so the mapping is total.
    Other,
}

impl FenceRoute {
    pub const ALL: [FenceRoute; 10] = [
        FenceRoute::Renew,
        FenceRoute::Stage,
        FenceRoute::Complete,
        FenceRoute::Fail,
        FenceRoute::Release,
        FenceRoute::Logs,
        FenceRoute::Usage,
        FenceRoute::Artifact,
        FenceRoute::Question,
        FenceRoute::Other,
    ];

    /// The route of a factory write carried by a command (log chunks are not commands: they
    /// are [`FenceRoute::Logs`]).
    pub fn of(cmd: &Command) -> FenceRoute {
        match cmd {
            Command::Renew { .. } => FenceRoute::Renew,
            Command::Stage { .. } => FenceRoute::Stage,
            Command::Complete { .. } => FenceRoute::Complete,
            Command::Fail { .. } => FenceRoute::Fail,
            Command::Release { .. } => FenceRoute::Release,
            Command::Usage { .. } => FenceRoute::Usage,
            Command::Artifact { .. } => FenceRoute::Artifact,
            Command::Ask { .. } => FenceRoute::Question,
            _ => FenceRoute::Other,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            FenceRoute::Renew => "renew",
            FenceRoute::Stage => "stage",
            FenceRoute::Complete => "complete",
            FenceRoute::Fail => "fail",
            FenceRoute::Release => "release",
            FenceRoute::Logs => "logs",
            FenceRoute::Usage => "usage",
            FenceRoute::Artifact => "artifact",
            FenceRoute::Question => "question",
            FenceRoute::Other => "other",
        }
    }
}

/// How a claim's long-poll ended: `gigafactory_claim_long_poll_seconds{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollOutcome {
    /// At least one lease granted.
    Granted,
    /// The wait ran out with nothing placed.
    Empty,
}

impl PollOutcome {
    pub const ALL: [PollOutcome; 2] = [PollOutcome::Granted, PollOutcome::Empty];

    /// The outcome of a long-poll answered with `leases` leases.
    pub fn of(leases: usize) -> PollOutcome {
        if leases > 0 {
            PollOutcome::Granted
        } else {
            PollOutcome::Empty
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            PollOutcome::Granted => "granted",
            PollOutcome::Empty => "empty",
        }
    }
}

/// The states `gigafactory_jobs_finished_total{state}` counts: the terminal ones, as
/// `JobState::name` spells them.
pub const FINISHED_STATES: [&str; 5] = ["succeeded", "shipped", "rejected", "dead", "cancelled"];

/// What a schedule's run did (`gigafactory_schedule_runs_total`'s `outcome`).
pub const SCHEDULE_RUN_OUTCOMES: [&str; 5] = crate::schedule::Outcome::NAMES;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::{ArtifactFile, ArtifactLimits};
    use crate::job::{FactoryId, JobState};

    fn factory_writes() -> Vec<Command> {
        let (factory, epoch) = (FactoryId(uuid::Uuid::nil()), 3);
        vec![
            Command::Renew {
                factory,
                epoch,
                ttl_ms: 1,
            },
            Command::Stage {
                factory,
                epoch,
                stage: "coding".into(),
            },
            Command::Usage {
                factory,
                epoch,
                model: "m".into(),
                input_tokens: 1,
                output_tokens: 1,
                micros: 1,
            },
            Command::Artifact {
                factory,
                epoch,
                file: Box::new(ArtifactFile {
                    name: "a".into(),
                    kind: Default::default(),
                    size: 1,
                    sha256: String::new(),
                    media_type: String::new(),
                }),
                limits: ArtifactLimits::default(),
            },
            Command::Complete { factory, epoch },
            Command::Fail {
                factory,
                epoch,
                error: "e".into(),
                exit_code: None,
                retryable: true,
                jitter: 0.0,
            },
            Command::Release {
                factory,
                epoch,
                checkpoint: None,
                throttled_until: None,
            },
            Command::Ask {
                factory,
                epoch,
                ask: crate::job::question::Ask {
                    id: "q".into(),
                    text: "Merge?".into(),
                    choices: Vec::new(),
                    default: None,
                    timeout_ms: None,
                },
            },
        ]
    }

    #[test]
    fn every_factory_write_has_a_route_of_its_own() {
        let writes = factory_writes();
        assert!(writes.iter().all(|c| c.fence().is_some()));
        let mut routes: Vec<&str> = writes.iter().map(|c| FenceRoute::of(c).label()).collect();
        assert!(!routes.contains(&"other"));
        routes.sort_unstable();
        routes.dedup();
        assert_eq!(routes.len(), writes.len(), "two writes share a route");
    }

    #[test]
    fn commands_that_are_not_factory_writes_fall_to_other_and_every_route_is_listed() {
        let cmd = Command::Expire {
            jitter: 0.0,
            blamed: true,
        };
        assert_eq!(FenceRoute::of(&cmd), FenceRoute::Other);
        let listed: Vec<&str> = FenceRoute::ALL.iter().map(|r| r.label()).collect();
        for c in factory_writes() {
            assert!(listed.contains(&FenceRoute::of(&c).label()));
        }
        assert!(listed.contains(&"logs") && listed.contains(&"other"));
    }

    #[test]
    fn a_long_poll_with_a_lease_is_granted_and_without_one_empty() {
        assert_eq!(PollOutcome::of(0), PollOutcome::Empty);
        assert_eq!(PollOutcome::of(3), PollOutcome::Granted);
        assert_eq!(
            PollOutcome::ALL.map(PollOutcome::label),
            ["granted", "empty"]
        );
    }

    #[test]
    fn finished_states_are_exactly_the_terminal_ones() {
        let terminal = [
            JobState::Succeeded,
            JobState::Shipped,
            JobState::Rejected,
            JobState::Dead,
            JobState::Cancelled { by_parent: None },
        ];
        assert!(terminal.iter().all(JobState::is_terminal));
        let names: Vec<&str> = terminal.iter().map(JobState::name).collect();
        assert_eq!(names, FINISHED_STATES);
        for other in [JobState::Pending, JobState::Review] {
            assert!(!other.is_terminal());
        }
    }
}
