//! The schedules' operations, described as `routes.rs` describes the others.

use gigafactory_core::wire::{ScheduleBody, ScheduleView, TriggerAnswer};

use super::{Access, Doc};

pub(super) fn describe(d: &mut Doc) {
    use Access::*;
    d.get(
        "/v1/schedules",
        "Every schedule with its next run and latest runs",
        Viewer,
    )
    .answers::<Vec<ScheduleView>>(200, "every schedule");
    d.get(
        "/v1/schedules/{name}",
        "A schedule with its next five runs (UTC and its zone) and its history",
        Viewer,
    )
    .answers::<ScheduleView>(200, "the schedule");
    d.put(
        "/v1/schedules/{name}",
        "Create or replace a schedule (cron, zone, policies, a job or a manifest template); \
         refused whole with every problem (`invalid_schedule`, `details`: `field: problem`)",
        Operator,
    )
    .json::<ScheduleBody>()
    .answers::<ScheduleView>(201, "the new schedule")
    .answers::<ScheduleView>(
        200,
        "the schedule replaced (its state, cursor and history kept)",
    );
    d.delete(
        "/v1/schedules/{name}",
        "Remove a schedule and its history (its jobs stay)",
        Operator,
    )
    .empty(204, "removed");
    d.post(
        "/v1/schedules/{name}/pause",
        "Pause a schedule: no tick fires until it is resumed",
        Operator,
    )
    .answers::<ScheduleView>(200, "the schedule now");
    d.post(
        "/v1/schedules/{name}/resume",
        "Resume a paused schedule; the ticks that passed follow its missed-run policy",
        Operator,
    )
    .answers::<ScheduleView>(200, "the schedule now");
    d.post(
        "/v1/schedules/{name}/trigger",
        "Run a schedule now, with its overlap policy; with an `Idempotency-Key` header, once \
         per key (its jobs' keys `schedule:NAME:trigger-KEY`), else under `manual-AT`",
        Operator,
    )
    .header(
        "Idempotency-Key",
        "1 to 64 of `[A-Za-z0-9._-]`: the same key again answers the same run (`created: \
         false`) and submits nothing; a bad key is `400 invalid_request`, nothing run",
    )
    .answers::<TriggerAnswer>(200, "the run (new, or the one the key made)");
}
