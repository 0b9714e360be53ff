// The schedules (#/schedules): each schedule's cron as written and its zone, its next run
// (when, and how far away), its state and its latest runs with their outcomes, each linking to
// the jobs it submitted; operators create, edit, pause, resume, trigger and delete them. The
// page of one schedule (schedule.js) shares the actions and the history.

import { h, api, every, rerender, flash, canAct, badge, REFRESH_MS } from "./lib.js";
import { when } from "./when.js";

// The form's fields, as the API names them in its problems (`field: problem`).
const FIELDS = ["name", "cron", "time_zone", "overlap", "missed", "catchup_window_s", "job", "manifest"];

export function scheduleHref(name) {
  return `#/schedules/${encodeURIComponent(name)}`;
}

// The next run of schedule `s`: when, in UTC and in its zone, and how far away.
export function nextRun(s) {
  const n = s.next_runs[0];
  if (!n) return h("span", { class: "muted" }, "never");
  return h("span", { "data-testid": "next-run" }, when(n.at), ` · ${n.local}`);
}

// A run's outcome and what it did: the jobs it submitted (links), or why it did not.
export function runLine(r) {
  const links = r.jobs.map((id) => h("a", { href: `#/jobs/${id}`, "data-key": `${r.seq}:${id}`, "data-job": id }, id.slice(0, 8)));
  const what = links.length ? links.flatMap((a, i) => (i ? [" ", a] : [a])) : [r.reason || ""];
  const trigger = r.trigger === "manual" ? `manual (${r.by})` : "tick";
  return [badge(r.outcome), " ", when(r.tick), ` · ${trigger} · `, ...what];
}

// The buttons an operator gets for schedule `s`; a viewer gets none. Pause and resume share a
// data-key, so the keyboard focus stays on the button that takes its place.
export function scheduleActions(s, { edit, changed, deleted }) {
  if (!canAct()) return [];
  const path = `/v1/schedules/${encodeURIComponent(s.name)}`;
  const act = (what, done) => async () => {
    try {
      await api("POST", `${path}/${what}`);
      flash(`schedule ${s.name}: ${done}`, "ok");
      await changed();
    } catch (e) {
      flash(e.message);
    }
  };
  const remove = async () => {
    if (!confirm(`Delete schedule ${s.name} and its history? Its jobs stay.`)) return;
    try {
      await api("DELETE", path);
      flash(`schedule ${s.name} deleted`, "ok");
      await deleted();
    } catch (e) {
      flash(e.message);
    }
  };
  const trigger = async () => {
    if (!confirm(`Run schedule ${s.name} now?`)) return;
    await act("trigger", "triggered")();
  };
  const button = (key, action, label, onclick) => h("button", { type: "button", "data-key": `${s.name}:${key}`, "data-action": action, "aria-label": `${label} ${s.name}`, onclick }, label);
  return [
    s.state === "paused" ? button("toggle", "resume", "Resume", act("resume", "resumed")) : button("toggle", "pause", "Pause", act("pause", "paused")),
    button("trigger", "trigger", "Run now", trigger),
    edit ? button("edit", "edit", "Edit", () => edit(s)) : null,
    button("delete", "delete", "Delete", remove),
  ].filter(Boolean);
}

// The create and edit form. A refused save shows each of the API's problems beside its field
// and keeps what was typed; `saved(s)` runs after the API accepted.
function scheduleForm(saved) {
  const title = h("h2", { id: "schedule-form-title" });
  const input = (id, attrs = {}) => h("input", { id, autocomplete: "off", ...attrs });
  const els = {
    name: input("s-name", { required: true, maxlength: "64" }),
    cron: input("s-cron", { required: true, placeholder: "0 3 * * *" }),
    time_zone: input("s-zone", { placeholder: "UTC" }),
    overlap: h("select", { id: "s-overlap" }, ...["skip", "queue", "cancel_previous"].map((v) => h("option", { value: v }, v))),
    missed: h("select", { id: "s-missed" }, ...["skip", "run_once"].map((v) => h("option", { value: v }, v))),
    catchup_window_s: input("s-catchup", { inputmode: "numeric", placeholder: "86400" }),
    job: h("textarea", { id: "s-job", rows: "6", placeholder: '{"key": "nightly", "title": "Nightly", "product": "ops", "payload": {"command": "make deps"}}' }),
    manifest: h("textarea", { id: "s-manifest", rows: "6", placeholder: 'product = "ops"\n[[jobs]]\nkey = "audit"\ntitle = "Audit"\ncommand = "make audit"' }),
  };
  const errors = Object.fromEntries(FIELDS.map((f) => [f, h("span", { class: "field-error", id: `s-${f}-error`, role: "alert", "data-testid": `error-${f}`, hidden: true })]));
  const general = h("div", { class: "form-errors", role: "alert", hidden: true, "data-testid": "schedule-errors" });
  const hints = {
    cron: "Five fields (minute hour day month weekday), or six with seconds first.",
    time_zone: "An IANA zone, like Europe/Paris; UTC when blank.",
    catchup_window_s: "How old a missed tick run_once still fires, in seconds.",
    job: "A single-job spec as JSON (what POST /v1/jobs takes), or leave it blank and give a manifest.",
    manifest: "A manifest in TOML (what POST /v1/manifests takes).",
  };
  const labels = { name: "Name", cron: "Cron", time_zone: "Time zone", overlap: "While the previous run runs", missed: "Ticks missed while down or paused", catchup_window_s: "Catch-up window (s)", job: "Job (JSON)", manifest: "Manifest (TOML)" };
  const field = (f) => {
    const el = els[f];
    el.setAttribute("aria-describedby", `s-${f}-error${hints[f] ? ` s-${f}-hint` : ""}`);
    return h("div", { class: "field" }, h("label", { for: el.id }, labels[f]), el, hints[f] ? h("span", { class: "hint", id: `s-${f}-hint` }, hints[f]) : null, errors[f]);
  };
  const cancel = h("button", { type: "button", class: "secondary", onclick: () => reset() }, "Cancel edit");
  const clearErrors = () => {
    for (const e of Object.values(errors)) e.hidden = true;
    general.hidden = true;
  };
  // Each problem beside its field (`job.priority: …` beside the job), the rest above the buttons.
  const showProblems = (list) => {
    clearErrors();
    const rest = [];
    for (const p of list) {
      const f = FIELDS.find((x) => p.startsWith(`${x}:`) || p.startsWith(`${x}.`));
      if (!f) rest.push(p);
      else {
        const e = errors[f];
        e.textContent = e.hidden ? p : `${e.textContent}; ${p}`;
        e.hidden = false;
      }
    }
    if (rest.length) {
      general.replaceChildren(h("strong", {}, "Not saved:"), h("ul", {}, ...rest.map((p) => h("li", {}, p))));
      general.hidden = false;
    }
    const first = FIELDS.find((f) => !errors[f].hidden);
    if (first) els[first].focus();
  };
  const reset = () => {
    title.textContent = "New schedule";
    els.name.readOnly = false;
    for (const f of ["name", "cron", "time_zone", "catchup_window_s", "job", "manifest"]) els[f].value = "";
    els.overlap.value = "skip";
    els.missed.value = "skip";
    cancel.hidden = true;
    clearErrors();
  };
  const submit = async (e) => {
    e.preventDefault();
    const body = { cron: els.cron.value, overlap: els.overlap.value, missed: els.missed.value };
    if (els.time_zone.value.trim()) body.time_zone = els.time_zone.value.trim();
    const local = [];
    const catchup = els.catchup_window_s.value.trim();
    if (catchup !== "") {
      if (/^\d+$/.test(catchup)) body.catchup_window_s = Number(catchup);
      else local.push(`catchup_window_s: ${JSON.stringify(catchup)} is not a whole number of seconds`);
    }
    if (els.job.value.trim()) {
      try {
        body.job = JSON.parse(els.job.value);
      } catch (err) {
        local.push(`job: not JSON (${err.message})`);
      }
    }
    if (els.manifest.value.trim()) body.manifest = els.manifest.value;
    if (local.length) return showProblems(local);
    try {
      const s = await api("PUT", `/v1/schedules/${encodeURIComponent(els.name.value.trim())}`, body);
      flash(`schedule ${s.name} saved`, "ok");
      reset();
      await saved(s);
    } catch (err) {
      showProblems(err.body && err.body.details && err.body.details.length ? err.body.details : [err.message]);
    }
  };
  const el = h(
    "form",
    { class: "card schedule-form", "aria-labelledby": "schedule-form-title", "data-testid": "schedule-form", onsubmit: submit },
    title,
    h("div", { class: "form-grid" }, ...FIELDS.map(field)),
    general,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Save schedule"), cancel),
  );
  reset();
  return {
    el,
    edit(s) {
      title.textContent = `Edit schedule ${s.name}`;
      els.name.value = s.name;
      els.name.readOnly = true;
      els.cron.value = s.cron;
      els.time_zone.value = s.time_zone;
      els.overlap.value = s.overlap;
      els.missed.value = s.missed;
      els.catchup_window_s.value = String(s.catchup_window_s);
      els.job.value = s.job ? JSON.stringify(s.job, null, 2) : "";
      els.manifest.value = s.manifest || "";
      cancel.hidden = false;
      clearErrors();
      el.scrollIntoView({ block: "nearest" });
      els.cron.focus();
    },
  };
}

export function schedulesPage(main, params) {
  const list = h("ul", { class: "budgets", "data-testid": "schedules", "aria-label": "Schedules" });
  let schedules = [];
  async function refresh() {
    schedules = await api("GET", "/v1/schedules");
    const card = (s) => h(
      "li",
      { class: "card budget", "data-schedule": s.name },
      h("div", { class: "budget-head" }, h("h2", {}, h("a", { href: scheduleHref(s.name), "data-key": `${s.name}:page` }, s.name)), badge(s.state)),
      h("p", { "data-testid": "cron" }, h("code", {}, s.cron), ` in ${s.time_zone} · overlap ${s.overlap} · missed ${s.missed}`),
      h("p", {}, "Next run: ", nextRun(s)),
      s.history.length
        ? h("ul", { class: "runs", "aria-label": `Latest runs of ${s.name}` }, ...s.history.map((r) => h("li", { "data-run": String(r.seq) }, ...runLine(r))))
        : h("p", { class: "muted" }, "No runs yet."),
      h("div", { class: "actions" }, scheduleActions(s, { edit: form ? (x) => form.edit(x) : null, changed: refresh, deleted: refresh })),
    );
    rerender(list, () => list.replaceChildren(...(schedules.length ? schedules.map(card) : [h("li", { class: "card muted" }, "No schedules yet.")])));
  }
  const form = canAct() ? scheduleForm(refresh) : null;
  main.append(
    h("h1", {}, "Schedules"),
    h("p", { class: "muted" }, "Cron schedules that submit a job or a manifest at each tick, in their time zone. Each tick submits once across the cluster; a tick while the previous run still runs follows the overlap policy, ticks missed while every node was down or the schedule paused the missed-run policy."),
    list,
    form ? form.el : h("p", { class: "muted" }, "Read only (viewer)."),
  );
  // #/schedules?edit=NAME (the Edit of a schedule's own page) opens the form on it once loaded.
  let toEdit = form && params.get("edit");
  every(REFRESH_MS, async () => {
    await refresh();
    const s = toEdit && schedules.find((x) => x.name === toEdit);
    if (s) form.edit(s);
    toEdit = null;
  });
}
