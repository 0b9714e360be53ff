// Why a job is not running (GET /v1/jobs/ID/explain): the reason in one line and every factory
// with what keeps it from the job and what the job would score there. Shown on a job's page
// while the job is pending, queued or backing off.

import { h, api, rerender } from "./lib.js";

function refusal(r) {
  switch (r.kind) {
    case "missing_capability": return `lacks capability ${r.capability}`;
    case "missing_engine": return `lacks engine ${r.engine}`;
    case "no_free_slot": return `all ${r.slots} slots busy`;
    default: return r.kind;
  }
}

// The panel of job `id`: `el` to place, `refresh(job)` on each redraw.
export function waitingPanel(id) {
  const summary = h("p", { "data-testid": "waiting" });
  const rows = h("tbody", { "data-testid": "candidates" });
  const col = (label) => h("th", { scope: "col" }, label);
  const el = h("section", { class: "card", hidden: true, "aria-labelledby": "waiting-title", "data-testid": "waiting-card" },
    h("h2", { id: "waiting-title" }, "Why not running"),
    summary,
    h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Candidate factories", "data-key": "candidates" },
      h("table", {}, h("thead", {}, h("tr", {}, col("Factory"), col("Status"), col("Score"), col("Why not"))), rows)));
  let drawn = null;
  const refresh = async (job) => {
    el.hidden = !job.waiting;
    if (!job.waiting) return;
    const e = await api("GET", `/v1/jobs/${id}/explain`);
    const view = e.candidates.map((c) => [c.name, c.status, c.score ? c.score.total.toFixed(3) : "–", c.refusals.length ? c.refusals.map(refusal).join("; ") : "could take it now"]);
    const key = JSON.stringify([e.summary, view]);
    if (key === drawn) return;
    drawn = key;
    rerender(el, () => {
      summary.textContent = e.summary;
      rows.replaceChildren(...(view.length ? view.map((cells) => h("tr", {}, ...cells.map((c) => h("td", {}, c)))) : [h("tr", {}, h("td", { colspan: 4 }, "No factory is enrolled."))]));
    });
  };
  return { el, refresh };
}
