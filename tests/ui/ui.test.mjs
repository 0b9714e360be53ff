// The control plane in a real browser (Debian's headless Chromium driven by playwright-core),
// against a coordinator with a real factory that tests/e2e_ui.rs started.
// Usage: node ui.test.mjs URL ADMIN_TOKEN VIEWER_TOKEN SCREENSHOT_DIR
import { chromium } from "playwright-core";
import assert from "node:assert/strict";

const [url, admin, viewer, shots] = process.argv.slice(2);
const TIMEOUT_MS = 30_000;

async function apiCall(method, path, body, token = admin) {
  const res = await fetch(url + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}

async function signIn(page, token) {
  await page.goto(url + "/");
  await page.getByLabel("Token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Overview" }).waitFor();
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const results = [];
async function step(name, fn) {
  try {
    await fn();
    results.push(`ok   ${name}`);
  } catch (e) {
    results.push(`FAIL ${name}: ${e.message}`);
    console.log(results.join("\n"));
    await browser.close();
    process.exit(1);
  }
}

try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(TIMEOUT_MS);
  page.on("dialog", (d) => d.accept());

  await step("the overview shows the fleet", async () => {
    await signIn(page, admin);
    await page.locator('[data-testid="factories-online"] .value', { hasText: "1" }).waitFor();
    await page.locator('[data-testid="slots"] .value').waitFor();
  });

  const submitted = await apiCall("POST", "/v1/jobs", {
    key: "ui-talker",
    title: "UI talker",
    product: "ui",
    capabilities: ["linux"],
    payload: { command: "gigafactory job stage talking; for i in $(seq 1 60); do echo tick $i; sleep 0.25; done" },
  });
  assert.equal(submitted.status, 201, JSON.stringify(submitted.body));
  const id = submitted.body.id;

  await step("a submitted job appears in the table and runs", async () => {
    await page.goto(url + "/#/jobs");
    const row = page.locator(`tr[data-job="${id}"]`);
    await row.waitFor();
    await row.locator(".badge", { hasText: "running" }).waitFor();
    await page.screenshot({ path: `${shots}/jobs.png`, fullPage: true });
  });

  await step("its live logs stream in the detail page", async () => {
    await page.goto(url + `/#/jobs/${id}`);
    await page.locator('[data-testid="logs"]', { hasText: "tick 3" }).waitFor();
    // However far the job had got when the page opened, more lines arrive without a reload.
    const countTicks = () => (document.querySelector('[data-testid="logs"]').textContent.match(/tick \d+/g) || []).length;
    const seen = await page.evaluate(countTicks);
    await page.waitForFunction((n) => (document.querySelector('[data-testid="logs"]').textContent.match(/tick \d+/g) || []).length > n, seen);
    const text = await page.locator('[data-testid="logs"]').textContent();
    const ticks = text.match(/tick \d+/g);
    assert.deepEqual(ticks, ticks.map((_, i) => `tick ${i + 1}`), "lines arrive once and in order");
    await page.locator(".dag svg").waitFor();
    await page.locator('[data-testid="lease"]', { hasText: "expires in" }).waitFor();
    await page.screenshot({ path: `${shots}/job.png`, fullPage: true });
  });

  await step("cancel on a running job ends it as cancelled", async () => {
    await page.locator('button[data-action="cancel"]').click();
    await page.locator("#job-title .badge", { hasText: "cancelled" }).waitFor();
  });

  await step("a refused action shows the API's error", async () => {
    await page.locator('button[data-action="ship"]').click();
    await page.locator("#flash", { hasText: "illegal_transition" }).waitFor();
    await page.screenshot({ path: `${shots}/refused-action.png` });
  });

  await step("the factories and weights pages show state", async () => {
    await page.goto(url + "/#/factories");
    await page.locator("td", { hasText: "ui-factory" }).waitFor();
    await page.getByRole("button", { name: "Create enrollment token" }).click();
    await page.locator('[data-testid="secret"]', { hasText: "gf_" }).waitFor();
    await page.screenshot({ path: `${shots}/factories.png`, fullPage: true });
    await page.goto(url + "/#/weights?product=ui");
    await page.getByRole("rowheader", { name: "priority", exact: true }).waitFor();
    await page.screenshot({ path: `${shots}/weights.png`, fullPage: true });
  });

  await step("the overview charts throughput and shows events live", async () => {
    await page.goto(url + "/#/overview");
    await page.locator(".events li", { hasText: "UI talker" }).first().waitFor();
    // A few refreshes, so the charts have points to draw.
    await page.waitForTimeout(5000);
    await page.screenshot({ path: `${shots}/overview.png`, fullPage: true });
  });

  await step("a viewer sees but cannot act", async () => {
    const vctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const vpage = await vctx.newPage();
    vpage.setDefaultTimeout(TIMEOUT_MS);
    await signIn(vpage, viewer);
    await vpage.goto(url + `/#/jobs/${id}`);
    await vpage.getByText("Read only (viewer).").waitFor();
    assert.equal(await vpage.locator("button[data-action]").count(), 0);
    const forced = await apiCall("POST", `/v1/jobs/${id}/actions/retry`, undefined, viewer);
    assert.equal(forced.status, 403);
    await vctx.close();
  });

  await step("the overview works on a narrow screen", async () => {
    const nctx = await browser.newContext({ viewport: { width: 390, height: 844 } });
    const npage = await nctx.newPage();
    npage.setDefaultTimeout(TIMEOUT_MS);
    await signIn(npage, admin);
    const overflow = await npage.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `no sideways scrolling (${overflow}px)`);
    await npage.screenshot({ path: `${shots}/overview-narrow.png`, fullPage: true });
    await nctx.close();
  });
} finally {
  await browser.close();
}
console.log(results.join("\n"));
console.log(`${results.length} passed, 0 failed`);
