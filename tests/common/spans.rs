//! Lease spans read off job timelines: when each attempt held its lease, and how many leases
//! were held at once (what a concurrency limit bounds).

use super::{Coordinator, events};

/// The (claim, end) times of each attempt of `ids`, from their timelines.
pub fn lease_spans(coord: &Coordinator, ids: &[String]) -> Vec<(u64, u64)> {
    let mut spans = Vec::new();
    for id in ids {
        let mut open = None;
        for e in events(coord, id) {
            let at = e["at"].as_u64().unwrap();
            match e["kind"].as_str().unwrap() {
                "claim" => open = Some(at),
                "complete" | "fail" | "release" | "expire" => {
                    if let Some(start) = open.take() {
                        spans.push((start, at));
                    }
                }
                _ => {}
            }
        }
    }
    spans
}

/// The most spans open at one moment.
pub fn most_at_once(spans: &[(u64, u64)]) -> usize {
    spans
        .iter()
        .map(|(start, _)| {
            spans
                .iter()
                .filter(|(s, e)| s <= start && start < e)
                .count()
        })
        .max()
        .unwrap_or(0)
}
