//! `--policies on`: before the run the bench sets a concurrency limit on the bench's product and
//! one on the key every job carries, each far above what a run reaches, so every claim pays
//! for checking and counting them and none is ever held; `--policies rate` also sets a rate
//! limit on the product (never reached either), whose next start every claim moves.

use super::{BENCH_PRODUCT, Retry, Route, Shared};
use crate::harness::POLICY_KEY;
use crate::harness::error::Result;

/// Leases at once, and starts a minute (one every 60 µs), that no run reaches.
const NEVER_REACHED: u32 = 1_000_000;

pub(crate) async fn set_limits(sh: &Shared, rate: bool) -> Result<()> {
    let product = format!("product:{BENCH_PRODUCT}");
    let mut on_product = serde_json::json!({ "max_running": NEVER_REACHED });
    if rate {
        on_product["per_minute"] = NEVER_REACHED.into();
    }
    let limits = [
        (product.as_str(), on_product),
        (
            POLICY_KEY,
            serde_json::json!({ "max_running": NEVER_REACHED }),
        ),
    ];
    let route = Route::new(0, sh.nodes.len());
    for (key, body) in limits {
        let path = format!("/v1/limits/{}", gigafactory_core::wire::urlencode(key));
        sh.send("set limit", Retry::Idempotent, &route, |base| {
            sh.http
                .put(format!("{base}{path}"))
                .bearer_auth(&sh.admin)
                .json(&body)
        })
        .await?;
    }
    Ok(())
}
