// Renders a terminal screen captured with its colour codes (`tmux capture-pane -e -p`) to a
// PNG as the terminal showed it, in headless Chromium: `node ansi-screenshot.mjs IN OUT`.
// scripts/screenshot-top runs it for README's picture of `gigafactory top`. Only the SGR codes
// tmux writes are read (colours of 16, 256 and 24-bit, bold, dim, underline, reverse); any
// other escape sequence is dropped.
import { readFileSync } from "node:fs";
import { launch } from "./harness.mjs";

const [input, output] = process.argv.slice(2);
if (!input || !output) {
  console.error("usage: node ansi-screenshot.mjs CAPTURE.txt OUT.png");
  process.exit(2);
}

const FG = "#d4d4d4";
const BG = "#1e1e1e";
const BASE = ["#000000", "#cd3131", "#0dbc79", "#e5e510", "#2472c8", "#bc3fbc", "#11a8cd", "#e5e5e5"];
const BRIGHT = ["#666666", "#f14c4c", "#23d18b", "#f5f543", "#3b8eea", "#d670d6", "#29b8db", "#ffffff"];

const rgb = (r, g, b) => `rgb(${r},${g},${b})`;

// The xterm palette of 256: 16 named colours, a 6x6x6 cube, 24 greys.
function xterm256(n) {
  if (n < 8) return BASE[n];
  if (n < 16) return BRIGHT[n - 8];
  if (n < 232) {
    const v = [0, 95, 135, 175, 215, 255];
    n -= 16;
    return rgb(v[Math.floor(n / 36)], v[Math.floor(n / 6) % 6], v[n % 6]);
  }
  const g = 8 + (n - 232) * 10;
  return rgb(g, g, g);
}

const plain = () => ({ fg: null, bg: null, bold: false, dim: false, underline: false, reverse: false });

// Applies one SGR sequence's parameters to the style `st`.
function apply(st, params) {
  const p = params === "" ? [0] : params.split(";").map(Number);
  for (let i = 0; i < p.length; i++) {
    const c = p[i];
    if (c === 0) Object.assign(st, plain());
    else if (c === 1) st.bold = true;
    else if (c === 2) st.dim = true;
    else if (c === 4) st.underline = true;
    else if (c === 7) st.reverse = true;
    else if (c === 22) st.bold = st.dim = false;
    else if (c === 24) st.underline = false;
    else if (c === 27) st.reverse = false;
    else if (c >= 30 && c <= 37) st.fg = BASE[c - 30];
    else if (c >= 90 && c <= 97) st.fg = BRIGHT[c - 90];
    else if (c === 39) st.fg = null;
    else if (c >= 40 && c <= 47) st.bg = BASE[c - 40];
    else if (c >= 100 && c <= 107) st.bg = BRIGHT[c - 100];
    else if (c === 49) st.bg = null;
    else if (c === 38 || c === 48) {
      const key = c === 38 ? "fg" : "bg";
      if (p[i + 1] === 5) {
        st[key] = xterm256(p[i + 2]);
        i += 2;
      } else if (p[i + 1] === 2) {
        st[key] = rgb(p[i + 2], p[i + 3], p[i + 4]);
        i += 4;
      }
    }
  }
}

const escape = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

function css(st) {
  let fg = st.fg ?? FG;
  let bg = st.bg ?? "transparent";
  if (st.reverse) [fg, bg] = [st.bg ?? BG, st.fg ?? FG];
  const parts = [`color:${fg}`, `background:${bg}`];
  if (st.bold) parts.push("font-weight:bold");
  if (st.dim) parts.push("opacity:0.6");
  if (st.underline) parts.push("text-decoration:underline");
  return parts.join(";");
}

function toHtml(text) {
  const st = plain();
  const out = [];
  // SGR sequences are read; every other escape sequence is dropped.
  const re = /\x1b\[([0-9;]*)([A-Za-z])|\x1b[^[]/g;
  for (const line of text.replace(/\n$/, "").split("\n")) {
    let last = 0;
    let html = "";
    const put = (s) => {
      if (s) html += `<span style="${css(st)}">${escape(s)}</span>`;
    };
    for (const m of line.matchAll(re)) {
      put(line.slice(last, m.index));
      if (m[2] === "m") apply(st, m[1]);
      last = m.index + m[0].length;
    }
    put(line.slice(last));
    out.push(html);
  }
  return out.join("\n");
}

const html = `<!doctype html><html><head><meta charset="utf-8"><style>
  body { margin: 0; background: ${BG}; }
  pre { display: inline-block; margin: 0; padding: 10px 12px; background: ${BG}; color: ${FG};
        font: 13px/1.17 "DejaVu Sans Mono", "Liberation Mono", monospace; }
</style></head><body><pre>${toHtml(readFileSync(input, "utf8"))}</pre></body></html>`;

const { browser } = await launch();
const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
await page.setContent(html);
await page.locator("pre").screenshot({ path: output });
await browser.close();
console.log(`wrote ${output}`);
