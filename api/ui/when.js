// Times as an operator reads them: the date and clock time ("2026-12-02 17:03:53", local),
// how long ago ("3m ago"), and durations ("2m 5s"). A timestamp element says both and carries
// the exact UTC time in its tooltip.

import { h } from "./lib.js";

const pad = (n) => String(n).padStart(2, "0");

// "2026-12-02 17:03:53", in the browser's time zone.
export function fmtDate(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// "850 ms", "12s", "3m 4s", "2h 5m", "3d 4h": the two largest units, so it stays short.
export function fmtDuration(ms) {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = Math.floor(ms / 1000);
  const units = [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]];
  const parts = [];
  let rest = s;
  for (const [name, size] of units) {
    const n = Math.floor(rest / size);
    rest -= n * size;
    if (n || parts.length) parts.push(`${n}${name}`);
    if (parts.length === 2) break;
  }
  return parts.filter((p) => !p.startsWith("0")).join(" ") || "0s";
}

// "3m ago", or "in 12s" for a time still to come.
export function fmtAgo(ms, now = Date.now()) {
  const d = now - ms;
  if (Math.abs(d) < 1000) return "just now";
  return d > 0 ? `${fmtDuration(d)} ago` : `in ${fmtDuration(-d)}`;
}

// A <time> with the date, the clock time and how long ago; the exact UTC time as its tooltip.
export function when(ms) {
  if (!ms) return "–";
  const iso = new Date(ms).toISOString();
  return h("time", { datetime: iso, title: iso.replace("T", " ").replace("Z", " UTC") }, `${fmtDate(ms)} (${fmtAgo(ms)})`);
}
