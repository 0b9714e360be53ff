//! Collecting the history once the workload stops: waiting (bounded) for every acknowledged
//! job to end, reading the factories' journals, and fetching each job with its whole timeline
//! from whichever node answers. The agents are stopped before anything is fetched, so every
//! answer their journals hold was committed before the timelines were read.

use std::time::Duration;

use gigafactory_core::wire::Event;
use serde_json::Value;

use super::World;
use crate::history::{BudgetSnapshot, FactoryJournal, JobRecord, is_terminal};
use crate::procs::poll;

/// After the workload: how long jobs may take to become terminal before the run stops.
const SETTLE_DEADLINE: Duration = Duration::from_secs(60);

impl World {
    /// GET from the first node that answers 200 or 404.
    fn get_any(&self, path: &str) -> Option<(u16, Value)> {
        self.nodes.iter().find_map(|n| {
            match self.api.call("GET", &format!("{}{path}", n.url), None) {
                Ok((s, v)) if s == 200 || s == 404 => Some((s, v)),
                _ => None,
            }
        })
    }

    pub(super) fn stop_agents(&mut self) {
        for a in &mut self.agents {
            a.kill();
        }
    }

    /// Every agent's journal, read once the run has settled.
    pub(super) fn journals(&self) -> Vec<FactoryJournal> {
        self.agents
            .iter()
            .map(|a| FactoryJournal {
                index: a.index,
                factory_id: a.factory_id().unwrap_or_default(),
                exchanges: a.journal(),
            })
            .collect()
    }

    /// Waits, bounded, until every job in `ids` is terminal.
    pub(super) fn settle(&self, ids: &[String]) {
        let mut open: Vec<&String> = ids.iter().collect();
        let done = poll(SETTLE_DEADLINE, || {
            open.retain(|id| {
                !matches!(self.get_any(&format!("/v1/jobs/{id}")),
                    Some((200, v)) if v["state"].as_str().is_some_and(is_terminal))
            });
            open.is_empty()
        });
        if !done {
            eprintln!(
                "chaos: {} jobs still open after {SETTLE_DEADLINE:?}",
                open.len()
            );
        }
    }

    /// A budget's spend in its period, from any live node.
    pub(super) fn budget(&self, name: &str) -> Option<BudgetSnapshot> {
        let (status, v) = self.get_any(&format!("/v1/budgets/{name}"))?;
        let b = &v["budget"];
        (status == 200).then_some(())?;
        Some(BudgetSnapshot {
            name: name.to_string(),
            spent_micros: b["spent_micros"].as_u64()?,
            period_start: b["period_start"].as_u64()?,
            period_end: b["period_end"].as_u64()?,
        })
    }

    /// A job and its whole timeline, from any live node.
    pub(super) fn fetch(&self, id: &String) -> JobRecord {
        let mut rec = JobRecord {
            id: id.clone(),
            found: false,
            state: None,
            events: Vec::new(),
            cost_micros: None,
        };
        match self.get_any(&format!("/v1/jobs/{id}")) {
            Some((200, v)) => {
                rec.found = true;
                rec.state = v["state"].as_str().map(str::to_string);
                rec.cost_micros = v["cost"]["total_micros"].as_u64();
            }
            _ => return rec,
        }
        const PAGE: usize = 200;
        let mut after: Option<u64> = None;
        loop {
            let path = match after {
                Some(a) => format!("/v1/jobs/{id}/events?after={a}&limit={PAGE}"),
                None => format!("/v1/jobs/{id}/events?limit={PAGE}"),
            };
            let Some((200, v)) = self.get_any(&path) else {
                break;
            };
            let page: Vec<Event> = serde_json::from_value(v).unwrap_or_default();
            let full = page.len() == PAGE;
            after = page.last().map(|e| e.seq);
            rec.events.extend(page);
            if !full {
                break;
            }
        }
        rec
    }
}
