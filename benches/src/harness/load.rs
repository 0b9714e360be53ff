//! The workload: simulated factories (claim → renew → (usage →) complete) and submitters driving one
//! coordinator, or the nodes of a cluster, over HTTP. This file holds what every client of a
//! run shares and how each request is sent; `load/clients.rs` runs the clients and gathers
//! what they measured, `load/preload.rs` queues jobs before a run, `load/verify.rs` holds
//! the count the store must agree with, and `load/spend.rs` the budget that `--usage` checks.
//!
//! Clients are spread over the nodes: factory `f` and submitter `s` start on node `f mod n` and
//! `s mod n`. A request that loses its node (a transport error) moves its client to the next
//! node, as the factory agent does, and is sent again there only when that is safe (see
//! [`Retry`]); every retry loop is bounded in attempts and by the phase's deadline.

mod clients;
mod policies;
mod preload;
mod spend;
mod verify;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use super::error::{Error, Result};
use crate::procfs::{CpuSample, Watched};
pub(crate) use clients::{Measured, measure};
pub(crate) use policies::set_limits;
pub(crate) use preload::{Loaded, Queued, preload, wait_indexed};
pub(crate) use spend::{UsageMode, check_spend, remove_budget, set_budget, spent};
pub(crate) use verify::{check, count_succeeded, verdict};

/// The product of the measured jobs; the verification lists it.
const BENCH_PRODUCT: &str = "bench";
/// Longest wait for one answer; a claim long-polls for part of it.
pub(crate) const REQUEST_TIMEOUT_SECS: u64 = 30;
/// Attempts of one request refused for load (429) or, when it is safe, lost on the way.
const SEND_ATTEMPTS_MAX: u32 = 50;
/// Pause between two attempts.
const RETRY_PAUSE_MS: u64 = 20;

/// What one run pushes through the coordinator.
#[derive(Clone)]
pub(crate) struct Workload {
    pub jobs: u64,
    pub factories: u32,
    pub slots: u32,
    pub submitters: u32,
    pub renew: bool,
    /// Each complete asks for the worker's next job (`claim_next`), as the agent's do.
    pub claim_next: bool,
    /// Each job reports one usage, and how (`load/spend.rs`).
    pub usage: Option<UsageMode>,
    /// Submits carry an idempotency key, so one whose answer was lost with its node can be sent
    /// again to another node without making a second job. It costs the submit one more read
    /// and write, so the runs compared with each other either all have it or none.
    pub keyed_submits: bool,
    /// A concurrency key every job carries (`--policies on`).
    pub concurrency_key: Option<String>,
}

/// The node a client talks to: an index into the nodes, moved on by a transport error.
pub(crate) struct Route {
    current: AtomicUsize,
}

impl Route {
    /// A route that starts on node `start mod nodes`.
    pub fn new(start: usize, nodes: usize) -> Route {
        Route {
            current: AtomicUsize::new(start % nodes.max(1)),
        }
    }

    fn node(&self, nodes: usize) -> usize {
        self.current.load(Ordering::Acquire) % nodes
    }

    /// Moves on to the node after `failed`; true if this call moved it. Concurrent failures on
    /// the same node (the slots of one factory share a route) move it once, not once each.
    fn fail_over(&self, failed: usize, nodes: usize) -> bool {
        nodes > 1
            && self
                .current
                .compare_exchange(
                    failed,
                    (failed + 1) % nodes,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }
}

/// How a request may be sent again.
#[derive(Clone, Copy, PartialEq)]
enum Retry {
    /// Only when refused for load (429), which certainly changed nothing: enrollments,
    /// manifests, and submits without an idempotency key, which a repeat after a 503 (the
    /// store's outcome may be unknown) or a lost answer could make twice.
    Refused,
    /// Also on a 503: claims. A claim that leases jobs always answers with them (a failed
    /// lease commit answers empty), so a 503 granted nothing. After a lost answer only when
    /// another node can take the repeat: the lost answer may have held a lease nobody runs,
    /// which the reaper requeues when it expires (counted as `lost_claims`).
    Unanswered,
    /// Also when the answer was lost: fenced writes, whose request id makes a repeat get the
    /// first answer, and keyed submits.
    Idempotent,
}

/// An answer, and whether an earlier attempt may have taken effect (its answer was lost).
struct Reply {
    body: Option<Vec<u8>>,
    after_loss: bool,
}

/// What every task of one run shares.
pub(crate) struct Shared {
    http: reqwest::Client,
    /// Base URLs of the nodes.
    nodes: Vec<String>,
    admin: String,
    /// Makes this run's job keys unique, so one store can be benched twice.
    run_id: String,
    renew: bool,
    claim_next: bool,
    usage: Option<UsageMode>,
    keyed_submits: bool,
    concurrency_key: Option<String>,
    jobs: u64,
    deadline: Instant,
    next_job: AtomicU64,
    pub completed: AtomicU64,
    /// Usage reports the coordinator took.
    usage_reported: AtomicU64,
    retries: AtomicU64,
    /// Clients moved to another node by a transport error.
    failovers: AtomicU64,
    /// Claims whose answer was lost on the way and which were sent again to another node.
    lost_claims: AtomicU64,
    stop: AtomicBool,
    /// The first error that stopped the run.
    fatal: Mutex<Option<String>>,
    watched: Watched,
    /// CPU counters taken by the task that completed the last job, so the CPU figures cover
    /// the same window as the throughput, not the claim long-polls that end the run.
    end_sample: Mutex<Option<CpuSample>>,
}

impl Shared {
    pub fn new(
        http: &reqwest::Client,
        nodes: Vec<String>,
        admin: &str,
        run_id: &str,
        w: &Workload,
        deadline: Instant,
        watched: Watched,
    ) -> Shared {
        assert!(!nodes.is_empty(), "a run needs a node");
        Shared {
            http: http.clone(),
            nodes,
            admin: admin.to_string(),
            run_id: run_id.to_string(),
            renew: w.renew,
            claim_next: w.claim_next,
            usage: w.usage,
            keyed_submits: w.keyed_submits,
            concurrency_key: w.concurrency_key.clone(),
            jobs: w.jobs,
            deadline,
            next_job: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            usage_reported: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            failovers: AtomicU64::new(0),
            lost_claims: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            fatal: Mutex::new(None),
            watched,
            end_sample: Mutex::new(None),
        }
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire) || Instant::now() >= self.deadline
    }

    fn fail(&self, why: String) {
        let mut fatal = self.fatal.lock().expect("fatal lock poisoned");
        fatal.get_or_insert(why);
        self.stop.store(true, Ordering::Release);
    }

    fn post(&self, base: &str, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{base}{path}")).bearer_auth(token)
    }

    /// Sends until answered, retrying as `retry` allows, at most `SEND_ATTEMPTS_MAX` times and
    /// not past the deadline; `build` gets the base URL of the node `route` points at. A body
    /// of `None` is a 204.
    async fn send(
        &self,
        what: &str,
        retry: Retry,
        route: &Route,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<Reply> {
        let mut attempts = 0;
        let mut after_loss = false;
        loop {
            attempts += 1;
            let node = route.node(self.nodes.len());
            let why = match build(&self.nodes[node]).send().await {
                Ok(resp) => {
                    let status = resp.status();
                    if status == StatusCode::NO_CONTENT {
                        return Ok(Reply {
                            body: None,
                            after_loss,
                        });
                    }
                    match resp.bytes().await {
                        Ok(body) if status.is_success() => {
                            return Ok(Reply {
                                body: Some(body.to_vec()),
                                after_loss,
                            });
                        }
                        Ok(body)
                            if status == StatusCode::TOO_MANY_REQUESTS
                                || (status == StatusCode::SERVICE_UNAVAILABLE
                                    && retry != Retry::Refused) =>
                        {
                            format!("{status}: {}", String::from_utf8_lossy(&body))
                        }
                        Ok(body) => {
                            let why = format!("{status}: {}", String::from_utf8_lossy(&body));
                            return Err(Error::request(what, why));
                        }
                        Err(e) => self.lost(what, retry, route, node, &e, &mut after_loss)?,
                    }
                }
                Err(e) => self.lost(what, retry, route, node, &e, &mut after_loss)?,
            };
            if attempts >= SEND_ATTEMPTS_MAX || Instant::now() >= self.deadline {
                let why = format!("gave up after {attempts} attempts: {why}");
                return Err(Error::request(what, why));
            }
            self.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(RETRY_PAUSE_MS)).await;
        }
    }

    /// GETs `path` as the admin from the first node, as a `T`: the reads that check a run.
    async fn read<T: serde::de::DeserializeOwned>(&self, what: &str, path: &str) -> Result<T> {
        let route = Route::new(0, self.nodes.len());
        let body = self
            .send(what, Retry::Idempotent, &route, |base| {
                self.http
                    .get(format!("{base}{path}"))
                    .bearer_auth(&self.admin)
            })
            .await?
            .body
            .unwrap_or_default();
        parse(what, &body)
    }

    /// A request that got no answer from `node`: moves the route on and says why, when the
    /// request may be sent again; fails otherwise.
    fn lost(
        &self,
        what: &str,
        retry: Retry,
        route: &Route,
        node: usize,
        e: &reqwest::Error,
        after_loss: &mut bool,
    ) -> Result<String> {
        let again = match retry {
            Retry::Idempotent => true,
            Retry::Unanswered => self.nodes.len() > 1,
            Retry::Refused => false,
        };
        if !again {
            return Err(Error::request(
                what,
                format!("no answer ({e}); not retried"),
            ));
        }
        // A refused connection never reached the node; anything else may have taken effect.
        if !e.is_connect() {
            *after_loss = true;
            if retry == Retry::Unanswered {
                self.lost_claims.fetch_add(1, Ordering::Relaxed);
            }
        }
        if route.fail_over(node, self.nodes.len()) {
            self.failovers.fetch_add(1, Ordering::Relaxed);
        }
        Ok(e.to_string())
    }
}

/// Reads the answer to the request `what` as a `T`.
fn parse<T: serde::de::DeserializeOwned>(what: &str, body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| {
        let why = format!("unexpected answer ({e}): {}", String::from_utf8_lossy(body));
        Error::request(what, why)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_fails_over_once_per_failed_node() {
        let r = Route::new(3, 3);
        assert_eq!(r.node(3), 0);
        assert!(r.fail_over(0, 3));
        // A second slot that also failed on node 0 must not skip node 1.
        assert!(!r.fail_over(0, 3));
        assert_eq!(r.node(3), 1);
        assert!(r.fail_over(1, 3));
        assert!(r.fail_over(2, 3));
        assert_eq!(r.node(3), 0);
        assert!(
            !Route::new(0, 1).fail_over(0, 1),
            "one node has nowhere to go"
        );
    }
}
