//! Helpers the actor tests share: starting a node again on a store an earlier node used.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gigafactory_actors::{Clock, Config, Coordinator};
use gigafactory_storage::AnyStore;

/// Opens the embedded store in `dir` once the node that used it let go of it (its actors stop
/// after `Coordinator::stop`, and drop the handle then), and starts a node on it.
pub async fn restart(dir: &Path, config: Config, clock: Arc<dyn Clock>) -> Coordinator {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match AnyStore::open(&format!("embedded:{}", dir.display())) {
            Ok(store) => return Coordinator::start(store, config, clock).await.unwrap(),
            Err(e) => {
                assert!(Instant::now() < deadline, "store never released: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
