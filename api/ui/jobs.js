// The jobs table (#/jobs): filters and the page's cursor live in the URL's query (a reload
// keeps them, a link shares them; Back returns to the previous filter or page), the factory
// filter takes a name or an id, the page shown sorts by column, and operators act on a
// selection of it at once through each job's own action route.

import { h, api, every, rerender, fmtTime, badge, flash, canAct, REFRESH_MS, STATES } from "./lib.js";
import { fmtUsd } from "./money.js";

const FILTERS = ["state", "product", "capability", "factory", "q", "waiting_for_input"];
// Actions that make sense on many jobs at once; the job page has the rest.
const BULK_ACTIONS = ["cancel", "requeue", "retry"];
const PAGE_SIZE = "50";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

// What a column sorts by: a job's field of that name, or for cost its total.
function sortValue(job, key) {
  return key === "cost" ? job.cost.total_micros : job[key];
}

// The jobs page's hash for `filters` and `cursor` (the first page without one).
function jobsHash(filters, cursor) {
  const qs = new URLSearchParams();
  for (const k of FILTERS) if (filters[k]) qs.set(k, filters[k]);
  if (cursor) qs.set("cursor", cursor);
  const text = qs.toString();
  return `#/jobs${text ? `?${text}` : ""}`;
}

// The factory id a filter names: an id as given, else the factory of that name (null: none).
async function factoryId(text) {
  if (UUID.test(text)) return text;
  const fs = await api("GET", "/v1/factories");
  const f = fs.find((f) => f.name === text);
  return f ? f.id : null;
}

// Applies `action` to each job of `ids` in turn; answers what was done and what refused, why.
async function bulk(action, ids) {
  const done = [];
  const refused = [];
  for (const id of ids) {
    try {
      await api("POST", `/v1/jobs/${id}/actions/${action}`);
      done.push(id);
    } catch (e) {
      refused.push({ id, why: e.message });
    }
  }
  return { done, refused };
}

export function jobsPage(main, params) {
  const filters = Object.fromEntries(FILTERS.map((k) => [k, params.get(k) || ""]));
  const cursor = params.get("cursor") || null;
  let sortKey = null;
  let sortDir = 1;
  let rows = [];
  let next = null;
  const selected = new Set();
  const go = (hash) => {
    if (location.hash !== hash) location.hash = hash;
  };
  const tbody = h("tbody");
  const more = h("button", { type: "button", onclick: () => next && go(jobsHash(filters, next)) }, "Next page");
  const first = h("button", { type: "button", disabled: !cursor, onclick: () => go(jobsHash(filters, null)) }, "First page");
  const form = h("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); go(jobsHash(filters, null)); } });
  const field = (label, el) => h("label", {}, label, el);
  const stateSel = h("select", { name: "state", onchange: (e) => { filters.state = e.target.value; form.requestSubmit(); } }, h("option", { value: "" }, "any"), ...STATES.map((s) => h("option", { value: s, selected: filters.state === s }, s)));
  const text = (name, attrs = {}) => h("input", { name, value: filters[name], oninput: (e) => (filters[name] = e.target.value.trim()), ...attrs });
  const names = h("datalist", { id: "factory-names" });
  // Only the jobs whose question waits for an operator's answer (the overview links here).
  const asking = h("input", { type: "checkbox", name: "waiting_for_input", checked: filters.waiting_for_input === "true", onchange: (e) => { filters.waiting_for_input = e.target.checked ? "true" : ""; form.requestSubmit(); } });
  form.append(field("State", stateSel), field("Product", text("product")), field("Capability", text("capability")), field("Factory", text("factory", { list: "factory-names", placeholder: "name or id" })), field("Text", text("q")), field("Waiting for input", asking), names, h("button", { type: "submit" }, "Filter"));
  // On a phone the filters fold away unless one is set, so the table starts on the first screen.
  const active = FILTERS.filter((k) => filters[k]).map((k) => `${k}: ${filters[k]}`);
  const filterBox = h("details", { class: "filters-box", open: active.length > 0 || !matchMedia("(max-width: 640px)").matches }, h("summary", {}, active.length ? `Filters (${active.join(", ")})` : "Filters"), form);
  const status = h("p", { class: "muted", "data-testid": "jobs-status", "aria-live": "polite" });
  const summary = h("div", { class: "bulk-summary", "data-testid": "bulk-summary", role: "status" });
  const count = h("span", { "data-testid": "selected-count" }, "0 selected");
  const bulkButtons = BULK_ACTIONS.map((a) => h("button", { type: "button", "data-bulk": a, disabled: true, onclick: () => runBulk(a) }, a));
  const bulkBar = h("div", { class: "bulk", role: "group", "aria-label": "Actions on the selected jobs", hidden: !canAct() }, count, ...bulkButtons);
  const selectAll = h("input", { type: "checkbox", "aria-label": "Select every job on this page", onchange: (e) => { for (const j of rows) e.target.checked ? selected.add(j.id) : selected.delete(j.id); draw(); } });
  const head = (key, label) => h("th", { scope: "col" }, h("button", { type: "button", class: "sort", onclick: () => { sortDir = sortKey === key ? -sortDir : 1; sortKey = key; draw(); } }, label));
  main.append(
    h("h1", {}, "Jobs"),
    filterBox,
    status,
    bulkBar,
    summary,
    h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Jobs" }, h("table", { class: "jobs" }, h("thead", {}, h("tr", {}, canAct() ? h("th", { scope: "col" }, selectAll) : null, head("title", "Title"), head("state", "State"), head("stage", "Stage"), head("priority", "Priority"), head("product", "Product"), head("attempts", "Attempts"), head("cost", "Cost"), head("updated_at", "Updated"))), tbody)),
    h("div", { class: "pager" }, first, more),
  );
  async function runBulk(action) {
    const ids = rows.filter((j) => selected.has(j.id)).map((j) => j.id);
    if (!ids.length || !confirm(`${action} ${ids.length} job(s)?`)) return;
    const { done, refused } = await bulk(action, ids);
    const title = (id) => (rows.find((j) => j.id === id) || { title: id }).title;
    summary.replaceChildren(
      h("p", {}, `${action}: ${done.length} done, ${refused.length} refused.`),
      refused.length ? h("ul", {}, ...refused.map((r) => h("li", {}, h("a", { href: `#/jobs/${r.id}` }, title(r.id)), `: ${r.why}`))) : null,
    );
    selected.clear();
    await refresh();
  }
  function draw() {
    const sorted = [...rows];
    const cmp = (a, b) => (a > b ? 1 : a < b ? -1 : 0);
    if (sortKey) sorted.sort((a, b) => cmp(sortValue(a, sortKey), sortValue(b, sortKey)) * sortDir);
    const pick = (j) => h("td", {}, h("input", { type: "checkbox", checked: selected.has(j.id), "data-key": `${j.id}:select`, "aria-label": `Select ${j.title}`, onchange: (e) => { e.target.checked ? selected.add(j.id) : selected.delete(j.id); draw(); } }));
    rerender(tbody, () => tbody.replaceChildren(...sorted.map((j) => h("tr", { "data-job": j.id }, canAct() ? pick(j) : null, h("td", {}, h("a", { href: `#/jobs/${j.id}`, "data-key": j.id }, j.title)), h("td", {}, badge(j.state), j.waiting_for_input ? [" ", h("span", { class: "badge asks", "data-testid": "waits-for-input" }, "waits for input")] : null), h("td", {}, j.stage || ""), h("td", {}, j.priority), h("td", {}, j.product), h("td", {}, `${j.attempts}`), h("td", { class: "num", "data-testid": "cost" }, fmtUsd(j.cost.total_micros)), h("td", {}, fmtTime(j.updated_at))))));
    const n = rows.filter((j) => selected.has(j.id)).length;
    count.textContent = `${n} selected`;
    for (const b of bulkButtons) b.disabled = n === 0;
    selectAll.checked = rows.length > 0 && n === rows.length;
  }
  async function refresh() {
    const qs = new URLSearchParams({ limit: PAGE_SIZE });
    for (const k of FILTERS) if (filters[k] && k !== "factory") qs.set(k, filters[k]);
    if (filters.factory) {
      const id = await factoryId(filters.factory);
      if (!id) {
        rows = [];
        next = null;
        status.textContent = `No factory named ${filters.factory}.`;
        more.disabled = true;
        return draw();
      }
      qs.set("factory", id);
    }
    if (cursor) qs.set("cursor", cursor);
    const res = await api("GET", `/v1/jobs?${qs}`);
    next = res.next_cursor;
    more.disabled = !next;
    rows = res.jobs;
    const byState = {};
    for (const j of rows) byState[j.state] = (byState[j.state] || 0) + 1;
    const counts = Object.entries(byState).map(([s, n]) => `${n} ${s}`).join(", ");
    status.textContent = `${rows.length} job(s) on this page${counts ? `: ${counts}` : ""}${next ? "; more on the next page" : ""}.`;
    draw();
  }
  // Factory names for the filter's suggestions, once per page.
  api("GET", "/v1/factories").then((fs) => names.replaceChildren(...fs.map((f) => h("option", { value: f.name })))).catch((e) => flash(e.message));
  every(REFRESH_MS, refresh);
}
