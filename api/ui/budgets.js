// The budgets (#/budgets): each budget's spend against its limit in the current period, its
// state (active, paused, exhausted) and the hold it puts on its jobs; operators create, edit,
// pause, resume and delete them. The page of one budget (budget.js) shares the summary, the
// actions and the pause dialog.

import { h, api, every, rerender, flash, canAct, badge, fmtUtc, fmtUntil, REFRESH_MS } from "./lib.js";
import { fmtUsd, parseUsd, usdDecimal, percentOf, spendBar } from "./money.js";

const PERIODS = { day: "daily", week: "weekly", month: "monthly" };
// The coordinator refuses a budget with every problem in one message, joined by this.
const PROBLEM_SEPARATOR = "; ";

export function budgetHref(name) {
  return `#/budgets/${encodeURIComponent(name)}`;
}

// What budget `b` covers, how often it resets and what it does at its limit.
function scope(b) {
  const policy = b.policy === "stop" ? "at the limit, running jobs stop" : "at the limit, running jobs finish";
  return [`product ${b.product}`, b.label ? `label ${b.label}` : "all its jobs", PERIODS[b.period], policy].join(" · ");
}

// Where budget `b` stands: its spend bar and figures, when its period resets, who paused it
// and why, and the hold it puts on its jobs.
export function budgetSummary(b) {
  const percent = percentOf(b.spent_micros, b.limit_micros);
  const lines = [
    h("p", { class: "muted", "data-testid": "scope" }, scope(b)),
    spendBar({ spent: b.spent_micros, limit: b.limit_micros, alertPercent: b.alert_percent, label: `Spend of budget ${b.name}` }),
    h("p", { "data-testid": "spend" }, h("strong", {}, fmtUsd(b.spent_micros)), ` of ${fmtUsd(b.limit_micros)} (${percent} %) · alert at ${b.alert_percent} %${b.alert_reached ? ", passed" : ""}`),
    h("p", { "data-testid": "resets" }, `Resets ${fmtUtc(b.period_end)} (${fmtUntil(b.period_end)})`),
    b.paused ? h("p", { "data-testid": "paused" }, `Paused by ${b.paused.by} on ${new Date(b.paused.at).toLocaleString()}: ${b.paused.reason}`) : null,
    b.hold ? h("p", { class: "hold", "data-testid": "hold" }, h("strong", {}, "Holding its jobs: "), b.hold) : null,
  ];
  return lines.filter(Boolean);
}

// The buttons an operator gets for budget `b`; a viewer gets none. Pause and resume share a
// data-key, so the keyboard focus stays on the button that takes its place. `pause(b)` asks
// why, `edit(b)` opens the form, `changed()` runs after a resume and `deleted()` after a delete.
export function budgetActions(b, { pause, edit, changed, deleted }) {
  if (!canAct()) return [];
  const button = (key, action, label, onclick) => h("button", { type: "button", "data-key": `${b.name}:${key}`, "data-action": action, "aria-label": `${label} ${b.name}`, onclick }, label);
  const path = `/v1/budgets/${encodeURIComponent(b.name)}`;
  const resume = async () => {
    try {
      await api("POST", `${path}/resume`);
      flash(`budget ${b.name} resumed`, "ok");
      await changed();
    } catch (e) {
      flash(e.message);
    }
  };
  const remove = async () => {
    if (!confirm(`Delete budget ${b.name}? Its jobs are no longer held or counted by it.`)) return;
    try {
      await api("DELETE", path);
      flash(`budget ${b.name} deleted`, "ok");
      await deleted();
    } catch (e) {
      flash(e.message);
    }
  };
  return [
    b.paused ? button("toggle", "resume", "Resume", resume) : button("toggle", "pause", "Pause", () => pause(b)),
    button("edit", "edit", "Edit", () => edit(b)),
    button("delete", "delete", "Delete", remove),
  ];
}

// The dialog that asks why a budget is paused (the API wants a reason). Appended to `main`;
// returns `open(b)`. After a pause the page calls `changed()`; when the dialog closes the focus
// goes back to the budget's pause/resume button, which a redraw may have replaced meanwhile.
export function pauseDialog(main, changed) {
  let budget = null;
  const title = h("h2", { id: "pause-title" });
  const reason = h("input", { id: "pause-reason", required: true, maxlength: "512", autocomplete: "off" });
  const problem = h("p", { class: "form-errors", role: "alert", hidden: true });
  const dialog = h("dialog", { "aria-labelledby": "pause-title" });
  const form = h(
    "form",
    {
      onsubmit: async (e) => {
        e.preventDefault();
        try {
          await api("POST", `/v1/budgets/${encodeURIComponent(budget.name)}/pause`, { reason: reason.value });
          dialog.close();
          flash(`budget ${budget.name} paused`, "ok");
          await changed();
        } catch (err) {
          problem.textContent = err.message;
          problem.hidden = false;
        }
      },
    },
    title,
    h("p", {}, "Its jobs get no new leases until it is resumed."),
    h("label", { for: "pause-reason" }, "Reason"),
    reason,
    problem,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Pause budget"), h("button", { type: "button", class: "secondary", onclick: () => dialog.close() }, "Cancel")),
  );
  dialog.append(form);
  dialog.addEventListener("close", () => {
    const toggle = main.querySelector(`[data-key="${CSS.escape(`${budget.name}:toggle`)}"]`);
    if (toggle) toggle.focus();
  });
  main.append(dialog);
  return (b) => {
    budget = b;
    title.textContent = `Pause budget ${b.name}`;
    reason.value = "";
    problem.hidden = true;
    dialog.showModal();
  };
}

// The create and edit form. `existing()` lists the budgets shown (a new budget may not take
// one's name: the API would replace it), `saved(b)` runs after the API accepted. A refused save
// lists the API's problems beside the form and keeps what was typed.
function budgetForm(existing, saved) {
  const title = h("h2", { id: "budget-form-title" });
  const input = (id, attrs = {}) => h("input", { id, autocomplete: "off", ...attrs });
  const name = input("b-name", { required: true, maxlength: "64", "aria-describedby": "b-name-hint" });
  const product = input("b-product", { required: true });
  const label = input("b-label", { "aria-describedby": "b-label-hint" });
  const period = h("select", { id: "b-period" }, ...Object.entries(PERIODS).map(([value, text]) => h("option", { value }, `${text} (UTC ${value})`)));
  const limit = input("b-limit", { required: true, inputmode: "decimal", placeholder: "50.00", "aria-describedby": "b-limit-hint" });
  const alert = input("b-alert", { inputmode: "numeric", "aria-describedby": "b-alert-hint" });
  const policy = h("select", { id: "b-policy" }, h("option", { value: "finish" }, "finish: running jobs end"), h("option", { value: "stop" }, "stop: running jobs are preempted"));
  const problems = h("div", { class: "form-errors", role: "alert", hidden: true, "data-testid": "budget-errors" });
  const cancel = h("button", { type: "button", class: "secondary", onclick: () => reset() }, "Cancel edit");
  const field = (el, text, hint) => h("div", { class: "field" }, h("label", { for: el.id }, text), el, hint ? h("span", { class: "hint", id: `${el.id}-hint` }, hint) : null);
  let editing = null;
  const showProblems = (list) => {
    problems.replaceChildren(h("strong", {}, "Not saved:"), h("ul", {}, ...list.map((p) => h("li", {}, p))));
    problems.hidden = false;
  };
  const reset = () => {
    editing = null;
    title.textContent = "New budget";
    name.readOnly = false;
    for (const el of [name, product, label, limit]) el.value = "";
    alert.value = "80";
    period.value = "day";
    policy.value = "finish";
    cancel.hidden = true;
    problems.hidden = true;
  };
  const submit = async (e) => {
    e.preventDefault();
    const budgetName = name.value.trim();
    const micros = parseUsd(limit.value);
    const alertText = alert.value.trim();
    const local = [];
    if (!editing && existing().some((b) => b.name === budgetName)) local.push(`name: budget ${budgetName} exists; edit it instead`);
    if (micros === null) local.push(`limit: ${JSON.stringify(limit.value)} is not an amount of dollars (like 12.50, at most 6 decimals, not negative)`);
    if (alertText !== "" && !/^\d+$/.test(alertText)) local.push(`alert_percent: ${JSON.stringify(alertText)} is not a whole number`);
    if (local.length) return showProblems(local);
    const body = { product: product.value.trim(), period: period.value, limit_micros: micros, policy: policy.value };
    if (label.value.trim()) body.label = label.value.trim();
    if (alertText !== "") body.alert_percent = Number(alertText);
    try {
      const b = await api("PUT", `/v1/budgets/${encodeURIComponent(budgetName)}`, body);
      flash(`budget ${b.name} saved`, "ok");
      reset();
      await saved(b);
    } catch (err) {
      showProblems(err.body && err.body.message ? err.body.message.split(PROBLEM_SEPARATOR) : [err.message]);
    }
  };
  const el = h(
    "form",
    { class: "card budget-form", "aria-labelledby": "budget-form-title", "data-testid": "budget-form", onsubmit: submit },
    title,
    h(
      "div",
      { class: "form-grid" },
      field(name, "Name", "Letters, digits, . _ -; it cannot change later."),
      field(product, "Product"),
      field(label, "Label (optional)", "Only the product's jobs with this label count."),
      field(period, "Period"),
      field(limit, "Limit per period, in dollars", "Like 50 or 12.50."),
      field(alert, "Alert at, % of the limit", "1 to 100; 80 when blank."),
      field(policy, "At the limit"),
    ),
    problems,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Save budget"), cancel),
  );
  reset();
  return {
    el,
    edit(b) {
      editing = b;
      title.textContent = `Edit budget ${b.name}`;
      name.value = b.name;
      name.readOnly = true;
      product.value = b.product;
      label.value = b.label || "";
      period.value = b.period;
      limit.value = usdDecimal(b.limit_micros);
      alert.value = String(b.alert_percent);
      policy.value = b.policy;
      cancel.hidden = false;
      problems.hidden = true;
      el.scrollIntoView({ block: "nearest" });
      product.focus();
    },
  };
}

export function budgetsPage(main, params) {
  const list = h("ul", { class: "budgets", "data-testid": "budgets", "aria-label": "Budgets" });
  let budgets = [];
  // Hoisted: the form, the dialog and the actions call it after a change.
  async function refresh() {
    budgets = await api("GET", "/v1/budgets");
    const card = (b) => h(
      "li",
      { class: "card budget", "data-budget": b.name },
      h("div", { class: "budget-head" }, h("h2", {}, h("a", { href: budgetHref(b.name), "data-key": `${b.name}:page` }, b.name)), badge(b.state)),
      ...budgetSummary(b),
      h("div", { class: "actions" }, budgetActions(b, { pause: openPause, edit: (x) => form.edit(x), changed: refresh, deleted: refresh })),
    );
    rerender(list, () => list.replaceChildren(...(budgets.length ? budgets.map(card) : [h("li", { class: "card muted" }, "No budgets yet.")])));
  }
  const form = canAct() ? budgetForm(() => budgets, refresh) : null;
  const openPause = canAct() ? pauseDialog(main, refresh) : null;
  main.append(
    h("h1", {}, "Budgets"),
    h("p", { class: "muted" }, "What each product (or one label's jobs in it) may spend per UTC day, week or month. A paused or exhausted budget holds its jobs: they get no new leases until it is resumed, raised or its period resets."),
    list,
    form ? form.el : h("p", { class: "muted" }, "Read only (viewer)."),
  );
  // #/budgets?edit=NAME (the Edit of a budget's own page) opens the form on it once loaded.
  let toEdit = form && params.get("edit");
  every(REFRESH_MS, async () => {
    await refresh();
    const b = toEdit && budgets.find((x) => x.name === toEdit);
    if (b) form.edit(b);
    toEdit = null;
  });
}
