// The factories (#/factories) and each factory's page (#/factories/ID): status, slots,
// heartbeat, the jobs it runs, enrollment tokens, and drain (or undrain), rotate and revoke by
// role.

import { h, api, every, rerender, fmtTime, badge, flash, canAct, app, REFRESH_MS, LEASED } from "./lib.js";

// Pages of the job table (each scans a bounded slice of it on the server) read for a
// factory's current jobs on each refresh; past this the page says the list may be partial.
const FACTORY_JOBS_PAGES_MAX = 20;

// What the signed-in role may do to factory `f`: operators drain it (undrain it while it
// drains), admins also rotate and revoke; a revoked factory takes nothing.
function factoryActions(f) {
  if (f.status === "revoked") return [];
  const drain = f.status === "draining" ? "undrain" : "drain";
  return [...(canAct() ? [drain] : []), ...(app.role === "admin" ? ["rotate", "revoke"] : [])];
}

// Asks, then drains, rotates or revokes factory `f`; a rotated factory's new token is shown once
// in `secret`, a refusal is shown with the API's error. True when the API accepted.
async function factoryAction(f, what, secret) {
  if (!confirm(`${what} factory ${f.name}?`)) return false;
  try {
    const r = await api("POST", `/v1/factories/${f.id}/${what}`);
    if (r && r.token) secret.textContent = `New token for ${f.name} (shown once): ${r.token}`;
    flash(`${what}: done`, "ok");
    return true;
  } catch (e) {
    flash(e.message);
    return false;
  }
}

function fmtAgo(ms) {
  return ms ? `${fmtTime(ms)} (${Math.max(0, Math.round((Date.now() - ms) / 1000))} s ago)` : "–";
}

const COLUMNS = ["Name", "Status", "Slots", "Capabilities", "Last heartbeat", "Actions"];

export function factoriesPage(main) {
  const tbody = h("tbody");
  const secret = h("p", { class: "secret", "data-testid": "secret" });
  const create = h("button", { type: "button", hidden: app.role !== "admin", onclick: async () => {
    try {
      const t = await api("POST", "/v1/enrollment-tokens", {});
      secret.textContent = `Enrollment token (shown once): ${t.token}`;
    } catch (e) {
      flash(e.message);
    }
  } }, "Create enrollment token");
  main.append(h("h1", {}, "Factories"), create, secret, h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Factories" }, h("table", { class: "stack" }, h("thead", {}, h("tr", {}, ...COLUMNS.map((c) => h("th", { scope: "col" }, c)))), tbody)));
  every(REFRESH_MS, async () => {
    const fs = await api("GET", "/v1/factories");
    const button = (f, what) => h("button", { type: "button", "data-key": `${f.id}:${what}`, "aria-label": `${what} ${f.name}`, onclick: () => factoryAction(f, what, secret) }, what);
    const cells = (f) => [h("a", { href: `#/factories/${f.id}`, "data-key": `${f.id}:page` }, f.name), badge(f.status), `${f.slots_busy} / ${f.slots}`, f.capabilities.join(", "), fmtTime(f.last_heartbeat), factoryActions(f).map((what) => button(f, what))];
    rerender(tbody, () => tbody.replaceChildren(...fs.map((f) => h("tr", { "data-factory": f.id }, ...cells(f).map((c, i) => h("td", { "data-label": COLUMNS[i] }, c))))));
  });
}

export function factoryPage(main, id) {
  const title = h("h1", { id: "factory-title" }, "Factory");
  const actions = h("div", { class: "actions", role: "group", "aria-label": "Actions" });
  const secret = h("p", { class: "secret", "data-testid": "secret" });
  const fields = h("dl", { class: "fields", "data-testid": "factory-fields" });
  const current = h("tbody", { "data-testid": "current-jobs" });
  const partial = h("p", { class: "muted", hidden: true });
  const col = (label) => h("th", { scope: "col" }, label);
  main.append(
    h("p", {}, h("a", { href: "#/factories" }, "← Factories")),
    title,
    actions,
    secret,
    h("section", { class: "card" }, h("h2", {}, "Fields"), fields),
    h("section", { class: "card" }, h("h2", { id: "current-title" }, "Current jobs"), h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-labelledby": "current-title" }, h("table", {}, h("thead", {}, h("tr", {}, col("Title"), col("State"), col("Stage"), col("Product"), col("Epoch"), col("Leased at"), col("Lease expires"))), current)), partial),
  );
  // Until the first load answers, an action names the factory by its id.
  let factory = { id, name: id };
  // Redrawn only when the allowed actions change (drain becomes undrain), so a focused button
  // keeps the focus across refreshes.
  let drawn = null;
  const drawActions = () => {
    const allowed = factoryActions(factory);
    if (drawn === allowed.join()) return;
    drawn = allowed.join();
    const none = canAct() ? "No actions." : "Read only (viewer).";
    rerender(actions, () => actions.replaceChildren(...(allowed.length ? allowed.map((what) => h("button", { type: "button", "data-action": what, "data-key": what, onclick: async () => {
      if (await factoryAction(factory, what, secret)) await load();
    } }, what)) : [h("span", { class: "muted" }, none)])));
  };
  // The jobs whose lease this factory holds (the jobs list's factory filter matches only
  // those), read page by page up to FACTORY_JOBS_PAGES_MAX. Complete is false when that bound
  // stopped the reading.
  const currentJobs = async () => {
    const jobs = [];
    let cursor = null;
    for (let page = 0; page < FACTORY_JOBS_PAGES_MAX; page++) {
      const qs = new URLSearchParams({ factory: id, limit: "500" });
      if (cursor) qs.set("cursor", cursor);
      const res = await api("GET", `/v1/jobs?${qs}`);
      jobs.push(...res.jobs.filter((j) => LEASED.includes(j.state)));
      cursor = res.next_cursor;
      if (!cursor) return { jobs, complete: true };
    }
    return { jobs, complete: false };
  };
  async function load() {
    try {
      factory = await api("GET", `/v1/factories/${encodeURIComponent(id)}`);
    } catch (e) {
      if (e.status === 400 || e.status === 404) title.textContent = `No factory ${id}`;
      throw e;
    }
    const f = factory;
    drawActions();
    title.replaceChildren(f.name, " ", badge(f.status));
    const row = (k, v, testid) => [h("dt", {}, k), h("dd", { "data-testid": testid }, v ?? "–")];
    fields.replaceChildren(
      ...row("Id", f.id),
      ...row("OS / arch", `${f.os} / ${f.arch}`, "platform"),
      ...row("Capabilities", f.capabilities.join(", ") || "none", "capabilities"),
      ...row("Engine classes", f.engine_classes.join(", ") || "none"),
      ...row("Slots busy", `${f.slots_busy} / ${f.slots}`, "slots"),
      ...row("Cost per hour", `$${f.cost_per_hour_usd.toFixed(2)}`),
      ...row("Last heartbeat", fmtAgo(f.last_heartbeat), "heartbeat"),
      ...row("Enrolled", f.enrolled_at ? new Date(f.enrolled_at).toLocaleString() : "–"),
    );
    const { jobs, complete } = await currentJobs();
    rerender(current, () => current.replaceChildren(...(jobs.length ? jobs.map((j) => h("tr", { "data-job": j.id }, h("td", {}, h("a", { href: `#/jobs/${j.id}`, "data-key": j.id }, j.title)), h("td", {}, badge(j.state)), h("td", {}, j.stage || ""), h("td", {}, j.product), h("td", {}, j.lease.epoch), h("td", {}, fmtTime(j.lease.granted_at)), h("td", {}, fmtTime(j.lease.expires_at)))) : [h("tr", {}, h("td", { colspan: 7 }, "No current jobs."))])));
    partial.hidden = complete;
    partial.replaceChildren(...(complete ? [] : ["Only part of the job table was searched; ", h("a", { href: `#/jobs?factory=${id}` }, "the jobs table"), " pages through all of this factory's jobs."]));
  }
  every(REFRESH_MS, load);
}
