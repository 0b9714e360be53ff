//! Waking an actor when a signal key changes (`("signal", name)`, bumped by every commit that
//! concerns its readers): a task arms a watch, waits for it to fire, tells the actor, and
//! arms the next after `min_interval_ms`, so a burst of commits costs one wake-up each
//! interval. It ends when the actor is gone. A change between two watches may be seen only
//! at the next one: readers that must not miss one also re-read on a timer, or arm the watch
//! in the transaction of their read. [`AbortOnDrop`] ends a task that holds a watch (and so
//! the store) with the actor state that keeps it, however the actor ends.

use std::sync::Arc;
use std::time::Duration;

use gigafactory_storage::WatchTarget;

use crate::context::Context;

/// Watches `target` until `wake` says the actor is gone (returns false), or until aborted.
pub(crate) fn on_signal(
    ctx: Arc<Context>,
    target: WatchTarget,
    min_interval_ms: u64,
    wake: impl Fn() -> bool + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let watch = match gigafactory_storage::Store::watch(&ctx.store, target.clone()).await {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(error = %e, ?target, "cannot watch a signal; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Err(e) = watch.await {
                tracing::debug!(error = %e, ?target, "signal watch ended; re-arming");
            }
            if !wake() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(min_interval_ms)).await;
        }
    })
}

/// A task aborted when this is dropped.
pub(crate) struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
