// The operator's actions on a job: only those its state allows (`allowed_actions`, which the
// API reads off the state machine), each sent with the optional reason typed beside them,
// which the job's timeline then shows. Review decisions (ship, reject, request changes) are
// drawn beside what the job saved (`job.js`), not here.

import { h, api, flash, canAct, rerender } from "./lib.js";

// What each action does, as its tooltip; requeue and retry are told apart.
export const ACTION_HELP = {
  requeue: "Put the job back in the queue now, from any state but pending or queued: a running attempt is stopped, and no failure is counted. An ended job starts over.",
  retry: "Give a job that failed, died, was cancelled or rejected a new life, with its failure count reset. Never takes a job from a factory.",
  cancel: "Stop the job for good: a running attempt is told to stop, and its pending children are cancelled with it.",
  ship: "Approve the job in review; the last approval it needs ships it.",
  reject: "End the job in review as rejected.",
};
const DECISIONS = ["ship", "reject", "request_changes"];

// `reload` is called after an action succeeded.
export function actionsPanel(id, reload) {
  const bar = h("div", { class: "actions", role: "group", "aria-label": "Actions", "data-testid": "actions" });
  const reason = h("input", { id: "action-reason", "data-testid": "action-reason", maxlength: "1000", placeholder: "Why (shown on the timeline)" });
  const help = h("p", { class: "hint", id: "actions-help" }, "Requeue runs the job again now, taking it from its factory if it runs, without counting a failure; retry gives a job that failed, died, was cancelled or rejected a new life with its failures reset.");
  const el = h("div", { class: "action-bar" }, h("div", { class: "reason" }, h("label", { for: "action-reason" }, "Reason (optional)"), reason), bar, help);
  // The body of an action: the reason, when one was typed.
  const body = () => (reason.value.trim() ? { reason: reason.value } : undefined);
  const act = async (name, label = name) => {
    if (!confirm(`${label} this job?`)) return;
    try {
      await api("POST", `/v1/jobs/${id}/actions/${name}`, body());
      reason.value = "";
      flash(`${label}: done`, "ok");
      await reload();
    } catch (e) {
      flash(e.message);
    }
  };
  // The actions drawn ("cancel,requeue"): the bar is redrawn only when they change, so a
  // focused button keeps the focus across refreshes.
  let drawn = null;
  return {
    el,
    act,
    refresh(job) {
      if (!canAct()) {
        if (drawn !== "viewer") el.replaceChildren(h("span", { class: "muted" }, "Read only (viewer)."));
        drawn = "viewer";
        return;
      }
      const shown = job.allowed_actions.filter((a) => !DECISIONS.includes(a));
      const key = shown.join(",");
      if (key === drawn) return;
      drawn = key;
      rerender(bar, () =>
        bar.replaceChildren(
          ...(shown.length
            ? shown.map((a) => h("button", { type: "button", "data-action": a, "data-key": `action-${a}`, title: ACTION_HELP[a], "aria-describedby": "actions-help", onclick: () => act(a) }, a))
            : [h("span", { class: "muted", "data-testid": "no-actions" }, "No action applies to a job in this state.")]),
        ),
      );
      help.hidden = !shown.includes("requeue") && !shown.includes("retry");
    },
  };
}
