// The control plane in a real browser (Debian's headless Chromium driven by playwright-core),
// against a coordinator with a real factory that tests/e2e_ui.rs started. Every page is also
// audited with axe-core: a serious or critical accessibility violation fails the test.
// Usage: node ui.test.mjs URL ADMIN_TOKEN VIEWER_TOKEN SCREENSHOT_DIR
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

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

// Runs axe-core on the page as it is now; fails on serious or critical violations, listing
// each with the elements it found.
async function audit(page, name) {
  await page.evaluate(axeSource);
  const { violations } = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  const report = bad.map((v) => `${v.impact} ${v.id}: ${v.help}\n    ${v.nodes.slice(0, 5).map((n) => n.target.join(" ")).join("\n    ")}`).join("\n  ");
  assert.equal(bad.length, 0, `accessibility of ${name}:\n  ${report}`);
}

// Presses Tab until the focused element matches `selector`; fails after `max` presses.
async function tabTo(page, selector, max = 40) {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press("Tab");
    if (await page.evaluate((sel) => document.activeElement && document.activeElement.matches(sel), selector)) return;
  }
  assert.fail(`Tab never reached ${selector}`);
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
  // Every confirmation asked, accepted.
  const dialogs = [];
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    d.accept();
  });

  await step("the overview shows the fleet", async () => {
    await signIn(page, admin);
    await page.locator('[data-testid="factories-online"] .value', { hasText: "1" }).waitFor();
    await page.locator('[data-testid="slots"] .value').waitFor();
  });

  const fid = (await apiCall("GET", "/v1/factories")).body.find((f) => f.name === "ui-factory").id;

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
    await audit(page, "the jobs page");
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
    await audit(page, "the job detail page");
  });

  await step("the job's attempts show who ran it and how it is going", async () => {
    const first = page.locator('[data-testid="attempts"] tr[data-attempt="1"]');
    await first.locator("td", { hasText: "ui-factory" }).waitFor();
    const job = await apiCall("GET", `/v1/jobs/${id}`);
    const cells = await first.locator("td").allTextContents();
    assert.equal(cells[0], "1");
    assert.equal(cells[2], String(job.body.epoch), "the attempt's epoch is its lease's");
    assert.equal(cells[4], "–", "a running attempt has not ended");
    assert.equal(await page.locator('[data-testid="attempts"] tr').count(), 1);
  });

  await step("cancel on a running job ends it as cancelled", async () => {
    await page.locator('button[data-action="cancel"]').click();
    await page.locator("#job-title .badge", { hasText: "cancelled" }).waitFor();
    await page.locator('[data-testid="attempts"] tr[data-attempt="1"] .outcome', { hasText: "cancel" }).waitFor();
  });

  await step("a refused action shows the API's error", async () => {
    await page.locator('button[data-action="ship"]').click();
    await page.locator("#flash", { hasText: "illegal_transition" }).waitFor();
    await page.screenshot({ path: `${shots}/refused-action.png` });
  });

  await step("a factory's page shows its fields and the jobs it runs, live", async () => {
    const worker = await apiCall("POST", "/v1/jobs", { key: "ui-worker", title: "UI worker", product: "ui", capabilities: ["linux"], payload: { command: "gigafactory job stage building; sleep 60" } });
    assert.equal(worker.status, 201, JSON.stringify(worker.body));
    const wid = worker.body.id;
    // The factory's name in the list leads to its page.
    await page.goto(url + "/#/factories");
    await page.locator(`tr[data-factory="${fid}"] a`, { hasText: "ui-factory" }).click();
    await page.locator("#factory-title", { hasText: "ui-factory" }).waitFor();
    assert.equal(new URL(page.url()).hash, `#/factories/${fid}`);
    const row = page.locator(`[data-testid="current-jobs"] tr[data-job="${wid}"]`);
    await row.locator(".badge", { hasText: "running" }).waitFor();
    await row.locator("td", { hasText: "building" }).waitFor();
    await page.locator('[data-testid="slots"]', { hasText: "1 / 1" }).waitFor();
    const f = (await apiCall("GET", `/v1/factories/${fid}`)).body;
    assert.equal(await page.locator('[data-testid="platform"]').textContent(), `${f.os} / ${f.arch}`);
    assert.equal(await page.locator('[data-testid="capabilities"]').textContent(), f.capabilities.join(", "));
    assert.match(await page.locator('[data-testid="heartbeat"]').textContent(), /\d+ s ago/);
    await page.locator("#factory-title .badge", { hasText: "online" }).waitFor();
    // The refused action's message of an earlier step must not show on this page's picture.
    await page.locator("#flash").waitFor({ state: "hidden" });
    await page.screenshot({ path: `${shots}/factory.png`, fullPage: true });
    await audit(page, "the factory page");
    // The keyboard reaches the job (the table redraws meanwhile) and Enter opens it; the
    // lease's factory on the job page leads back.
    await page.reload();
    await row.waitFor();
    await tabTo(page, `[data-testid="current-jobs"] a[href="#/jobs/${wid}"]`);
    await page.keyboard.press("Enter");
    await page.locator("#job-title", { hasText: "UI worker" }).waitFor();
    await page.locator('[data-testid="lease"] a', { hasText: "ui-factory" }).click();
    await page.locator("#factory-title", { hasText: "ui-factory" }).waitFor();
    // A job that ends leaves the list without a reload.
    assert.equal((await apiCall("POST", `/v1/jobs/${wid}/actions/cancel`)).status, 200);
    await page.locator('[data-testid="current-jobs"] td', { hasText: "No current jobs." }).waitFor();
  });

  await step("a factory's actions ask first, and a refused one shows the API's error", async () => {
    const enrollment = await apiCall("POST", "/v1/enrollment-tokens", {});
    const spare = await apiCall("POST", "/v1/factories/enroll", { name: "ui-spare", os: "linux", arch: "x86_64", capabilities: ["ui-spare"], slots: 2 }, enrollment.body.token);
    assert.equal(spare.status, 200, JSON.stringify(spare.body));
    await page.goto(url + `/#/factories/${spare.body.factory_id}`);
    await page.locator("#factory-title", { hasText: "ui-spare" }).waitFor();
    await page.locator('button[data-action="rotate"]').click();
    await page.locator('[data-testid="secret"]', { hasText: "gf_" }).waitFor();
    await page.locator('button[data-action="drain"]').click();
    await page.locator("#factory-title .badge", { hasText: "draining" }).waitFor();
    await page.locator('button[data-action="revoke"]').click();
    await page.locator("#factory-title .badge", { hasText: "revoked" }).waitFor();
    assert.ok(dialogs.includes("revoke factory ui-spare?"), `asked: ${dialogs.join(" | ")}`);
    await page.locator('button[data-action="rotate"]').click();
    await page.locator("#flash", { hasText: "illegal_transition" }).waitFor();
    // The message goes by itself (and so stays off the next pictures).
    await page.locator("#flash").waitFor({ state: "hidden" });
  });

  await step("the factories and weights pages show state", async () => {
    await page.goto(url + "/#/factories");
    await page.locator("td", { hasText: "ui-factory" }).waitFor();
    await page.getByRole("button", { name: "Create enrollment token" }).click();
    await page.locator('[data-testid="secret"]', { hasText: "gf_" }).waitFor();
    await page.screenshot({ path: `${shots}/factories.png`, fullPage: true });
    await audit(page, "the factories page");
    await page.goto(url + "/#/weights?product=ui");
    await page.getByRole("rowheader", { name: "priority", exact: true }).waitFor();
    await page.screenshot({ path: `${shots}/weights.png`, fullPage: true });
    await audit(page, "the weights page");
  });

  await step("the overview charts open with the node's history and show events live", async () => {
    // The node samples every few seconds; once it holds two samples, a page opened now must
    // draw them at once instead of starting empty.
    const deadline = Date.now() + TIMEOUT_MS;
    let kept = 0;
    while ((kept = (await apiCall("GET", "/v1/stats/history")).body.samples.length) < 2) {
      assert.ok(Date.now() < deadline, "the node keeps samples");
      await new Promise((r) => setTimeout(r, 500));
    }
    await page.goto(url + "/#/overview");
    await page.waitForFunction((n) => Number(document.querySelector('[data-testid="throughput-chart"]').dataset.points) >= n, kept, { timeout: 2000 });
    await page.waitForFunction((n) => Number(document.querySelector('[data-testid="latency-chart"]').dataset.points) >= n, kept, { timeout: 2000 });
    await page.locator(".events li", { hasText: "UI talker" }).first().waitFor();
    // More samples arrive while the page is open.
    await page.waitForFunction((n) => Number(document.querySelector('[data-testid="throughput-chart"]').dataset.points) > n, kept);
    await page.screenshot({ path: `${shots}/overview.png`, fullPage: true });
    await audit(page, "the overview");
  });

  await step("the keyboard reaches the navigation and an action, and Enter acts", async () => {
    // A job no factory can run, so it waits queued until the keyboard cancels it.
    const parked = await apiCall("POST", "/v1/jobs", { key: "ui-parked", title: "UI parked", product: "ui", capabilities: ["nowhere"], payload: { command: "true" } });
    assert.equal(parked.status, 201, JSON.stringify(parked.body));
    const pid = parked.body.id;
    // A fresh load, so Tab starts at the top of the document.
    await page.goto(url + `/#/jobs/${pid}`);
    await page.reload();
    await page.locator("#job-title .badge", { hasText: "queued" }).waitFor();
    await tabTo(page, 'nav a[href="#/jobs"]');
    await tabTo(page, 'button[data-action="cancel"]');
    await page.keyboard.press("Enter");
    await page.locator("#job-title .badge", { hasText: "cancelled" }).waitFor();
    assert.equal((await apiCall("GET", `/v1/jobs/${pid}`)).body.state, "cancelled");
    // Enter on a focused navigation link follows it.
    await page.reload();
    await page.locator("#job-title .badge", { hasText: "cancelled" }).waitFor();
    await tabTo(page, 'nav a[href="#/factories"]');
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "Factories" }).waitFor();
  });

  await step("a viewer sees but cannot act", async () => {
    const vctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const vpage = await vctx.newPage();
    vpage.setDefaultTimeout(TIMEOUT_MS);
    await signIn(vpage, viewer);
    await vpage.goto(url + `/#/jobs/${id}`);
    await vpage.getByText("Read only (viewer).").waitFor();
    assert.equal(await vpage.locator("button[data-action]").count(), 0);
    await audit(vpage, "the job detail page of a viewer");
    await vpage.goto(url + `/#/factories/${fid}`);
    await vpage.locator("#factory-title", { hasText: "ui-factory" }).waitFor();
    await vpage.getByText("Read only (viewer).").waitFor();
    assert.equal(await vpage.locator("button[data-action]").count(), 0);
    await audit(vpage, "the factory page of a viewer");
    await vpage.goto(url + "/#/factories");
    await vpage.locator(`tr[data-factory="${fid}"]`).waitFor();
    assert.equal(await vpage.locator("tr[data-factory] button").count(), 0);
    const forced = await apiCall("POST", `/v1/jobs/${id}/actions/retry`, undefined, viewer);
    assert.equal(forced.status, 403);
    await vctx.close();
  });

  await step("the overview works on a narrow screen", async () => {
    const nctx = await browser.newContext({ viewport: { width: 390, height: 844 } });
    const npage = await nctx.newPage();
    npage.setDefaultTimeout(TIMEOUT_MS);
    await signIn(npage, admin);
    await npage.waitForFunction(() => Number(document.querySelector('[data-testid="throughput-chart"]').dataset.points) >= 2);
    const overflow = await npage.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `no sideways scrolling (${overflow}px)`);
    await npage.screenshot({ path: `${shots}/overview-narrow.png`, fullPage: true });
    await audit(npage, "the overview on a narrow screen");
    await npage.goto(url + `/#/jobs/${id}`);
    await npage.locator('[data-testid="attempts"] tr[data-attempt="1"]').waitFor();
    await audit(npage, "the job detail page on a narrow screen");
    await npage.goto(url + `/#/factories/${fid}`);
    await npage.locator('[data-testid="slots"]').waitFor();
    const factoryOverflow = await npage.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(factoryOverflow <= 1, `no sideways scrolling on the factory page (${factoryOverflow}px)`);
    await audit(npage, "the factory page on a narrow screen");
    await nctx.close();
  });

  await step("the sign-in page is accessible", async () => {
    const lctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const lpage = await lctx.newPage();
    lpage.setDefaultTimeout(TIMEOUT_MS);
    await lpage.goto(url + "/");
    await lpage.getByLabel("Token").waitFor();
    await audit(lpage, "the sign-in page");
    await lpage.getByLabel("Token").fill("gf_not-a-token");
    await lpage.getByRole("button", { name: "Sign in" }).click();
    await lpage.locator("#flash", { hasText: "unauthorized" }).waitFor();
    await audit(lpage, "the sign-in page with an error");
    await lctx.close();
  });
} finally {
  await browser.close();
}
console.log(results.join("\n"));
console.log(`${results.length} passed, 0 failed`);
