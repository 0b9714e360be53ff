// Draws deploy/grafana/gigafactory.json's panels from a live Prometheus, for the README's
// screenshot (called by scripts/render-dashboard, which starts the cluster and Prometheus).
// Each panel's queries go through /api/v1/query_range over [start, end]; the page lays the
// panels out on Grafana's 24-column grid, in its dark theme, each as an SVG with a grid, axis
// labels in the panel's unit, one line a series and a legend; headless Chromium (Debian's,
// through tests/ui's playwright-core) screenshots it. A panel with no data says so.
import { createRequire } from "node:module";
import { readFileSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { parseArgs } from "node:util";

const require = createRequire(new URL("../tests/ui/package.json", import.meta.url));
const { chromium } = require("playwright-core");

const { values: opt } = parseArgs({
  options: {
    prometheus: { type: "string" },
    dashboard: { type: "string" },
    start: { type: "string" },
    end: { type: "string" },
    out: { type: "string" },
  },
});
const dashboard = JSON.parse(readFileSync(opt.dashboard, "utf8"));
const [start, end] = [Number(opt.start), Number(opt.end)];
const step = Math.max(1, Math.round((end - start) / 150));
// Grafana's $__rate_interval is four scrape intervals at least; the scrape here is 1 s, and a
// slightly longer window keeps a minute-long run readable.
const RATE_INTERVAL = "10s";

async function queryRange(expr) {
  const q = new URLSearchParams({ query: expr.replaceAll("$__rate_interval", RATE_INTERVAL), start, end, step });
  const res = await fetch(`${opt.prometheus}/api/v1/query_range?${q}`);
  const body = await res.json();
  if (body.status !== "success") throw new Error(`${expr}: ${body.error}`);
  return body.data.result;
}

const legend = (format, metric) =>
  (format || "{{__name__}}").replace(/\{\{\s*(\w+)\s*\}\}/g, (_, l) => metric[l] ?? "").trim() || "value";

const FORMAT = {
  s: (v) => (v === 0 ? "0" : v < 1 ? `${+(v * 1000).toPrecision(3)} ms` : v < 120 ? `${+v.toPrecision(3)} s` : `${+(v / 60).toPrecision(3)} min`),
  ops: (v) => `${+v.toPrecision(3)}/s`,
  percentunit: (v) => `${+(v * 100).toPrecision(3)}%`,
  currencyUSD: (v) => `$${v.toFixed(v < 10 ? 2 : 0)}`,
  short: (v) => (v >= 1000 ? `${+(v / 1000).toPrecision(3)}K` : `${+v.toPrecision(3)}`),
};
const COLORS = ["#73BF69", "#F2CC0C", "#8AB8FF", "#FF780A", "#F2495C", "#5794F2", "#B877D9", "#FADE2A", "#96D98D", "#FFB357"];
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

// A "nice" upper bound and four grid steps for the y axis.
function yScale(max) {
  if (!(max > 0)) return { top: 1, ticks: [0, 0.25, 0.5, 0.75, 1] };
  const raw = max / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const unit = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  return { top: unit * 4, ticks: [0, 1, 2, 3, 4].map((i) => i * unit) };
}

function svgPanel(series, unit, width, height) {
  const fmt = FORMAT[unit] || FORMAT.short;
  const pad = { l: 64, r: 10, t: 8, b: 22 };
  const w = width - pad.l - pad.r, h = height - pad.t - pad.b;
  const max = Math.max(0, ...series.flatMap((s) => s.points.map((p) => p[1])));
  const { top, ticks } = yScale(max);
  const x = (t) => pad.l + ((t - start) / (end - start)) * w;
  const y = (v) => pad.t + h - (v / top) * h;
  const parts = [];
  for (const t of ticks) {
    parts.push(`<line x1="${pad.l}" x2="${pad.l + w}" y1="${y(t)}" y2="${y(t)}" stroke="#2c3235"/>`);
    parts.push(`<text x="${pad.l - 6}" y="${y(t) + 4}" text-anchor="end">${esc(fmt(t))}</text>`);
  }
  for (let i = 0; i <= 4; i++) {
    const t = start + ((end - start) * i) / 4;
    const label = new Date(t * 1000).toISOString().slice(11, 19);
    parts.push(`<line x1="${x(t)}" x2="${x(t)}" y1="${pad.t}" y2="${pad.t + h}" stroke="#2c3235"/>`);
    const anchor = i === 0 ? "start" : i === 4 ? "end" : "middle";
    parts.push(`<text x="${x(t)}" y="${height - 6}" text-anchor="${anchor}">${label}</text>`);
  }
  series.forEach((s, i) => {
    // A gap where Prometheus had no value (NaN: a ratio of zero rates, say).
    const runs = [[]];
    for (const [t, v] of s.points) {
      if (Number.isFinite(v)) runs[runs.length - 1].push(`${x(t).toFixed(1)},${y(Math.min(v, top)).toFixed(1)}`);
      else if (runs[runs.length - 1].length) runs.push([]);
    }
    for (const run of runs.filter((r) => r.length)) {
      parts.push(`<polyline fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="1.5" points="${run.join(" ")}"/>`);
    }
  });
  return `<svg width="${width}" height="${height}">${parts.join("")}</svg>`;
}

const COLUMN = 1800 / 24, ROW = 30;
const blocks = [];
const empty = [];
for (const panel of dashboard.panels) {
  const { x, y, w, h } = panel.gridPos;
  const box = `left:${x * COLUMN}px;top:${y * ROW}px;width:${w * COLUMN - 8}px;height:${h * ROW - 8}px`;
  if (panel.type === "row") {
    blocks.push(`<div class="row" style="${box}">${esc(panel.title)}</div>`);
    continue;
  }
  const series = [];
  for (const target of panel.targets) {
    for (const r of await queryRange(target.expr)) {
      series.push({ name: legend(target.legendFormat, r.metric), points: r.values.map(([t, v]) => [t, Number(v)]) });
    }
  }
  const live = series.filter((s) => s.points.some((p) => Number.isFinite(p[1])));
  if (!live.length) empty.push(panel.title);
  const chartH = h * ROW - 8 - 34 - 22;
  const body = live.length
    ? svgPanel(live, panel.fieldConfig?.defaults?.unit, w * COLUMN - 8 - 16, chartH) +
      `<div class="legend">${live.map((s, i) => `<span><i style="background:${COLORS[i % COLORS.length]}"></i>${esc(s.name)}</span>`).join("")}</div>`
    : `<div class="nodata" style="height:${chartH}px">No data</div>`;
  blocks.push(`<div class="panel" style="${box}"><h3>${esc(panel.title)}</h3>${body}</div>`);
}
const height = Math.max(...dashboard.panels.map((p) => (p.gridPos.y + p.gridPos.h) * ROW)) + 60;
const html = `<!doctype html><html><head><meta charset="utf-8"><style>
body{margin:0;background:#111217;color:#ccccdc;font:13px Inter,Helvetica,Arial,sans-serif}
header{padding:12px 16px;font-size:18px;color:#fff}header small{color:#8e8e9e;font-size:12px;margin-left:12px}
main{position:relative;margin:0 12px;height:${height}px}
.row{position:absolute;font-size:15px;font-weight:500;color:#fff;padding-top:6px}
.panel{position:absolute;background:#181b1f;border:1px solid #2c3235;border-radius:3px;padding:0 8px;box-sizing:border-box;overflow:hidden}
h3{margin:0;font-size:13px;font-weight:500;line-height:34px;color:#ccccdc;white-space:nowrap}
svg text{fill:#8e8e9e;font-size:10px}
.legend{display:flex;flex-wrap:wrap;gap:2px 12px;font-size:11px;height:22px;overflow:hidden}
.legend i{display:inline-block;width:12px;height:3px;margin-right:5px;vertical-align:middle}
.nodata{display:flex;align-items:center;justify-content:center;color:#8e8e9e}
</style></head><body><header>${esc(dashboard.title)}<small>rendered from a real scrape, ${new Date(start * 1000).toISOString().slice(0, 19)}Z, ${end - start} s, 1 s scrape</small></header><main>${blocks.join("")}</main></body></html>`;

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu"] });
const page = await browser.newPage({ viewport: { width: 1824, height: 900 } });
await page.setContent(html);
mkdirSync(dirname(opt.out), { recursive: true });
await page.screenshot({ path: opt.out, fullPage: true });
await browser.close();
console.log(`render-dashboard: ${opt.out}; panels without data: ${empty.length ? empty.join(", ") : "none"}`);
