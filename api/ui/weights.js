// Per-product scoring weights and fair share (#/weights): defaults, overrides and what takes
// effect.

import { h, api, flash, canAct } from "./lib.js";

export function weightsPage(main, params) {
  const product = h("input", { id: "product", value: params.get("product") || "", required: true });
  const table = h("tbody");
  const out = h("div");
  const names = ["priority", "age", "affinity", "load", "cost", "success"];
  const explain = {
    priority: "the job's priority (0–1000)",
    age: "how long it has waited",
    affinity: "the factory already has its repository warm",
    load: "free slots on the factory",
    cost: "cheaper factories",
    success: "the factory's recent success on this product",
  };
  // No min or max: the API names the range when a value is out of it.
  const share = h("input", { id: "share", type: "number", step: "1", disabled: !canAct() });
  const shareNote = h("p", { class: "muted" });
  const load = async () => {
    const shares = await api("GET", "/v1/products/shares");
    share.value = shares.shares[product.value] ?? shares.default;
    shareNote.textContent = shares.enabled
      ? `Fair share is on: when products compete for the same factories, each holds running slots in proportion to its share (products without one have ${shares.default}).`
      : "Fair share is off in this coordinator's configuration: products compete on score alone.";
    const w = await api("GET", `/v1/products/${encodeURIComponent(product.value)}/weights`);
    table.replaceChildren(...names.map((n) => h("tr", {}, h("th", { scope: "row" }, n), h("td", {}, explain[n]), h("td", {}, w.defaults[n]), h("td", {}, h("input", { type: "number", step: "0.1", min: "0", max: "10", name: n, "aria-label": `${n} override`, value: w.override[n] ?? "", disabled: !canAct() })), h("td", {}, w.effective[n]))));
  };
  const form = h("form", { onsubmit: async (e) => {
    e.preventDefault();
    const body = {};
    for (const n of names) {
      const v = form.querySelector(`input[name=${n}]`);
      if (v && v.value !== "") body[n] = Number(v.value);
    }
    try {
      await api("PUT", `/v1/products/${encodeURIComponent(product.value)}/weights`, body);
      flash("weights saved", "ok");
      await load();
    } catch (err) {
      flash(err.message);
    }
  } }, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Factor"), h("th", {}, "Favours"), h("th", {}, "Default"), h("th", {}, "Override"), h("th", {}, "Effective"))), table), canAct() ? h("button", { type: "submit" }, "Save") : "");
  const shareForm = h("form", { class: "filters", onsubmit: async (e) => {
    e.preventDefault();
    try {
      await api("PUT", `/v1/products/${encodeURIComponent(product.value)}/share`, { share: Number(share.value) });
      flash("share saved", "ok");
      await load();
    } catch (err) {
      flash(err.message);
    }
  } }, h("label", { for: "share" }, "Fair share"), share, canAct() ? h("button", { type: "submit" }, "Save share") : "");
  main.append(
    h("h1", {}, "Scoring weights"),
    h("p", {}, "Each queued job's score on a factory is the sum of factor × weight; the highest score is placed first. A product's override replaces the default for its jobs; blank keeps the default."),
    h("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); load().catch((err) => flash(err.message)); } }, h("label", { for: "product" }, "Product"), product, h("button", { type: "submit" }, "Load")),
    h("h2", {}, "Fair share"),
    shareNote,
    shareForm,
    h("h2", {}, "Weights"),
    form,
    out,
  );
  if (product.value) load().catch((e) => flash(e.message));
}
