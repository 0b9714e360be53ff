// The overview (#/overview): the fleet's counters, throughput and claim latency over the last
// hour (uPlot), the queue by product and by capability, and recent events live.

import { h, api, every, followSse, fmtTime, badge, app, REFRESH_MS } from "./lib.js";

// Points a chart keeps: by default the server keeps an hour of samples (720 at 5 s).
const CHART_POINTS_MAX = 720;

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
  const tChart = h("div", { class: "chart", "data-testid": "throughput-chart" });
  const lChart = h("div", { class: "chart", "data-testid": "latency-chart" });
  main.append(
    h("h1", {}, "Overview"),
    cards,
    h(
      "div",
      { class: "grid2" },
      h("section", { class: "card" }, h("h2", {}, "Throughput, last hour"), tChart),
      h("section", { class: "card" }, h("h2", {}, "Claim latency, last hour"), lChart),
    ),
    h(
      "div",
      { class: "grid2" },
      h("section", { class: "card" }, h("h2", {}, "Queue by product"), h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Product"), h("th", {}, "Queued"))), byProduct)),
      h("section", { class: "card" }, h("h2", {}, "Queue by capability"), h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Capability"), h("th", {}, "Queued"))), byCap)),
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
    for (const s of history.samples) {
      const t = s.at / 1000;
      throughput.add(t, [s.finished_per_s, s.claims_per_s]);
      latency.add(t, [s.claim_latency_p50_ms, s.claim_latency_p99_ms]);
      lastSampleAt = s.at;
    }
    throughput.draw();
    latency.draw();
  };
  every(REFRESH_MS, async () => {
    const s = await api("GET", "/v1/stats");
    cards.replaceChildren(
      stat("Factories online", s.factories_online, "factories-online"),
      stat("Draining", s.factories_draining),
      stat("Offline", s.factories_offline),
      stat("Slots busy", `${s.slots_busy} / ${s.slots}`, "slots"),
      stat("Queued", s.queued, "queued"),
      stat("Running", s.running),
    );
    const rows = (m) => Object.entries(m).map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, v)));
    byProduct.replaceChildren(...rows(s.queued_by_product));
    byCap.replaceChildren(...rows(s.queued_by_capability));
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
      h("span", { class: "muted" }, ` ${e.actor}`),
    );
    events.prepend(item);
    while (events.children.length > 50) events.lastChild.remove();
  });
  app.cleanups.push(stop);
}

function stat(label, value, testid) {
  return h("div", { class: "stat", "data-testid": testid }, h("div", { class: "value" }, value), h("div", { class: "label" }, label));
}
