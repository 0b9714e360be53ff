// The overview (#/overview): the fleet's counters, throughput and claim latency over the last
// hour (uPlot), spend against the budgets nearest their limits, the queue by product and by
// capability, capacity by shape (the scaling hints of /v1/autoscale), and recent events live
// (factories named by name, not id).

import { h, api, every, rerender, followSse, fmtTime, fmtUtc, badge, app, withFactoryNames, REFRESH_MS } from "./lib.js";
import { fmtUsd, percentOf, spendBar } from "./money.js";
import { budgetHref } from "./budgets.js";
import { when } from "./when.js";
import { waitingForInputCard } from "./question.js";

// Points a chart keeps: by default the server keeps an hour of samples (720 at 5 s).
const CHART_POINTS_MAX = 720;
// Budgets the overview lists, those nearest their limit first; the Budgets page has them all.
const BUDGETS_SHOWN_MAX = 6;
const PER = { day: "today", week: "this week", month: "this month" };

// A time series chart (uPlot). `add` appends a point (null values leave a gap), `draw` shows
// what was added; the chart's element carries the number of points for the tests.
function chart(el, title, series) {
  const width = Math.max(280, Math.min(el.clientWidth || 600, 900));
  const opts = {
    title,
    width,
    height: 180,
    series: [{}, ...series.map((label, i) => ({ label, stroke: ["#2563eb", "#b91c1c", "#047857"][i], width: 2 }))],
    axes: [{}, { size: 50 }],
  };
  const data = [[], ...series.map(() => [])];
  const plot = new uPlot(opts, data, el);
  return {
    add(t, values) {
      data[0].push(t);
      values.forEach((v, i) => data[i + 1].push(v ?? null));
      while (data[0].length > CHART_POINTS_MAX) data.forEach((d) => d.shift());
    },
    draw() {
      plot.setData(data);
      el.dataset.points = String(data[0].length);
    },
  };
}

export function overviewPage(main) {
  const cards = h("div", { class: "cards" });
  const byProduct = h("tbody");
  const byCap = h("tbody");
  const events = h("ol", { class: "events", "aria-live": "polite", tabindex: "0", "aria-label": "Recent events" });
  // The history is the coordinator node's own, kept in memory: after a restart it begins
  // then, and the charts say so rather than look like an idle hour.
  const since = h("p", { class: "hint", "data-testid": "history-since", hidden: true });
  const tChart = h("div", { class: "chart", "data-testid": "throughput-chart" });
  const lChart = h("div", { class: "chart", "data-testid": "latency-chart" });
  const spend = h("tbody", { "data-testid": "budget-spend" });
  const allBudgets = h("p");
  // Engines (or other limit keys) a provider's quota window holds: nothing under them starts
  // before the reset.
  const throttles = h("ul", { class: "throttles", "data-testid": "throttles" });
  const throttled = h("section", { class: "card warn", hidden: true, "aria-labelledby": "throttled-title" }, h("h2", { id: "throttled-title" }, "Throttled"), throttles);
  const capacity = h("tbody", { "data-testid": "capacity" });
  const asking = waitingForInputCard();
  main.append(
    h("h1", {}, "Overview"),
    cards,
    throttled,
    asking.el,
    h(
      "div",
      { class: "grid2" },
      h("section", { class: "card" }, h("h2", {}, "Throughput, last hour"), tChart),
      h("section", { class: "card" }, h("h2", {}, "Claim latency, last hour"), lChart),
    ),
    since,
    h("section", { class: "card" }, h("h2", { id: "spend-title" }, "Spend against budgets"), h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-labelledby": "spend-title" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Budget"), h("th", { scope: "col" }, "Spent"), h("th", { scope: "col" }, "Resets"))), spend)), allBudgets),
    h(
      "div",
      { class: "grid2" },
      h("section", { class: "card" }, h("h2", {}, "Queue by product"), h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Product"), h("th", {}, "Queued"))), byProduct)),
      h("section", { class: "card" }, h("h2", {}, "Queue by capability"), h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Capability"), h("th", {}, "Queued"))), byCap)),
    ),
    h(
      "section",
      { class: "card" },
      h("h2", { id: "capacity-title" }, "Capacity by shape"),
      h("p", { class: "hint" }, "Per set of requirements jobs carry: the factories that fit it, and how many the queue asks for (README: Scaling hints)."),
      h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-labelledby": "capacity-title" }, h("table", {}, h("thead", {}, h("tr", {}, ...["Capabilities", "Engine", "Queued", "Running", "Oldest wait", "Factories online", "Slots", "Factories wanted"].map((t) => h("th", { scope: "col" }, t)))), capacity)),
    ),
    h("section", { class: "card" }, h("h2", {}, "Recent events"), events),
  );
  const throughput = chart(tChart, "jobs per second", ["finished/s", "claimed/s"]);
  const latency = chart(lChart, "placement → lease committed (ms)", ["p50", "p99"]);
  // The node keeps the last hour of samples: the charts start with it, then append each new
  // sample as it is taken.
  let lastSampleAt = null;
  const loadSamples = async () => {
    const history = await api("GET", `/v1/stats/history${lastSampleAt === null ? "" : `?after=${lastSampleAt}`}`);
    const started = history.node_started_at;
    since.hidden = Date.now() - started > CHART_POINTS_MAX * history.interval_ms;
    since.replaceChildren("The coordinator node serving this page started ", when(started), ": the charts begin then (its history is kept in memory, and a restart starts it again).");
    for (const s of history.samples) {
      const t = s.at / 1000;
      throughput.add(t, [s.finished_per_s, s.claims_per_s]);
      latency.add(t, [s.claim_latency_p50_ms, s.claim_latency_p99_ms]);
      lastSampleAt = s.at;
    }
    throughput.draw();
    latency.draw();
  };
  every(REFRESH_MS, asking.refresh);
  every(REFRESH_MS, async () => {
    const [s, budgets, hints, limits] = await Promise.all([api("GET", "/v1/stats"), api("GET", "/v1/budgets"), api("GET", "/v1/autoscale"), api("GET", "/v1/limits")]);
    const held = limits.filter((l) => l.throttled_until);
    throttled.hidden = held.length === 0;
    throttles.replaceChildren(...held.map((l) => h("li", { "data-key": l.key }, h("strong", {}, l.key.startsWith("engine:") ? l.key.slice(7) : l.key), " throttled until ", when(l.throttled_until))));
    cards.replaceChildren(
      stat("Factories online", s.factories_online, "factories-online"),
      stat("Draining", s.factories_draining),
      stat("Offline", s.factories_offline),
      stat("Slots busy", `${s.slots_busy} / ${s.slots}`, "slots"),
      stat("Queued", s.queued, "queued"),
      stat("Running", s.running),
      stat("Budgets past alert", `${budgets.filter((b) => b.alert_reached).length} / ${budgets.length}`, "budgets-alert"),
      stat("Budgets holding jobs", budgets.filter((b) => b.hold).length, "budgets-holding"),
    );
    drawSpend(spend, allBudgets, budgets);
    const rows = (m) => Object.entries(m).map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, v)));
    byProduct.replaceChildren(...rows(s.queued_by_product));
    byCap.replaceChildren(...rows(s.queued_by_capability));
    drawCapacity(capacity, hints.shapes);
    await loadSamples();
  });
  const stop = followSse("/v1/events", (ev) => {
    const e = JSON.parse(ev.data);
    const item = h(
      "li",
      {},
      h("time", {}, fmtTime(e.at)),
      " ",
      h("a", { href: `#/jobs/${e.job_id}` }, e.title),
      " ",
      h("span", { class: "kind" }, e.kind),
      " → ",
      badge(e.state),
      h("span", { class: "muted" }, " ", withFactoryNames(`${e.actor}${e.detail ? ` · ${e.detail}` : ""}`)),
    );
    events.prepend(item);
    while (events.children.length > 50) events.lastChild.remove();
  });
  app.cleanups.push(stop);
}

// The budgets nearest their limit, with their spend this period, into `tbody`; `more` links to
// the Budgets page.
function drawSpend(tbody, more, budgets) {
  const nearest = [...budgets].sort((a, b) => b.spent_micros / b.limit_micros - a.spent_micros / a.limit_micros).slice(0, BUDGETS_SHOWN_MAX);
  const row = (b) => h(
    "tr",
    { "data-budget": b.name },
    h("td", {}, h("a", { href: budgetHref(b.name), "data-key": b.name }, b.name), " ", badge(b.state)),
    h("td", { class: "spend-cell" }, spendBar({ spent: b.spent_micros, limit: b.limit_micros, alertPercent: b.alert_percent, label: `Spend of budget ${b.name}` }), `${fmtUsd(b.spent_micros)} of ${fmtUsd(b.limit_micros)} ${PER[b.period]} (${percentOf(b.spent_micros, b.limit_micros)} %)`),
    h("td", {}, fmtUtc(b.period_end)),
  );
  rerender(tbody, () => tbody.replaceChildren(...(nearest.length ? nearest.map(row) : [h("tr", {}, h("td", { colspan: 3 }, "No budgets."))])));
  more.replaceChildren(h("a", { href: "#/budgets" }, budgets.length > nearest.length ? `All ${budgets.length} budgets` : "Budgets"));
}

// One row per shape with work queued or running; a shape wanting more factories than are
// online is marked.
function drawCapacity(tbody, shapes) {
  const row = (c) => {
    const caps = c.capabilities.length ? c.capabilities.join(",") : "any";
    const short = c.desired_factories > c.factories_online;
    return h(
      "tr",
      { "data-shape": `${caps}/${c.engine_class ?? ""}` },
      h("td", {}, caps),
      h("td", {}, c.engine_class ?? "any"),
      h("td", {}, c.runnable === c.queued ? c.queued : `${c.queued} (${c.runnable} runnable)`),
      h("td", {}, c.running),
      h("td", {}, c.runnable ? `${c.oldest_queued_age_seconds} s` : "–"),
      h("td", {}, c.factories_online),
      h("td", {}, c.slots),
      h("td", { "data-testid": "wanted" }, String(c.desired_factories), short ? h("span", { class: "muted" }, ` (${c.desired_factories - c.factories_online} more)`) : null),
    );
  };
  rerender(tbody, () => tbody.replaceChildren(...(shapes.length ? shapes.map(row) : [h("tr", {}, h("td", { colspan: 8 }, "Nothing queued or running."))])));
}

function stat(label, value, testid) {
  return h("div", { class: "stat", "data-testid": testid }, h("div", { class: "value" }, value), h("div", { class: "label" }, label));
}
