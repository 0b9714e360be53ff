// The secrets (#/secrets): what is known of each secret — its name, product and profile, how
// the job receives it, its version and who set it when — never its value, which no route
// returns. Operators set one (the value in a password field, cleared once saved and never
// shown back) and delete one after a confirmation.

import { h, api, every, rerender, flash, canAct, fmtTime, REFRESH_MS } from "./lib.js";

const COLUMNS = ["Name", "Product", "Profile", "Given as", "Version", "Set by", "Set", ""];

function secretPath(s) {
  const q = s.profile ? `?profile=${encodeURIComponent(s.profile)}` : "";
  return `/v1/secrets/${encodeURIComponent(s.product)}/${encodeURIComponent(s.name)}${q}`;
}

// A secret's row: the delete button (operators) asks before it acts.
function row(s, deleted) {
  const scope = `${s.name} of ${s.product}${s.profile ? ` (profile ${s.profile})` : ""}`;
  const remove = async () => {
    if (!confirm(`Delete secret ${scope}? Jobs leased from now on no longer get it.`)) return;
    try {
      await api("DELETE", secretPath(s));
      flash(`secret ${scope} deleted`, "ok");
      await deleted();
    } catch (e) {
      flash(e.message);
    }
  };
  const cell = (label, text) => h("td", { "data-label": label }, text);
  return h(
    "tr",
    { "data-secret": `${s.product}/${s.profile || ""}/${s.name}` },
    cell("Name", h("code", {}, s.name)),
    cell("Product", s.product),
    cell("Profile", s.profile || "all profiles"),
    cell("Given as", s.delivery === "file" ? "file in $GF_SECRETS_DIR" : "variable"),
    cell("Version", String(s.version)),
    cell("Set by", s.set_by),
    cell("Set", fmtTime(s.set_at)),
    h("td", {}, canAct() ? h("button", { type: "button", class: "secondary", "aria-label": `Delete ${scope}`, "data-action": "delete", onclick: remove }, "Delete") : null),
  );
}

// The form that sets (or rotates) a secret. `saved()` runs after the API took it; a refusal
// shows the API's message beside the form and keeps what was typed, the value too.
function secretForm(saved) {
  const input = (id, attrs = {}) => h("input", { id, autocomplete: "off", ...attrs });
  const product = input("s-product", { required: true });
  const profile = input("s-profile", { "aria-describedby": "s-profile-hint" });
  const name = input("s-name", { required: true, pattern: "[A-Z_][A-Z0-9_]*", "aria-describedby": "s-name-hint", placeholder: "ANTHROPIC_API_KEY" });
  // A text area, not a password field: a password field drops a pasted PEM key's line breaks.
  // Masked by CSS while typed; no autocomplete or spellcheck, so no browser keeps or sends it.
  const value = h("textarea", { id: "s-value", class: "secret-value", rows: "3", required: true, autocomplete: "off", spellcheck: "false", "aria-describedby": "s-value-hint" });
  const asFile = input("s-file", { type: "checkbox" });
  const problem = h("p", { class: "form-errors", role: "alert", hidden: true, "data-testid": "secret-errors" });
  const field = (el, text, hint) => h("div", { class: "field" }, h("label", { for: el.id }, text), el, hint ? h("span", { class: "hint", id: `${el.id}-hint` }, hint) : null);
  const submit = async (e) => {
    e.preventDefault();
    const s = { product: product.value.trim(), profile: profile.value.trim() || null, name: name.value.trim() };
    const body = { value: value.value, delivery: asFile.checked ? "file" : "env" };
    try {
      const meta = await api("PUT", secretPath(s), body);
      value.value = "";
      problem.hidden = true;
      flash(`secret ${meta.name} saved (version ${meta.version})`, "ok");
      await saved();
    } catch (err) {
      problem.textContent = `Not saved: ${err.message}`;
      problem.hidden = false;
    }
  };
  return h(
    "form",
    { class: "card", "aria-labelledby": "secret-form-title", "data-testid": "secret-form", onsubmit: submit },
    h("h2", { id: "secret-form-title" }, "Set a secret"),
    h(
      "div",
      { class: "form-grid" },
      field(product, "Product"),
      field(profile, "Profile (optional)", "Only that profile's jobs; it wins over the product's secret of the same name."),
      field(name, "Name", "The variable the job sees: A-Z, 0-9, _."),
      field(value, "Value", "8 bytes to 64 KiB, several lines allowed (a key file). Never shown again; setting it again rotates it."),
      h("div", { class: "field" }, h("label", { for: asFile.id }, asFile, " Give it as a file")),
    ),
    problem,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Save secret")),
  );
}

export function secretsPage(main) {
  const tbody = h("tbody", { "data-testid": "secrets" });
  async function refresh() {
    const secrets = await api("GET", "/v1/secrets");
    const rows = secrets.map((s) => row({ ...s, profile: s.profile || null }, refresh));
    rerender(tbody, () => tbody.replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { colspan: String(COLUMNS.length), class: "muted" }, "No secrets yet."))])));
  }
  main.append(
    h("h1", {}, "Secrets"),
    h("p", { class: "muted" }, "Values are sealed with the coordinator's key and reach only the factory holding a job's lease, as variables or files; they are replaced by [secret NAME] in the job's logs. No page or route shows a value."),
    h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Secrets" }, h("table", { class: "stack" }, h("thead", {}, h("tr", {}, ...COLUMNS.map((c) => h("th", { scope: "col" }, c)))), tbody)),
    canAct() ? secretForm(refresh) : h("p", { class: "muted" }, "Read only (viewer)."),
  );
  every(REFRESH_MS, refresh);
}
