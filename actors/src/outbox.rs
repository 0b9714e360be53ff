//! `OutboxActor`: delivers what trackers are owed. Every `outbox_interval_ms` it reads the
//! deliveries due (written in the transactions of the job changes they echo) and, for those
//! of shards this node owns, POSTs each to its source's callback through the node's
//! [`Courier`](crate::courier::Courier): signed with HMAC-SHA256, carrying the delivery's id as
//! its idempotency key. A 2xx settles it; anything else retries it later with backoff and
//! jitter, until `outbox_tries_max` tries dead-letter it. Delivery happens outside any
//! transaction and never touches the job: a tracker that is down delays echoes, nothing else.
//! The outcome is written in a transaction that re-reads the delivery, so a try another node
//! settled meanwhile (a shard that moved) is not settled twice; the tracker may see a delivery
//! twice (at least once), with the same key.

use std::sync::Arc;
use std::time::Duration;

use gigafactory_core::tracker::{self, Delivery, DeliveryStatus};
use gigafactory_storage::{repo, transact};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use rand::Rng;

use crate::context::Context;

pub(crate) enum OutboxMsg {
    DeliverTick,
}

pub(crate) struct OutboxActor;

impl Actor for OutboxActor {
    type Msg = OutboxMsg;
    type State = Arc<Context>;
    type Arguments = Arc<Context>;

    async fn pre_start(
        &self,
        myself: ActorRef<OutboxMsg>,
        ctx: Arc<Context>,
    ) -> Result<Arc<Context>, ActorProcessingErr> {
        myself.send_interval(Duration::from_millis(ctx.config.outbox_interval_ms), || {
            OutboxMsg::DeliverTick
        });
        Ok(ctx)
    }

    async fn handle(
        &self,
        _: ActorRef<OutboxMsg>,
        msg: OutboxMsg,
        ctx: &mut Arc<Context>,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            OutboxMsg::DeliverTick => deliver_due(ctx).await,
        }
        Ok(())
    }
}

async fn deliver_due(ctx: &Arc<Context>) {
    let now = ctx.now();
    let batch = ctx.config.outbox_batch_max;
    let due = match transact!(ctx.store, |tx| repo::due_deliveries(tx, now, batch).await) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "outbox cannot read what is due");
            return;
        }
    };
    let owned = ctx.owned_shards();
    for (shard, id) in due {
        if owned.as_ref().is_some_and(|o| !o.contains(&shard)) {
            continue;
        }
        if let Err(e) = deliver(ctx, &id).await {
            tracing::warn!(delivery = %id, error = %e, "cannot settle a delivery");
        }
    }
}

/// Tries one delivery and records how it went.
async fn deliver(ctx: &Arc<Context>, id: &str) -> Result<(), gigafactory_storage::Error> {
    let Some(d) = transact!(ctx.store, |tx| repo::load_delivery(tx, id).await)? else {
        return Ok(());
    };
    if d.status != DeliveryStatus::Pending {
        return Ok(());
    }
    let source = ctx.config.intake.get(&d.item.source);
    let answer = match source.and_then(|s| s.callback_url.clone().map(|u| (s, u))) {
        None => Err("the source has no callback any more".to_owned()),
        Some((s, url)) => {
            let secret = s.callback_secret.as_deref().unwrap_or(&s.secret);
            let headers = vec![
                ("content-type".to_owned(), "application/json".to_owned()),
                (
                    "x-gigafactory-signature".to_owned(),
                    tracker::sign(secret.as_bytes(), d.body.as_bytes()),
                ),
                ("idempotency-key".to_owned(), d.id.clone()),
                ("x-gigafactory-event".to_owned(), d.echo.event.clone()),
            ];
            let sent = ctx.courier.post(url, d.body.clone().into_bytes(), headers);
            let limit = Duration::from_millis(ctx.config.outbox_timeout_ms);
            match tokio::time::timeout(limit, sent).await {
                Ok(Ok(status)) if (200..300).contains(&status) => Ok(status),
                Ok(Ok(status)) => Err(format!("HTTP {status}")),
                Ok(Err(why)) => Err(why),
                Err(_) => Err(format!("no answer within {} ms", limit.as_millis())),
            }
        }
    };
    let now = ctx.now();
    let settled = settled(ctx, &d, answer, now);
    let outcome = settled.status;
    let written = transact!(ctx.store, |tx| {
        match repo::load_delivery(tx, id).await? {
            // Settled elsewhere meanwhile (its shard moved): leave it.
            Some(current) if current == d => {
                repo::settle_delivery(tx, &current, &settled)?;
                Ok::<_, gigafactory_storage::Error>(true)
            }
            _ => Ok(false),
        }
    })?;
    if written {
        let counter = match outcome {
            DeliveryStatus::Delivered => "gigafactory_outbox_delivered_total",
            DeliveryStatus::Pending => "gigafactory_outbox_retried_total",
            DeliveryStatus::DeadLetter => "gigafactory_outbox_dead_lettered_total",
        };
        metrics::counter!(counter, "source" => d.item.source.clone()).increment(1);
        if outcome == DeliveryStatus::DeadLetter {
            tracing::warn!(delivery = %d.id, job_id = %d.job, "delivery dead-lettered after {} tries", settled.tries);
        }
    }
    Ok(())
}

/// The delivery after one try that answered `answer` at `now`.
fn settled(ctx: &Context, d: &Delivery, answer: Result<u16, String>, now: u64) -> Delivery {
    let tries = d.tries + 1;
    let (status, next_at, last_answer) = match answer {
        Ok(code) => (DeliveryStatus::Delivered, d.next_at, format!("HTTP {code}")),
        Err(why) => {
            let jitter = rand::rng().random::<f64>();
            let max = ctx.config.outbox_tries_max;
            match tracker::next_try(tries, max, now, &ctx.config.outbox_backoff, jitter) {
                Some(at) => (DeliveryStatus::Pending, at, why),
                None => (DeliveryStatus::DeadLetter, d.next_at, why),
            }
        }
    };
    Delivery {
        status,
        tries,
        next_at,
        last_answer: Some(last_answer),
        updated_at: now,
        ..d.clone()
    }
}
