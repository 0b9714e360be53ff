//! Why a job is being stopped, and which request wins when several arrive. The heartbeat loop
//! (cancel, preempt), the agent's shutdown, a job's budget and a lost lease all ask through the
//! same channel; folding them with [`escalate`] guarantees a request is never weakened: once the
//! coordinator must hear nothing more about a job, nothing later makes the agent report it.

use gigafactory_core::job::Millis;

/// Why a job is being stopped. When several are asked for, the strongest wins (see
/// [`escalate`]): a lost lease beats a cancel, which beats the budget, which beats a
/// preemption, which beats a shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The agent shuts down: SIGTERM, grace, SIGKILL, then release with the checkpoint.
    Shutdown,
    /// The coordinator wants the slot back by `deadline`: SIGTERM, wait until the deadline,
    /// SIGKILL, then release with the checkpoint.
    Preempt { deadline: Millis },
    /// The job ran out of wall-clock time: SIGTERM, grace, SIGKILL, then a non-retryable fail.
    Budget,
    /// The coordinator cancelled the job (or the agent cannot report any more): SIGTERM,
    /// grace, SIGKILL, and no report.
    Cancel,
    /// The lease is lost: SIGKILL at once, and no report.
    Fenced,
}

impl Stop {
    fn rank(self) -> u8 {
        match self {
            Stop::Shutdown => 0,
            Stop::Preempt { .. } => 1,
            Stop::Budget => 2,
            Stop::Cancel => 3,
            Stop::Fenced => 4,
        }
    }

    /// Whether the coordinator must hear nothing more about the job.
    pub fn silences(self) -> bool {
        matches!(self, Stop::Cancel | Stop::Fenced)
    }
}

/// Folds a new stop request into the current one; whether it changed. Of two preemptions the
/// earlier deadline wins.
pub fn escalate(current: &mut Option<Stop>, new: Stop) -> bool {
    let next = match *current {
        None => new,
        Some(Stop::Preempt { deadline: a }) if matches!(new, Stop::Preempt { .. }) => {
            let Stop::Preempt { deadline: b } = new else {
                unreachable!("matched above")
            };
            Stop::Preempt { deadline: a.min(b) }
        }
        Some(old) if new.rank() > old.rank() => new,
        Some(old) => old,
    };
    let changed = *current != Some(next);
    *current = Some(next);
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_strongest_stop_wins() {
        let mut s = None;
        assert!(escalate(&mut s, Stop::Shutdown));
        assert!(escalate(&mut s, Stop::Preempt { deadline: 100 }));
        assert!(!escalate(&mut s, Stop::Shutdown), "weaker: ignored");
        assert!(
            escalate(&mut s, Stop::Preempt { deadline: 50 }),
            "an earlier deadline wins"
        );
        assert!(!escalate(&mut s, Stop::Preempt { deadline: 80 }));
        assert_eq!(s, Some(Stop::Preempt { deadline: 50 }));
        assert!(escalate(&mut s, Stop::Budget));
        assert!(escalate(&mut s, Stop::Cancel));
        assert!(!escalate(&mut s, Stop::Budget));
        assert!(escalate(&mut s, Stop::Fenced));
        for weaker in [
            Stop::Shutdown,
            Stop::Preempt { deadline: 1 },
            Stop::Budget,
            Stop::Cancel,
            Stop::Fenced,
        ] {
            assert!(!escalate(&mut s, weaker));
        }
        assert_eq!(s, Some(Stop::Fenced));
    }
}
