//! Helpers the actor tests share: starting a node again on a store an earlier node used, and
//! enrolling a factory. Each test binary uses some of them.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gigafactory_actors::{Clock, Config, Coordinator};
use gigafactory_core::fleet::Role;
use gigafactory_core::wire::{EnrollRequest, EnrollResponse};
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

/// Enrolls a Linux factory named `f` with `slots` slots, no capabilities, at
/// `cost_per_hour_usd`.
pub async fn enroll(coord: &Coordinator, slots: u32, cost_per_hour_usd: f64) -> EnrollResponse {
    let token = coord
        .mint_token(Role::Enrollment, "t", None, None)
        .await
        .unwrap()
        .token;
    let req = EnrollRequest {
        name: "f".into(),
        os: "linux".into(),
        arch: "x86_64".into(),
        capabilities: vec![],
        engine_classes: vec![],
        slots,
        cost_per_hour_usd,
    };
    coord.enroll(&token, req).await.unwrap()
}
