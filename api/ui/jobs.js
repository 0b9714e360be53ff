// The jobs table (#/jobs): filters kept in the URL's query, server-side paging by cursor, and
// sorting of the page shown.

import { h, api, every, rerender, fmtTime, badge, REFRESH_MS, STATES } from "./lib.js";
import { fmtUsd } from "./money.js";

// What a column sorts by: a job's field of that name, or for cost its total.
function sortValue(job, key) {
  return key === "cost" ? job.cost.total_micros : job[key];
}

export function jobsPage(main, params) {
  const filters = { state: params.get("state") || "", product: params.get("product") || "", capability: params.get("capability") || "", factory: params.get("factory") || "", q: params.get("q") || "" };
  const cursors = [null];
  let page = 0;
  let sortKey = null;
  let sortDir = 1;
  let rows = [];
  const tbody = h("tbody");
  const more = h("button", { type: "button", onclick: () => { page++; refresh(); } }, "Next page");
  const back = h("button", { type: "button", onclick: () => { page = Math.max(0, page - 1); refresh(); } }, "Previous page");
  const form = h("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); page = 0; cursors.length = 1; refresh(); } });
  const field = (name, label, el) => h("label", {}, label, el);
  const stateSel = h("select", { name: "state", onchange: (e) => { filters.state = e.target.value; form.requestSubmit(); } }, h("option", { value: "" }, "any"), ...STATES.map((s) => h("option", { value: s, selected: filters.state === s }, s)));
  const text = (name) => h("input", { name, value: filters[name], oninput: (e) => (filters[name] = e.target.value.trim()) });
  form.append(field("state", "State", stateSel), field("product", "Product", text("product")), field("capability", "Capability", text("capability")), field("factory", "Factory id", text("factory")), field("q", "Text", text("q")), h("button", { type: "submit" }, "Filter"));
  const head = (key, label) => h("th", { scope: "col" }, h("button", { type: "button", class: "sort", onclick: () => { sortDir = sortKey === key ? -sortDir : 1; sortKey = key; draw(); } }, label));
  main.append(
    h("h1", {}, "Jobs"),
    form,
    h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Jobs" }, h("table", { class: "jobs" }, h("thead", {}, h("tr", {}, head("title", "Title"), head("state", "State"), head("stage", "Stage"), head("priority", "Priority"), head("product", "Product"), head("attempts", "Attempts"), head("cost", "Cost"), head("updated_at", "Updated"))), tbody)),
    h("div", { class: "pager" }, back, more),
  );
  function draw() {
    const sorted = [...rows];
    const cmp = (a, b) => (a > b ? 1 : a < b ? -1 : 0);
    if (sortKey) sorted.sort((a, b) => cmp(sortValue(a, sortKey), sortValue(b, sortKey)) * sortDir);
    rerender(tbody, () => tbody.replaceChildren(...sorted.map((j) => h("tr", { "data-job": j.id }, h("td", {}, h("a", { href: `#/jobs/${j.id}`, "data-key": j.id }, j.title)), h("td", {}, badge(j.state)), h("td", {}, j.stage || ""), h("td", {}, j.priority), h("td", {}, j.product), h("td", {}, `${j.attempts}`), h("td", { class: "num", "data-testid": "cost" }, fmtUsd(j.cost.total_micros)), h("td", {}, fmtTime(j.updated_at))))));
  }
  async function refresh() {
    const qs = new URLSearchParams({ limit: "50" });
    for (const [k, v] of Object.entries(filters)) if (v) qs.set(k, v);
    if (cursors[page]) qs.set("cursor", cursors[page]);
    const res = await api("GET", `/v1/jobs?${qs}`);
    cursors[page + 1] = res.next_cursor;
    more.disabled = !res.next_cursor;
    back.disabled = page === 0;
    rows = res.jobs;
    draw();
  }
  every(REFRESH_MS, refresh);
}

