// Money as the API speaks it: integer micro-dollars (USD × 1,000,000). Dollars a person types
// become micro-dollars from the decimal string itself, never through a float (4.35 × 1e6 is
// 4349999.999… in floating point); amounts read as the coordinator writes them ($50.00, and
// as many decimals as it takes below a cent, so a small cost never reads as zero).

import { h } from "./lib.js";

const MICROS_PER_USD = 1_000_000;

// Micro-dollars from "12", "12.5", "$3.20" or "0.000001": not negative, at most six decimals,
// no exponent (as the coordinator reads dollars). Null when the text is no such amount or is
// too large to stay exact in a JavaScript number.
export function parseUsd(text) {
  const m = /^\$?(\d*)(?:\.(\d{0,6}))?$/.exec(text.trim());
  if (!m || (m[1] === "" && !m[2])) return null;
  const micros = BigInt(m[1] || "0") * BigInt(MICROS_PER_USD) + BigInt((m[2] || "").padEnd(6, "0"));
  return micros <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(micros) : null;
}

// "50.00", "0.0042": the dollars of `micros` without sign or grouping, as a form shows them.
export function usdDecimal(micros) {
  const whole = Math.floor(micros / MICROS_PER_USD);
  return `${whole}.${decimals(micros)}`;
}

// "$1,250.00", "$0.0042".
export function fmtUsd(micros) {
  const whole = Math.floor(micros / MICROS_PER_USD);
  return `$${whole.toLocaleString("en-US")}.${decimals(micros)}`;
}

// The fraction of a dollar in `micros`: cents, or more digits when they are not zero.
function decimals(micros) {
  return String(micros % MICROS_PER_USD).padStart(6, "0").replace(/0{1,4}$/, "");
}

// Whole percent of `limit` that `spent` is, rounded down: 99.9 % does not read as 100 %.
export function percentOf(spent, limit) {
  return limit > 0 ? Math.floor((spent * 100) / limit) : 0;
}

// A bar of `spent` against `limit`, with a mark at `alertPercent` when given. Its colour says
// the level: below the alert, past it, at or past the limit.
export function spendBar({ spent, limit, alertPercent, label }) {
  const percent = percentOf(spent, limit);
  const level = percent >= 100 ? "over" : alertPercent !== undefined && percent >= alertPercent ? "alert" : "ok";
  const fill = h("div", { class: `fill ${level}` });
  fill.style.width = `${Math.min(100, percent)}%`;
  const bar = h("div", {
    class: "spend-bar",
    role: "meter",
    "aria-label": label,
    "aria-valuemin": 0,
    "aria-valuemax": limit,
    "aria-valuenow": Math.min(spent, limit),
    "aria-valuetext": `${fmtUsd(spent)} of ${fmtUsd(limit)} (${percent} %)`,
    "data-level": level,
  }, fill);
  if (alertPercent !== undefined) {
    const mark = h("div", { class: "mark", title: `alert at ${alertPercent} %` });
    mark.style.left = `${alertPercent}%`;
    bar.append(mark);
  }
  return bar;
}
