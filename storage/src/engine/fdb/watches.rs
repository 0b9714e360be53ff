//! Watches on FoundationDB: reading and extending the namespace's prefix-watch registry, and
//! arming key watches (a prefix watch is a key watch on the prefix's counter).
//!
//! A key watch is FoundationDB's own. It is armed by a separate transaction pinned to the
//! watching transaction's read version, so it is armed whether or not that transaction
//! commits, and a change committed between that version and the arming is caught: FoundationDB
//! watches compare values, and the baseline is read at the pinned version. Being value
//! comparisons, they can miss a change that is undone before the storage server looks (A to B
//! and back to A). Counters only grow, so prefix watches cannot; and a prefix watch, like the
//! embedded engine's, fires on any write under the prefix, even one that changed nothing.

use std::time::Duration;

use foundationdb::FdbResult;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::errors::{Stage, TRANSACTION_TOO_OLD};
use super::registry::Registry;
use super::store::{FdbStore, fdb_error, outside_error, read_range};
use crate::buffer::add_le;
use crate::error::{Error, Result};
use crate::limits::{self, RANGE_MAX_ROWS};
use crate::txn::{RangeOptions, RetryPolicy, Watch, WatchTarget};

impl FdbStore {
    /// Reads the namespace's registry, first registering this handle's wanted prefixes that
    /// it lacks. Registration is idempotent, so unlike a caller's transaction it is retried
    /// after an unknown outcome too.
    pub(super) async fn load_registry(&self) -> Result<Registry> {
        let policy = RetryPolicy::default();
        let mut attempts = 0;
        loop {
            match self.read_or_register().await {
                Err(e @ (Error::Conflict | Error::CommitUnknown(_))) => {
                    attempts += 1;
                    if attempts >= policy.attempts_max {
                        tracing::warn!(error = %e, "cannot register FoundationDB watch prefixes");
                        return Err(Error::RetryLimitReached { attempts });
                    }
                    tokio::time::sleep(policy.backoff(attempts)).await;
                }
                outcome => return outcome,
            }
        }
    }

    /// One attempt of [`FdbStore::load_registry`].
    async fn read_or_register(&self) -> Result<Registry> {
        let namespace = self.shared.namespace.as_slice();
        let trx = self.new_trx()?;
        // A short transaction of its own, far from the age limit: its errors map as a young
        // transaction's.
        let young = Duration::ZERO;
        let read = |e| {
            fdb_error(
                e,
                Stage::Read {
                    age: young,
                    waited: young,
                },
            )
        };
        // Not a snapshot read: a registration racing this one makes one of them conflict.
        let version_key = Registry::version_key_in(namespace);
        let version = trx.get(&version_key, false).await.map_err(read)?;
        let version = version.map(|v| v.to_vec());
        let listing = Registry::listing(namespace);
        let opts = RangeOptions::limit(RANGE_MAX_ROWS).snapshot();
        let rows = read_range(&trx, &listing.begin, &listing.end, opts)
            .await
            .map_err(read)?;
        let listed = rows
            .iter()
            .filter_map(|(key, _)| Registry::listed_prefix(namespace, key))
            .map(<[u8]>::to_vec);
        let stored = Registry::new(namespace, version.clone(), listed);
        let missing = stored.missing(&self.shared.wanted);
        if missing.is_empty() {
            return Ok(stored);
        }
        let next_version = add_le(version.as_deref(), 1);
        let grown = stored.with(namespace, &missing, next_version.clone())?;
        for prefix in &missing {
            trx.set(&Registry::listing_key(namespace, prefix), b"");
        }
        trx.set(&version_key, &next_version);
        trx.commit().await.map_err(|e| {
            fdb_error(
                *e,
                Stage::Commit {
                    age: young,
                    charged: 0,
                },
            )
        })?;
        tracing::info!(
            prefixes = missing.len(),
            "registered FoundationDB watch prefixes"
        );
        Ok(grown)
    }

    /// Arms a watch on `target` that fires on any change after `read_version` (the latest
    /// version if `None`). The watch belongs to a read-only transaction of its own: FoundationDB
    /// activates a watch when its transaction commits, and committing a transaction without
    /// writes succeeds at once. Its read of the watched key, at the pinned version, is the
    /// value the storage server compares against.
    pub(super) async fn arm(
        &self,
        target: &WatchTarget,
        read_version: Option<i64>,
    ) -> Result<Watch> {
        self.usable()?;
        limits::check_watchable(target)?;
        let key = match target {
            WatchTarget::Key(k) => self.full(k),
            WatchTarget::Prefix(p) => self.counter_of(p).await?,
        };
        let trx = self.new_trx()?;
        if let Some(v) = read_version {
            trx.set_read_version(v);
        }
        let asked = Instant::now();
        let armed = trx.watch(&key);
        if let Err(e) = trx.commit().await {
            let e = *e;
            if e.code() == TRANSACTION_TOO_OLD {
                return Ok(fired_now());
            }
            let waited = asked.elapsed();
            // For a transaction's watch, a retryable failure makes the transaction start over;
            // for the store's, there is no transaction to start over.
            let stage = match read_version {
                Some(_) => Stage::Read {
                    age: waited,
                    waited,
                },
                None => Stage::Outside,
            };
            return Err(fdb_error(e, stage));
        }
        let (mut fire, fired) = oneshot::channel();
        tokio::spawn(async move {
            let outcome = tokio::select! {
                // Nobody waits any more: dropping `armed` cancels the FoundationDB watch.
                _ = fire.closed() => return,
                outcome = armed => outcome,
            };
            let _ = fire.send(watch_outcome(outcome));
        });
        Ok(Watch { fired })
    }

    /// The counter key of a registered `prefix`, rereading the registry once if this handle
    /// does not know it: another handle may have registered it since.
    async fn counter_of(&self, prefix: &[u8]) -> Result<Vec<u8>> {
        if let Some(counter) = self.registry().await?.counter(prefix) {
            return Ok(counter.to_vec());
        }
        self.forget_registry();
        match self.registry().await?.counter(prefix) {
            Some(counter) => Ok(counter.to_vec()),
            None => Err(Error::Config(format!(
                "prefix \"{}\" is not registered for watches (FdbStore::with_watch_prefixes)",
                prefix.escape_ascii()
            ))),
        }
    }
}

/// A watch that has already fired.
fn fired_now() -> Watch {
    let (fire, fired) = oneshot::channel();
    let _ = fire.send(Ok(()));
    Watch { fired }
}

/// What an armed FoundationDB watch's end means for the caller.
fn watch_outcome(outcome: FdbResult<()>) -> Result<()> {
    match outcome {
        Ok(()) => Ok(()),
        // The baseline could not be read at the pinned version, which has left the cluster's
        // history: a change may have been missed, so report one (the caller re-reads).
        Err(e) if e.code() == TRANSACTION_TOO_OLD => Ok(()),
        Err(e) => {
            tracing::debug!(error = %e, code = e.code(), "FoundationDB watch failed");
            Err(outside_error(e))
        }
    }
}
