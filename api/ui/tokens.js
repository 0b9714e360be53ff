// Tokens and the audit log (#/tokens, admins only): every token without its secret (id, role,
// name, status, who minted it, expiry) with revoke; minting with an optional expiry, the new
// secret shown once; and the latest audit entries, filtered by action or caller.

import { h, api, every, rerender, flash, app, REFRESH_MS } from "./lib.js";

function when(ms) {
  return ms ? new Date(ms).toLocaleString() : "–";
}

export function tokensPage(main) {
  if (app.role !== "admin") {
    main.append(h("h1", {}, "Tokens"), h("p", { class: "muted" }, "Only admins see tokens and the audit log."));
    return;
  }
  const col = (label) => h("th", { scope: "col" }, label);
  const tokens = h("tbody", { "data-testid": "tokens" });
  const audit = h("tbody", { "data-testid": "audit" });
  const secret = h("p", { class: "secret", "data-testid": "secret" });
  const role = h("select", { id: "role" }, ...["operator", "viewer", "admin", "enrollment"].map((r) => h("option", { value: r }, r)));
  const name = h("input", { id: "name", required: true, maxlength: "128" });
  const expires = h("input", { id: "expires", placeholder: "90d, 12h (blank: never)" });
  const action = h("input", { id: "action", placeholder: "drain" });
  const caller = h("input", { id: "caller", placeholder: "operator:ci" });
  const mint = h("form", { class: "filters", onsubmit: async (e) => {
    e.preventDefault();
    const body = { role: role.value, name: name.value.trim() };
    if (expires.value.trim()) body.expires_in = expires.value.trim();
    try {
      const t = await api("POST", "/v1/tokens", body);
      secret.textContent = `Token ${t.id} for ${body.name} (shown once): ${t.token}`;
      await load();
    } catch (err) {
      flash(err.message);
    }
  } }, h("label", { for: "role" }, "Role"), role, h("label", { for: "name" }, "Name"), name, h("label", { for: "expires" }, "Expires in"), expires, h("button", { type: "submit" }, "Mint token"));
  const revoke = async (t) => {
    if (!confirm(`Revoke token ${t.id} (${t.role} ${t.name})?`)) return;
    try {
      await api("DELETE", `/v1/tokens/${encodeURIComponent(t.id)}`);
      flash(`token ${t.id} revoked`, "ok");
      await load();
    } catch (err) {
      flash(err.message);
    }
  };
  const filters = h("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); load().catch((err) => flash(err.message)); } }, h("label", { for: "action" }, "Action"), action, h("label", { for: "caller" }, "Caller"), caller, h("button", { type: "submit" }, "Filter"));
  main.append(
    h("h1", {}, "Tokens"),
    mint,
    secret,
    h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Tokens" }, h("table", {}, h("thead", {}, h("tr", {}, col("Id"), col("Role"), col("Name"), col("Status"), col("Created"), col("By"), col("Expires"), col("Actions"))), tokens)),
    h("h2", { id: "audit-title" }, "Audit log"),
    filters,
    h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-labelledby": "audit-title" }, h("table", {}, h("thead", {}, h("tr", {}, col("When"), col("Caller"), col("Action"), col("Target"), col("Status"))), audit)),
  );
  async function load() {
    const ts = await api("GET", "/v1/tokens");
    rerender(tokens, () => tokens.replaceChildren(...ts.map((t) => h("tr", { "data-token": t.id }, h("td", {}, h("code", {}, t.id)), h("td", {}, t.role), h("td", {}, t.name), h("td", {}, t.status), h("td", {}, when(t.created_at)), h("td", {}, t.created_by || "–"), h("td", {}, when(t.expires_at)), h("td", {}, t.role === "factory" ? "" : h("button", { type: "button", "data-key": `${t.id}:revoke`, "aria-label": `revoke ${t.name}`, onclick: () => revoke(t) }, "revoke"))))));
    const qs = new URLSearchParams({ limit: "100" });
    if (action.value.trim()) qs.set("action", action.value.trim());
    if (caller.value.trim()) qs.set("caller", caller.value.trim());
    const page = await api("GET", `/v1/audit?${qs}`);
    rerender(audit, () => audit.replaceChildren(...(page.entries.length ? page.entries.map((e) => h("tr", {}, h("td", {}, when(e.at)), h("td", {}, `${e.role}:${e.caller}`), h("td", {}, e.action), h("td", {}, e.target), h("td", {}, e.status))) : [h("tr", {}, h("td", { colspan: 5 }, "No entries."))])));
  }
  every(REFRESH_MS, load);
}
