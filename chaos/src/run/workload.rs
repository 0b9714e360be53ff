//! The workload: submits jobs at a steady rate through random nodes while the faults run, each
//! submit on its own thread so a stopped node delays only its own requests. Every attempt is
//! recorded with its answer, so the checker knows which submits were acknowledged (C1); a
//! submit not acknowledged is tried once more on the next node with the same idempotency key.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::now_ms;
use crate::history::{Attempt, Outcome as SubmitOutcome, Submit};
use crate::procs::Api;
use crate::rng::Rng;

/// What every job runs: short, it reports usage (C8 counts it; its factory sends the report
/// as a fenced write), and it names itself in its log.
const JOB_COMMAND: &str =
    "sleep 0.2; gigafactory job usage --model chaos --cost-usd 0.01 && echo $GF_JOB_ID";
/// High enough that repeated lease expiries rarely kill a job; dead is still legal.
const MAX_ATTEMPTS: u32 = 20;
/// Mixed into the seed for the workload's choices, so they do not shift the fault schedule.
const WORKLOAD_SALT: u64 = 0x5EED_F10A_D5EE_D000;

/// Submits jobs at `rate` per second through random nodes until `stop`.
pub(super) fn workload(
    api: Api,
    urls: Vec<String>,
    seed: u64,
    rate: f64,
    submits: Arc<Mutex<Vec<Submit>>>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = Rng::new(seed ^ WORKLOAD_SALT);
    let start = Instant::now();
    let mut inflight = Vec::new();
    let mut i: u64 = 0;
    while !stop.load(Ordering::SeqCst) {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        // Pacing the workload, not waiting for state.
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let first = rng.below(urls.len() as u64) as usize;
        let (api, urls, submits) = (api.clone(), urls.clone(), submits.clone());
        let key = format!("chaos-{seed}-{i}");
        // One thread per submit, so a stopped node delays only its own requests.
        inflight.push(std::thread::spawn(move || {
            let s = submit(&api, &urls, first, &key);
            submits.lock().unwrap_or_else(|p| p.into_inner()).push(s);
        }));
        i += 1;
        // Joining finished submits as we go: an unjoined thread keeps its stack until joined.
        let (done, running): (Vec<_>, Vec<_>) = inflight.into_iter().partition(|t| t.is_finished());
        for t in done {
            let _ = t.join();
        }
        inflight = running;
    }
    for t in inflight {
        let _ = t.join();
    }
}

/// One submit: tried on `first`, then once on the next node with the same idempotency key.
fn submit(api: &Api, urls: &[String], first: usize, key: &str) -> Submit {
    let body = json!({
        "key": key,
        "title": key,
        "product": super::PRODUCT,
        "payload": {"command": JOB_COMMAND},
        "idempotency_key": key,
        "max_attempts": MAX_ATTEMPTS,
    });
    let mut attempts = Vec::new();
    for node in [first, (first + 1) % urls.len()] {
        let sent_at = now_ms();
        let outcome = match api.call("POST", &format!("{}/v1/jobs", urls[node]), Some(&body)) {
            Ok((200 | 201, v)) => match v["id"].as_str() {
                Some(id) => SubmitOutcome::Acked {
                    id: id.to_string(),
                    created: v["created"] == true,
                },
                None => SubmitOutcome::Unacked {
                    error: format!("no id in {v}"),
                },
            },
            Ok((status, v)) => SubmitOutcome::Unacked {
                error: format!("{status} {v}"),
            },
            Err(e) => SubmitOutcome::Unacked { error: e },
        };
        let acked = matches!(outcome, SubmitOutcome::Acked { .. });
        attempts.push(Attempt {
            node,
            sent_at,
            answered_at: now_ms(),
            outcome,
        });
        if acked {
            break;
        }
    }
    Submit {
        key: key.to_string(),
        attempts,
    }
}
