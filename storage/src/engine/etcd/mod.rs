//! The etcd engine: serializable transactions over etcd v3. A transaction reads at one etcd
//! revision `R` (its first read fixes it) and commits with one etcd `Txn` whose compares
//! assert that nothing it read changed after `R`: every key it saw still has the
//! `mod_revision` it had, every key it found absent is still absent, and no key in a range it
//! read was created or modified (a range compare `mod_revision < R+1`). The writes apply only if
//! all compares hold; otherwise the commit is a conflict and `transact!` retries.
//!
//! Only the first read is linearizable (a round through the leader); the rest read the fixed
//! revision `R` serializably from the member that answered, which has applied `R` and so holds
//! exactly its state, at no cost to the leader. A member that has not (after a failover)
//! answers "future revision", which is a conflict: the transaction starts over.
//!
//! etcd's client does not fail over by itself (with a member down, requests through it fail),
//! so each endpoint gets its own client and requests move to the next endpoint on a transport
//! failure. A commit is moved only when it certainly did not reach a server; any other failure
//! after sending is an unknown outcome.
//!
//! Errors mean what the FoundationDB engine's mean for the same cause (`classify_status`, and
//! the table in ARCHITECTURE.md): a refusal that passes (a lagging member, a compacted
//! revision, a member shedding load) is a conflict, which `transact!` retries; a request that
//! may have been applied is `CommitUnknown`; no member reachable is `Unavailable`.
//!
//! A transaction whose range reads returned many rows can still exceed a member's
//! `--max-txn-ops` or `--max-request-bytes` where FoundationDB would take it: every row read
//! becomes a compare. The member's refusal is an `Engine` error.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

mod failure;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, GetResponse, SortOrder,
    SortTarget, Txn, TxnOp, TxnResponse, WatchOptions,
};
use tokio::sync::{Mutex, oneshot};

use self::failure::{Failure, classify};
use crate::buffer::{Buffered, Mutations, Op, Source, add_le};
use crate::error::{Error, Result};
use crate::limits::NAMESPACE_MAX_BYTES;
use crate::txn::{KeyRange, KeyValue, Store, Watch, WatchTarget};

/// Every etcd request's deadline; past it the outcome of a commit is unknown.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// HTTP/2 pings find a dead or paused member. etcd closes connections that ping more often than
/// its `--grpc-keepalive-min-time` (5 s by default), so stay above it.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// How many times a read goes round every endpoint, pausing longer between rounds, before the
/// store is reported unavailable: long enough to span a leader election (500 ms in tests).
const READ_ROUNDS: usize = 3;
const READ_ROUND_PAUSE: Duration = Duration::from_millis(250);
/// Times a watch re-subscribes (on any endpoint) after its stream breaks before it reports an
/// error. Re-subscribing loses nothing: the start revision is fixed.
const WATCH_RESUBSCRIBE_MAX: usize = 6;
/// Largest response accepted. The store's own limits already bound a read (rows per range
/// read, key and value sizes), so none is added here; tonic's 4 MiB default would refuse a
/// range read of 41 full-size values.
const RESPONSE_MAX_BYTES: usize = usize::MAX;
/// Key prefix when the URL names none, so one etcd cluster can hold other data too.
pub const DEFAULT_NAMESPACE: &str = "gigafactory/";

struct Endpoint {
    url: String,
    client: Mutex<Option<Client>>,
}

struct Shared {
    endpoints: Vec<Endpoint>,
    /// The endpoint that answered last; requests start there.
    preferred: AtomicUsize,
    namespace: Vec<u8>,
}

/// Handle to an etcd-backed store; cheap to clone.
#[derive(Clone)]
pub struct EtcdStore {
    shared: Arc<Shared>,
}

/// The two requests the engine sends.
enum Request {
    Get(Vec<u8>, GetOptions),
    Txn(Txn),
}

enum Response {
    Get(GetResponse),
    Txn(TxnResponse),
}

impl EtcdStore {
    /// Connects lazily to `endpoints` (`host:port` or `http://host:port`); keys live under
    /// `namespace`.
    pub fn new(endpoints: &[String], namespace: &[u8]) -> Result<Self> {
        if endpoints.is_empty() {
            return Err(Error::Config("etcd needs at least one endpoint".into()));
        }
        // The size guard charges every key as if it carried a namespace this long.
        if namespace.len() > NAMESPACE_MAX_BYTES {
            return Err(Error::Config(format!(
                "etcd namespace \"{}\" is longer than {NAMESPACE_MAX_BYTES} bytes",
                namespace.escape_ascii()
            )));
        }
        let endpoints = endpoints
            .iter()
            .map(|e| {
                let url = if e.contains("://") {
                    e.clone()
                } else {
                    format!("http://{e}")
                };
                Endpoint {
                    url,
                    client: Mutex::new(None),
                }
            })
            .collect();
        let shared = Shared {
            endpoints,
            preferred: AtomicUsize::new(0),
            namespace: namespace.to_vec(),
        };
        Ok(EtcdStore {
            shared: Arc::new(shared),
        })
    }

    /// Parses the part of a store URL after `etcd://`: `host:port,host:port[/namespace]`.
    pub fn from_url_rest(rest: &str) -> Result<Self> {
        let (hosts, namespace) = match rest.split_once('/') {
            Some((h, ns)) if !ns.is_empty() => (h, ns.to_string()),
            Some((h, _)) => (h, DEFAULT_NAMESPACE.to_string()),
            None => (rest, DEFAULT_NAMESPACE.to_string()),
        };
        let endpoints: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .collect();
        if endpoints.iter().any(|h| !h.contains(':')) {
            return Err(Error::Config(format!(
                "etcd endpoints must be host:port, got {hosts:?}"
            )));
        }
        Self::new(&endpoints, namespace.as_bytes())
    }

    async fn client(&self, index: usize) -> Result<Client, Failure> {
        let endpoint = &self.shared.endpoints[index];
        let mut slot = endpoint.client.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let opts = ConnectOptions::new()
            .with_timeout(REQUEST_TIMEOUT)
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_keep_alive(KEEP_ALIVE_INTERVAL, KEEP_ALIVE_TIMEOUT);
        let client = Client::connect([endpoint.url.as_str()], Some(opts))
            .await
            .map_err(classify)?;
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Sends `req` to each endpoint in turn, from the preferred one, until one answers or
    /// fails for a reason another endpoint would not fix.
    async fn send(&self, req: &Request) -> Result<Response, Failure> {
        let n = self.shared.endpoints.len();
        let start = self.shared.preferred.load(Ordering::Relaxed);
        let mut last = Failure::NotSent("no endpoint tried".into());
        for i in 0..n {
            let index = (start + i) % n;
            match self.send_to(req, index).await {
                Ok(v) => return Ok(v),
                Err(Failure::NotSent(msg)) => {
                    tracing::debug!(endpoint = %self.shared.endpoints[index].url, error = %msg, "etcd endpoint unavailable");
                    last = Failure::NotSent(msg);
                }
                Err(other) => return Err(other),
            }
        }
        Err(last)
    }

    /// Sends `req` to endpoint `index` alone; an answer makes it the preferred one.
    async fn send_to(&self, req: &Request, index: usize) -> Result<Response, Failure> {
        let client = self.client(index).await?;
        let mut kv = client
            .kv_client()
            .max_decoding_message_size(RESPONSE_MAX_BYTES);
        let answer = match req {
            Request::Get(key, opts) => kv
                .get(key.clone(), Some(opts.clone()))
                .await
                .map(Response::Get),
            Request::Txn(txn) => kv.txn(txn.clone()).await.map(Response::Txn),
        }
        .map_err(classify)?;
        self.shared.preferred.store(index, Ordering::Relaxed);
        Ok(answer)
    }

    /// A read: idempotent, so a failure of any kind moves on to the next endpoint. The walk
    /// is this read's own: other reads moving the preferred endpoint at the same time must
    /// not send it back to the member that just failed it.
    async fn get(&self, key: Vec<u8>, opts: GetOptions) -> Result<GetResponse> {
        let req = Request::Get(key, opts);
        let n = self.shared.endpoints.len();
        let base = self.shared.preferred.load(Ordering::Relaxed);
        let mut last = String::new();
        for k in 0..n * READ_ROUNDS {
            if k > 0 && k % n == 0 {
                // Every member failed it: an election in progress, most likely. Wait it out.
                tokio::time::sleep(READ_ROUND_PAUSE * (k / n) as u32).await;
            }
            let index = (base + k) % n;
            match self.send_to(&req, index).await {
                Ok(Response::Get(resp)) => return Ok(resp),
                Ok(Response::Txn(_)) => unreachable!("a get is answered by a get response"),
                // Nothing of the transaction is committed yet: retrying a refusal is as safe
                // at a read as at the commit, and means the same.
                Err(f @ (Failure::Retry(_) | Failure::Refused(_))) => return Err(f.into_error()),
                Err(Failure::NotSent(msg) | Failure::Maybe(msg)) => {
                    tracing::debug!(endpoint = %self.shared.endpoints[index].url, error = %msg, "etcd read failed; trying the next endpoint");
                    last = msg;
                    self.move_past(index);
                }
            }
        }
        Err(Error::Unavailable(last))
    }

    /// Prefers the endpoint after `failed`, unless another request already moved on.
    fn move_past(&self, failed: usize) {
        let n = self.shared.endpoints.len();
        let _ = self.shared.preferred.compare_exchange(
            failed,
            (failed + 1) % n,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    fn full(&self, key: &[u8]) -> Vec<u8> {
        let mut k = self.shared.namespace.clone();
        k.extend_from_slice(key);
        k
    }

    /// The current revision of the cluster.
    async fn revision(&self) -> Result<i64> {
        let key = self.full(b"");
        let resp = self.get(key, GetOptions::new().with_count_only()).await?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }
}

impl Store for EtcdStore {
    type Txn = Buffered<EtcdSource>;

    async fn begin(&self) -> Result<Self::Txn> {
        Ok(Buffered::new(EtcdSource {
            store: self.clone(),
            revision: None,
            seen: BTreeMap::new(),
            point_reads: BTreeSet::new(),
            range_reads: Vec::new(),
        }))
    }
}

/// One etcd transaction's snapshot revision and what it read.
pub struct EtcdSource {
    store: EtcdStore,
    /// Fixed by the first read; every later read is at this revision.
    revision: Option<i64>,
    /// Every key read from etcd, with its `mod_revision` (0: absent).
    seen: BTreeMap<Vec<u8>, i64>,
    point_reads: BTreeSet<Vec<u8>>,
    range_reads: Vec<KeyRange>,
}

impl EtcdSource {
    async fn get_at(&mut self, key: &[u8]) -> Result<Option<etcd_client::KeyValue>> {
        let full = self.store.full(key);
        let mut opts = GetOptions::new();
        if let Some(r) = self.revision {
            opts = opts.with_revision(r).with_serializable();
        }
        let mut resp = self.store.get(full, opts).await?;
        if self.revision.is_none() {
            self.revision = resp.header().map(|h| h.revision());
        }
        let kv = resp.take_kvs().into_iter().next();
        self.seen
            .insert(key.to_vec(), kv.as_ref().map_or(0, |kv| kv.mod_revision()));
        Ok(kv)
    }

    fn compares(&self) -> Vec<Compare> {
        let Some(rev) = self.revision else {
            return Vec::new();
        };
        let mut keys: BTreeSet<&Vec<u8>> = self.point_reads.iter().collect();
        let mut out = Vec::new();
        for r in &self.range_reads {
            out.push(
                Compare::mod_revision(self.store.full(&r.begin), CompareOp::Less, rev + 1)
                    .with_range(self.store.full(&r.end)),
            );
            // A key that was in the range and is now deleted escapes the range compare.
            keys.extend(
                self.seen
                    .range(r.begin.clone()..r.end.clone())
                    .map(|(k, _)| k),
            );
        }
        for key in keys {
            let full = self.store.full(key);
            out.push(match self.seen.get(key).copied().unwrap_or(0) {
                0 => Compare::version(full, CompareOp::Equal, 0),
                m => Compare::mod_revision(full, CompareOp::Equal, m),
            });
        }
        out
    }
}

impl Source for EtcdSource {
    async fn read(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.get_at(key).await?.map(|kv| kv.value().to_vec()))
    }

    async fn read_page(
        &mut self,
        range: &KeyRange,
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<KeyValue>> {
        let (begin, end) = (self.store.full(&range.begin), self.store.full(&range.end));
        let mut opts = GetOptions::new().with_range(end).with_limit(limit as i64);
        if let Some(r) = self.revision {
            opts = opts.with_revision(r).with_serializable();
        }
        if reverse {
            opts = opts.with_sort(SortTarget::Key, SortOrder::Descend);
        }
        let mut resp = self.store.get(begin, opts).await?;
        if self.revision.is_none() {
            self.revision = resp.header().map(|h| h.revision());
        }
        let ns = self.store.shared.namespace.len();
        let rows: Vec<KeyValue> = resp
            .take_kvs()
            .into_iter()
            .map(|kv| {
                let m = kv.mod_revision();
                let (k, v) = kv.into_key_value();
                let key = k[ns..].to_vec();
                self.seen.insert(key.clone(), m);
                (key, v)
            })
            .collect();
        Ok(rows)
    }

    fn add_read_conflict(&mut self, range: KeyRange) {
        if range.end.len() == range.begin.len() + 1
            && range.end.last() == Some(&0)
            && range.end.starts_with(&range.begin)
        {
            self.point_reads.insert(range.begin);
        } else {
            self.range_reads.push(range);
        }
    }

    async fn watch(&mut self, target: WatchTarget) -> Result<Watch> {
        let since = match self.revision {
            Some(r) => r,
            None => self.store.revision().await?,
        };
        let range = target.range();
        let (begin, end) = (self.store.full(&range.begin), self.store.full(&range.end));
        let opts = WatchOptions::new()
            .with_range(end)
            .with_start_revision(since + 1);
        let store = self.store.clone();
        let (mut fire, fired) = oneshot::channel();
        tokio::spawn(async move {
            let outcome = watch_once(&store, begin, opts, &mut fire).await;
            let _ = fire.send(outcome);
        });
        Ok(Watch { fired })
    }

    async fn commit(mut self, writes: Mutations) -> Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        let mut ops = Vec::with_capacity(writes.ops.len() + writes.cleared.len());
        let mut put_keys = Vec::new();
        for (key, op) in writes.ops {
            match op {
                Op::Set(v) => {
                    ops.push(TxnOp::put(self.store.full(&key), v, None));
                    put_keys.push(key);
                }
                Op::Clear => ops.push(TxnOp::delete(self.store.full(&key), None)),
                Op::Add(delta) => {
                    // etcd has no atomic add: read, add, and make the commit depend on the read.
                    let base = self.get_at(&key).await?.map(|kv| kv.value().to_vec());
                    self.point_reads.insert(key.clone());
                    ops.push(TxnOp::put(
                        self.store.full(&key),
                        add_le(base.as_deref(), delta),
                        None,
                    ));
                    put_keys.push(key);
                }
            }
        }
        // etcd refuses a put inside a range the same request deletes: cut the ranges around them.
        for r in split_around(&writes.cleared, &put_keys) {
            let opts = DeleteOptions::new().with_range(self.store.full(&r.end));
            ops.push(TxnOp::delete(self.store.full(&r.begin), Some(opts)));
        }
        let txn = Txn::new().when(self.compares()).and_then(ops);
        match self.store.send(&Request::Txn(txn)).await {
            Ok(Response::Txn(resp)) if resp.succeeded() => Ok(()),
            Ok(Response::Txn(_)) => Err(Error::Conflict),
            Ok(Response::Get(_)) => unreachable!("a txn is answered by a txn response"),
            Err(failure) => Err(failure.into_error()),
        }
    }
}

/// Cuts `ranges` so that none contains a key of `keys` (both sorted by the caller's buffer).
fn split_around(ranges: &[KeyRange], keys: &[Vec<u8>]) -> Vec<KeyRange> {
    let mut out = Vec::with_capacity(ranges.len());
    for r in ranges {
        let mut begin = r.begin.clone();
        for k in keys.iter().filter(|k| r.contains(k)) {
            if begin < *k {
                out.push(KeyRange::new(begin.clone(), k.clone()));
            }
            begin = KeyRange::single(k).end;
        }
        if begin < r.end {
            out.push(KeyRange::new(begin, r.end.clone()));
        }
    }
    out
}

/// Waits for the first event of one etcd watch, or for its receiver to go away. A broken stream
/// is re-subscribed from the same start revision, on the next endpoint.
async fn watch_once(
    store: &EtcdStore,
    key: Vec<u8>,
    opts: WatchOptions,
    fire: &mut oneshot::Sender<Result<()>>,
) -> Result<()> {
    let n = store.shared.endpoints.len();
    let start = store.shared.preferred.load(Ordering::Relaxed);
    let mut last = String::new();
    for attempt in 0..WATCH_RESUBSCRIBE_MAX {
        let client = match store.client((start + attempt) % n).await {
            Ok(c) => c,
            Err(
                Failure::NotSent(m) | Failure::Maybe(m) | Failure::Retry(m) | Failure::Refused(m),
            ) => {
                last = m;
                continue;
            }
        };
        let mut stream = match client
            .watch_client()
            .watch(key.clone(), Some(opts.clone()))
            .await
        {
            Ok(s) => s,
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        loop {
            tokio::select! {
                _ = fire.closed() => return Ok(()),
                msg = stream.message() => match msg {
                    Ok(Some(resp)) if resp.canceled() || !resp.events().is_empty() => return Ok(()),
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        last = "etcd watch stream ended".into();
                        break;
                    }
                    Err(e) => {
                        last = e.to_string();
                        break;
                    }
                },
            }
        }
        tracing::debug!(error = %last, attempt, "etcd watch stream broke, re-subscribing");
    }
    Err(Error::Unavailable(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleared_ranges_are_cut_around_keys_written_in_them() {
        let ranges = [KeyRange::new(b"a".to_vec(), b"z".to_vec())];
        let keys = [b"c".to_vec(), b"m".to_vec()];
        let cut = split_around(&ranges, &keys);
        assert_eq!(
            cut,
            vec![
                KeyRange::new(b"a".to_vec(), b"c".to_vec()),
                KeyRange::new(b"c\0".to_vec(), b"m".to_vec()),
                KeyRange::new(b"m\0".to_vec(), b"z".to_vec()),
            ]
        );
    }

    #[test]
    fn store_urls_name_endpoints_and_an_optional_namespace() {
        let s = EtcdStore::from_url_rest("127.0.0.1:2379,127.0.0.1:2381/team-a/").unwrap();
        assert_eq!(s.shared.endpoints.len(), 2);
        assert_eq!(s.shared.namespace, b"team-a/".to_vec());
        assert_eq!(
            EtcdStore::from_url_rest("h1:1").unwrap().shared.namespace,
            DEFAULT_NAMESPACE.as_bytes()
        );
        assert!(EtcdStore::from_url_rest("nohost").is_err());
        let long = format!("h1:1/{}", "n".repeat(NAMESPACE_MAX_BYTES + 1));
        assert!(matches!(
            EtcdStore::from_url_rest(&long),
            Err(Error::Config(_))
        ));
    }
}
