// The tracker item a job came from: a link to it in its tracker, whether it is open, its
// labels and jobs, and the deliveries that tell the tracker of this job's changes (event,
// status, tries, last answer, next try), with Redeliver on a dead letter for operators.

import { h, api, badge, canAct, flash, fmtTime, rerender, webUrl } from "./lib.js";

const STATUS_TEXT = { pending: "pending", delivered: "delivered", dead_letter: "dead letter" };

function itemPath(origin) {
  return `/v1/items/${encodeURIComponent(origin.source)}/${encodeURIComponent(origin.id)}`;
}

// The panel of job `jobId`'s item: `el` to place (hidden for a job no tracker made),
// `refresh(job)` to call on each redraw.
export function itemPanel(jobId) {
  const head = h("div", { "data-testid": "item" });
  const problem = h("p", { class: "form-errors", hidden: true });
  const rows = h("tbody", { "data-testid": "deliveries" });
  const col = (label) => h("th", { scope: "col" }, label);
  const act = canAct();
  const wrap = h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-labelledby": "deliveries-title", "data-key": "deliveries" }, h("table", {}, h("thead", {}, h("tr", {}, col("Event"), col("Status"), col("Tries"), col("Last answer"), col("Next try"), act ? col("Action") : null)), rows));
  const el = h("section", { class: "card", hidden: true, "aria-labelledby": "item-title", "data-testid": "item-card" }, h("h2", { id: "item-title" }, "Tracker item"), problem, head, h("h3", { id: "deliveries-title" }, "Deliveries of this job"), wrap);
  let job = null;
  let headDrawn = null;

  const drawHead = (view) => {
    const { item, jobs } = view;
    const url = webUrl(item.url);
    const name = `${item.id}: ${item.title}`;
    const others = jobs.map((j) => h("li", {}, j.id === jobId ? h("span", {}, j.title, " (this job)") : h("a", { href: `#/jobs/${j.id}`, "data-key": `item-job-${j.id}` }, j.title), " ", badge(j.state)));
    head.replaceChildren(
      h("p", { class: "item-link" }, h("span", { class: "muted" }, `${item.source} · `), url ? h("a", { href: url, target: "_blank", rel: "noopener noreferrer", "data-key": "item-link" }, name) : name, " ", badge(item.open ? "open" : "closed")),
      h("p", {}, h("span", { class: "muted" }, "Labels: "), item.labels.join(", ") || "none"),
      h("p", { class: "muted", id: "item-jobs-title" }, "Jobs of this item:"),
      h("ul", { class: "item-jobs", "aria-labelledby": "item-jobs-title" }, ...others),
    );
  };

  // Asks the coordinator to send `d` again; a refusal (it was redelivered or delivered
  // meanwhile, or the role may not) shows the API's error. Redelivering sends what the tracker
  // missed under the same idempotency key, so it asks nothing first.
  const redeliver = async (d, button) => {
    try {
      await api("POST", `/v1/deliveries/${encodeURIComponent(d.id)}/redeliver`);
      flash(`redeliver ${d.echo.event}: queued`, "ok");
    } catch (err) {
      flash(err.message);
    }
    // The button goes with the redraw: the focus stays in the table instead of leaving the page.
    if (document.activeElement === button) wrap.focus();
    await refresh(job);
  };

  const row = (d) => {
    const event = d.echo.stage ? `${d.echo.event}: ${d.echo.stage}` : d.echo.event;
    const action = d.status === "dead_letter" ? h("button", { type: "button", "data-key": `redeliver-${d.id}`, "aria-label": `Redeliver ${event}` }, "Redeliver") : "";
    if (action) action.addEventListener("click", () => redeliver(d, action));
    return h(
      "tr",
      { "data-delivery": d.id, "data-event": d.echo.event },
      h("td", {}, event),
      h("td", { class: "status" }, h("span", { class: `badge state-${d.status}` }, STATUS_TEXT[d.status] || d.status)),
      h("td", { class: "num tries" }, d.tries),
      h("td", { class: "answer" }, d.last_answer || "–"),
      h("td", { class: "num" }, d.status === "pending" ? fmtTime(d.next_at) : "–"),
      act ? h("td", {}, action) : null,
    );
  };

  const refresh = async (current) => {
    job = current;
    el.hidden = !job.origin;
    if (!job.origin) return;
    let view;
    try {
      view = await api("GET", itemPath(job.origin));
      problem.hidden = true;
    } catch (err) {
      problem.hidden = false;
      problem.textContent = `Could not read item ${job.origin.id} of ${job.origin.source}: ${err.message}`;
      return;
    }
    const sig = JSON.stringify([view.item, view.jobs.map((j) => [j.id, j.title, j.state])]);
    if (sig !== headDrawn) rerender(head, () => drawHead(view));
    headDrawn = sig;
    const mine = view.deliveries.filter((d) => d.job === jobId);
    const cols = act ? 6 : 5;
    rerender(rows, () => rows.replaceChildren(...(mine.length ? mine.map(row) : [h("tr", {}, h("td", { colspan: cols }, "Nothing sent to the tracker about this job yet."))])));
  };

  return { el, refresh };
}
