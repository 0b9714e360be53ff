// What the browser tests share: Debian's headless Chromium launched through playwright-core,
// named steps that stop the run at the first failure, REST calls with a token, signing in,
// an axe-core audit that fails on serious or critical violations, keyboard and layout checks.
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

export const TIMEOUT_MS = 30_000;

// Headless Chromium and `step(name, fn)`: each step's outcome is listed; the first failure
// prints the list, closes the browser and exits non-zero. `finish()` prints the summary that
// tests/e2e_ui.rs looks for.
export async function launch() {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const results = [];
  const step = async (name, fn) => {
    try {
      await fn();
      results.push(`ok   ${name}`);
    } catch (e) {
      results.push(`FAIL ${name}: ${e.message}`);
      console.log(results.join("\n"));
      await browser.close();
      process.exit(1);
    }
  };
  const finish = () => {
    console.log(results.join("\n"));
    console.log(`${results.length} passed, 0 failed`);
  };
  return { browser, step, finish };
}

// `apiCall(method, path, body, token)` against the coordinator at `url`, with `token` by default.
export function apiClient(url, defaultToken) {
  return async (method, path, body, token = defaultToken) => {
    const res = await fetch(url + path, {
      method,
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.status, body: await res.json().catch(() => null) };
  };
}

export async function signIn(page, url, token) {
  await page.goto(url + "/");
  await page.getByLabel("Token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Overview" }).waitFor();
}

// Runs axe-core on the page as it is now; fails on serious or critical violations, listing
// each with the elements it found.
export async function audit(page, name) {
  await page.evaluate(axeSource);
  const { violations } = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  const report = bad.map((v) => `${v.impact} ${v.id}: ${v.help}\n    ${v.nodes.slice(0, 5).map((n) => n.target.join(" ")).join("\n    ")}`).join("\n  ");
  assert.equal(bad.length, 0, `accessibility of ${name}:\n  ${report}`);
}

// No sideways scrolling: the page is no wider than the window.
export async function assertNoSidewaysScroll(page, name) {
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `no sideways scrolling on ${name} (${overflow}px)`);
}

// Presses Tab until the focused element matches `selector`; fails after `max` presses.
export async function tabTo(page, selector, max = 40) {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press("Tab");
    if (await page.evaluate((sel) => document.activeElement && document.activeElement.matches(sel), selector)) return;
  }
  assert.fail(`Tab never reached ${selector}`);
}
