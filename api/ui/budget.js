// One budget's page (#/budgets/NAME): where it stands, its burndown over the current period
// (uPlot: spend per day, cumulative spend, the limit and the forecast to the period's end),
// the same figures as a table, and the jobs that spent most.

import { h, api, every, rerender, badge, canAct, fmtUtc, REFRESH_MS } from "./lib.js";
import { fmtUsd, percentOf } from "./money.js";
import { budgetSummary, budgetActions, pauseDialog } from "./budgets.js";

const DOLLAR = 1_000_000;

// The burndown as series over the period, keyed by time in ms; money in dollars, for drawing
// only (the figures shown as text stay exact). Spend per day is a step from each day's start;
// cumulative spend is the total at each day's start and now; the limit spans the period; the
// forecast runs from now's total to the period's end. `now` is clamped into today.
function burndownPoints(bd, now) {
  const points = new Map();
  const at = (ms) => {
    if (!points.has(ms)) points.set(ms, {});
    return points.get(ms);
  };
  at(bd.period_start).cumulative = 0;
  at(bd.period_start).limit = bd.limit_micros / DOLLAR;
  at(bd.period_end).limit = bd.limit_micros / DOLLAR;
  bd.days.forEach((d, i) => {
    at(d.day).daily = d.spent_micros / DOLLAR;
    if (i > 0) at(d.day).cumulative = bd.days[i - 1].cumulative_micros / DOLLAR;
  });
  const today = bd.days[bd.days.length - 1];
  if (today) {
    const t = Math.min(Math.max(now, today.day), bd.period_end);
    const total = today.cumulative_micros / DOLLAR;
    Object.assign(at(t), { daily: today.spent_micros / DOLLAR, cumulative: total, forecast: total });
    at(bd.period_end).forecast = bd.forecast_micros / DOLLAR;
  }
  return points;
}

// The burndown chart in `el`; `draw(burndown)` shows the latest figures. Series absent at a
// time are `undefined`, which uPlot passes over (a line joins its neighbours), unlike `null`,
// which would cut it.
function burndownChart(el) {
  const labels = ["Spent per day", "Cumulative", "Limit", "Forecast"];
  let range = [0, 1];
  let limit = 0;
  const money = (u, v) => (v === null || v === undefined ? "–" : `$${v.toFixed(2)}`);
  const opts = {
    width: Math.max(280, Math.min(el.clientWidth || 600, 1100)),
    height: 260,
    // Periods are UTC days, weeks and months: their edges read as UTC midnights.
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
    scales: {
      x: { time: true, range: () => range },
      y: { range: (u, min, max) => [0, Math.max(max || 0, limit) * 1.1 || 1] },
    },
    series: [
      {},
      { label: labels[0], stroke: "#2563eb", fill: "rgba(37, 99, 235, 0.18)", width: 1, paths: uPlot.paths.stepped({ align: 1 }), points: { show: false }, value: money },
      { label: labels[1], stroke: "#1e3a8a", width: 2.5, points: { show: true, size: 6 }, value: money },
      { label: labels[2], stroke: "#b91c1c", width: 2, points: { show: false }, value: money },
      { label: labels[3], stroke: "#b45309", width: 2, dash: [8, 6], points: { show: false }, value: money },
    ],
    axes: [{}, { size: 64, values: (u, ticks) => ticks.map((v) => `$${v < 10 ? v.toFixed(2) : Math.round(v)}`) }],
  };
  const plot = new uPlot(opts, [[], [], [], [], []], el);
  const keys = ["daily", "cumulative", "limit", "forecast"];
  return {
    draw(bd) {
      range = [bd.period_start / 1000, bd.period_end / 1000];
      limit = bd.limit_micros / DOLLAR;
      const points = burndownPoints(bd, Date.now());
      const times = [...points.keys()].sort((a, b) => a - b);
      plot.setData([times.map((t) => t / 1000), ...keys.map((k) => times.map((t) => points.get(t)[k]))]);
      el.dataset.points = String(times.length);
    },
  };
}

// The forecast in words, for those who do not read the chart. A forecast is an estimate: it
// is shown to the cent (rounded up), unlike what was spent.
function outlook(b, bd) {
  const cents = (micros) => Math.ceil(micros / 10_000) * 10_000;
  const over = bd.forecast_micros - bd.limit_micros;
  const verdict = over > 0 ? `about ${fmtUsd(cents(over))} over the limit` : "within the limit";
  return `Spent ${fmtUsd(b.spent_micros)} of ${fmtUsd(bd.limit_micros)} so far. At the recent rate it reaches about ${fmtUsd(cents(bd.forecast_micros))} by ${fmtUtc(bd.period_end)}: ${verdict}.`;
}

export function budgetPage(main, name) {
  const title = h("h1", { id: "budget-title" }, name);
  const actions = h("div", { class: "actions", role: "group", "aria-label": "Actions" });
  const summary = h("div", { "data-testid": "budget-summary" });
  const chartEl = h("div", { class: "chart", "data-testid": "burndown-chart" });
  const forecast = h("p", { "data-testid": "forecast" });
  const days = h("tbody", { "data-testid": "days" });
  const top = h("tbody", { "data-testid": "top-jobs" });
  const col = (label) => h("th", { scope: "col" }, label);
  const table = (titleId, heads, body) => h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-labelledby": titleId }, h("table", {}, h("thead", {}, h("tr", {}, ...heads.map(col))), body));
  main.append(
    h("p", {}, h("a", { href: "#/budgets" }, "← Budgets")),
    title,
    actions,
    h("section", { class: "card" }, h("h2", {}, "This period"), summary),
    h("section", { class: "card" }, h("h2", {}, "Burndown"), chartEl, forecast),
    h(
      "div",
      { class: "grid2" },
      h("section", { class: "card" }, h("h2", { id: "days-title" }, "Spend per day (UTC)"), table("days-title", ["Day", "Spent", "Cumulative"], days)),
      h("section", { class: "card" }, h("h2", { id: "top-title" }, "Top jobs this period"), table("top-title", ["Job", "Spent", "Share"], top)),
    ),
  );
  const openPause = canAct() ? pauseDialog(main, load) : null;
  if (!canAct()) actions.replaceChildren(h("span", { class: "muted" }, "Read only (viewer)."));
  let chart = null;
  async function load() {
    let d;
    try {
      d = await api("GET", `/v1/budgets/${encodeURIComponent(name)}`);
    } catch (e) {
      if (e.status === 404) title.textContent = `No budget ${name}`;
      throw e;
    }
    const { budget: b, burndown: bd } = d;
    title.replaceChildren(b.name, " ", badge(b.state));
    if (canAct()) {
      const edit = () => (location.hash = `#/budgets?edit=${encodeURIComponent(b.name)}`);
      const deleted = () => (location.hash = "#/budgets");
      rerender(actions, () => actions.replaceChildren(...budgetActions(b, { pause: openPause, edit, changed: load, deleted })));
    }
    summary.replaceChildren(...budgetSummary(b));
    chart ??= burndownChart(chartEl);
    chart.draw(bd);
    forecast.textContent = outlook(b, bd);
    days.replaceChildren(...[...bd.days].reverse().map((x) => h("tr", {}, h("td", {}, fmtUtc(x.day).slice(0, 10)), h("td", {}, fmtUsd(x.spent_micros)), h("td", {}, fmtUsd(x.cumulative_micros)))));
    rerender(top, () => top.replaceChildren(...(d.top_jobs.length ? d.top_jobs.map((j) => h("tr", { "data-job": j.job_id }, h("td", {}, h("a", { href: `#/jobs/${j.job_id}`, "data-key": j.job_id }, j.title || j.job_id)), h("td", {}, fmtUsd(j.spent_micros)), h("td", {}, `${percentOf(j.spent_micros, b.spent_micros)} %`))) : [h("tr", {}, h("td", { colspan: 3 }, "No spend this period."))])));
  }
  every(REFRESH_MS, load);
}
