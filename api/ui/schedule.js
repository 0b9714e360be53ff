// One schedule's page (#/schedules/NAME): its cron and zone, policies and state, its next
// five runs in UTC and in its zone, and its whole kept history, each run linking to its jobs.

import { h, api, every, rerender, badge, canAct, REFRESH_MS } from "./lib.js";
import { when } from "./when.js";
import { runLine, scheduleActions } from "./schedules.js";

export function schedulePage(main, name) {
  const title = h("h1", { id: "schedule-title" }, name);
  const actions = h("div", { class: "actions", role: "group", "aria-label": "Actions" });
  const settings = h("dl", { class: "facts", "data-testid": "schedule-settings" });
  const next = h("tbody", { "data-testid": "next-runs" });
  const history = h("tbody", { "data-testid": "history" });
  const col = (label) => h("th", { scope: "col" }, label);
  const table = (titleId, heads, body) => h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-labelledby": titleId }, h("table", {}, h("thead", {}, h("tr", {}, ...heads.map(col))), body));
  main.append(
    h("p", {}, h("a", { href: "#/schedules" }, "← Schedules")),
    title,
    actions,
    h("section", { class: "card" }, h("h2", {}, "Settings"), settings),
    h("section", { class: "card" }, h("h2", { id: "next-title" }, "Next runs"), table("next-title", ["When", "UTC", "Local"], next)),
    h("section", { class: "card" }, h("h2", { id: "history-title" }, "History"), table("history-title", ["#", "Run"], history)),
  );
  if (!canAct()) actions.replaceChildren(h("span", { class: "muted" }, "Read only (viewer)."));
  async function load() {
    let s;
    try {
      s = await api("GET", `/v1/schedules/${encodeURIComponent(name)}`);
    } catch (e) {
      if (e.status === 404) title.textContent = `No schedule ${name}`;
      throw e;
    }
    title.replaceChildren(s.name, " ", badge(s.state));
    if (canAct()) {
      const edit = () => (location.hash = `#/schedules?edit=${encodeURIComponent(s.name)}`);
      const deleted = () => (location.hash = "#/schedules");
      rerender(actions, () => actions.replaceChildren(...scheduleActions(s, { edit, changed: load, deleted })));
    }
    const fact = (k, v) => [h("dt", {}, k), h("dd", {}, v)];
    settings.replaceChildren(
      ...fact("Cron", h("code", {}, s.cron)),
      ...fact("Time zone", s.time_zone),
      ...fact("Overlap", s.overlap),
      ...fact("Missed runs", `${s.missed} (catch-up window ${s.catchup_window_s} s)`),
      ...fact("Submits", s.manifest ? "a manifest" : `job ${s.job ? s.job.title : ""}`),
      ...(s.paused_by ? fact("Paused", [`by ${s.paused_by} `, when(s.paused_at)]) : []),
    );
    next.replaceChildren(...s.next_runs.map((n) => h("tr", {}, h("td", {}, when(n.at)), h("td", {}, n.utc), h("td", {}, n.local))));
    rerender(history, () => history.replaceChildren(...(s.history.length ? s.history.map((r) => h("tr", { "data-run": String(r.seq) }, h("td", {}, String(r.seq)), h("td", {}, ...runLine(r)))) : [h("tr", {}, h("td", { colspan: 2 }, "No runs yet."))])));
  }
  every(REFRESH_MS, load);
}
