// The control plane's shell in a real browser, against a coordinator (and one factory) that
// tests/e2e_ui.rs started and kills or restarts when this script prints `kill` or `start` (it
// answers `done` on stdin): sign-in by session cookie (HttpOnly, no token in page storage,
// shared by tabs, deep links kept), the outage banner and stale marks with automatic resume,
// the jobs filters in the URL and bulk actions, undrain, and the phone layout.
// Usage: node shell.test.mjs URL ADMIN_TOKEN VIEWER_TOKEN SCREENSHOT_DIR
import assert from "node:assert/strict";
import { createInterface } from "node:readline";
import { TIMEOUT_MS, apiClient, assertNoSidewaysScroll, audit, launch } from "./harness.mjs";

const [url, admin, , shots] = process.argv.slice(2);
const apiCall = apiClient(url, admin);
// How soon the banner must show after the coordinator went away, and clear after it is back.
const BANNER_MS = 5_000;
const RESUME_MS = 15_000;

// Asks tests/e2e_ui.rs to `kill` or `start` the coordinator; resolves once it has.
const answers = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function ask(what) {
  console.log(what);
  const { value } = await answers.next();
  assert.equal(value, "done", `the harness answered ${what}`);
}

async function submit(key, extra = {}) {
  const r = await apiCall("POST", "/v1/jobs", { key, title: key, product: "shell", capabilities: ["nowhere"], payload: { command: "true" }, ...extra });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.id;
}

const { browser, step, finish } = await launch();

try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(TIMEOUT_MS);
  page.on("dialog", (d) => d.accept());
  const held = await submit("shell-held");

  await step("signing in from a deep link lands on it", async () => {
    await page.goto(`${url}/#/jobs/${held}`);
    await page.getByLabel("Token").fill(admin);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("#job-title", { hasText: "shell-held" }).waitFor();
    assert.equal(new URL(page.url()).hash, `#/jobs/${held}`);
  });

  await step("the session is an HttpOnly cookie, no token is in page storage, and tabs share it", async () => {
    const cookies = await ctx.cookies(url);
    const session = cookies.find((c) => c.name === "gf_session");
    assert.ok(session, JSON.stringify(cookies));
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, "Strict");
    assert.notEqual(session.value, admin);
    const stored = await page.evaluate(() => JSON.stringify([{ ...localStorage }, { ...sessionStorage }, document.cookie]));
    assert.ok(!stored.includes("gf_"), `page storage and script-visible cookies hold no secret: ${stored}`);
    const tab = await ctx.newPage();
    await tab.goto(`${url}/#/factories`);
    await tab.getByRole("heading", { name: "Factories" }).waitFor();
    await tab.close();
  });

  await step("the jobs filters live in the URL and survive a reload", async () => {
    await submit("shell-other", { product: "elsewhere" });
    await page.goto(`${url}/#/jobs`);
    await page.getByLabel("Product").fill("shell");
    await page.getByLabel("State").selectOption("queued");
    await page.waitForFunction(() => location.hash.includes("product=shell") && location.hash.includes("state=queued"));
    await page.reload();
    await page.locator(`tr[data-job="${held}"]`).waitFor();
    assert.equal(await page.getByLabel("Product").inputValue(), "shell");
    assert.equal(await page.getByLabel("State").inputValue(), "queued");
    assert.equal(await page.locator("tr[data-job]").count(), 1, "the other product's job is filtered out");
    await page.locator('[data-testid="jobs-status"]', { hasText: "1 queued" }).waitFor();
    await audit(page, "the jobs page with filters");
  });

  await step("the page shown lives in the URL too", async () => {
    // One more than a page holds.
    for (let i = 0; i < 51; i++) await submit(`paged-${String(i).padStart(2, "0")}`, { product: "paged" });
    await page.goto(`${url}/#/jobs?product=paged`);
    await page.locator("tr[data-job]").nth(49).waitFor();
    await page.getByRole("button", { name: "Next page" }).click();
    await page.waitForFunction(() => location.hash.includes("cursor="));
    await page.locator('[data-testid="jobs-status"]', { hasText: "1 job(s) on this page" }).waitFor();
    const onPage2 = await page.locator("tr[data-job]").getAttribute("data-job");
    await page.reload();
    await page.locator('[data-testid="jobs-status"]', { hasText: "1 job(s) on this page" }).waitFor();
    assert.equal(await page.locator("tr[data-job]").getAttribute("data-job"), onPage2);
    await page.goBack();
    await page.locator('[data-testid="jobs-status"]', { hasText: "50 job(s) on this page" }).waitFor();
  });

  await step("a factory filter takes a name", async () => {
    await page.goto(`${url}/#/jobs?factory=shell-factory`);
    await page.locator('[data-testid="jobs-status"]', { hasText: "0 job(s)" }).waitFor();
    await page.goto(`${url}/#/jobs?factory=no-such-factory`);
    await page.locator('[data-testid="jobs-status"]', { hasText: "No factory named no-such-factory" }).waitFor();
  });

  await step("bulk actions apply to the selection and say what was refused and why", async () => {
    const second = await submit("shell-second");
    await page.goto(`${url}/#/jobs?product=shell`);
    await page.locator(`tr[data-job="${second}"]`).waitFor();
    await page.getByLabel("Select every job on this page").check();
    await page.locator('[data-testid="selected-count"]', { hasText: "2 selected" }).waitFor();
    await page.locator('button[data-bulk="cancel"]').click();
    await page.locator('[data-testid="bulk-summary"]', { hasText: "cancel: 2 done, 0 refused." }).waitFor();
    await page.getByLabel("Select every job on this page").check();
    await page.locator('button[data-bulk="cancel"]').click();
    const summary = page.locator('[data-testid="bulk-summary"]', { hasText: "cancel: 0 done, 2 refused." });
    await summary.waitFor();
    assert.match(await summary.textContent(), /illegal_transition/);
    await audit(page, "the jobs page after a bulk action");
  });

  const fid = (await apiCall("GET", "/v1/factories")).body.find((f) => f.name === "shell-factory").id;

  await step("a drained factory is undrained from its page", async () => {
    await page.goto(`${url}/#/factories/${fid}`);
    await page.locator('button[data-action="drain"]').click();
    await page.locator('button[data-action="undrain"]').click();
    await page.locator("#factory-title .badge", { hasText: "online" }).waitFor();
    await page.locator('button[data-action="drain"]').waitFor();
  });

  await step("the overview shows an outage within seconds, marks live data stale and resumes", async () => {
    await page.goto(`${url}/#/overview`);
    await page.locator('[data-testid="factories-online"] .value', { hasText: "1" }).waitFor();
    await ask("kill");
    const banner = page.locator("#connection", { hasText: "Coordinator unreachable since" });
    await banner.waitFor({ timeout: BANNER_MS });
    assert.ok(await page.evaluate(() => document.body.classList.contains("stale")));
    const mark = await page.evaluate(() => getComputedStyle(document.querySelector('[data-testid="queued"] .value'), "::after").content);
    assert.match(mark, /stale/);
    // The last action's message would stand in the picture until it times out.
    await page.evaluate(() => (document.getElementById("flash").hidden = true));
    await page.screenshot({ path: `${shots}/outage.png` });
    await audit(page, "the overview during an outage");
    await ask("start");
    await banner.waitFor({ state: "hidden", timeout: RESUME_MS });
    assert.ok(!(await page.evaluate(() => document.body.classList.contains("stale"))));
    // The events stream reconnected: an event committed now shows.
    const after = await submit("shell-after-restart");
    await page.locator(`.events a[href="#/jobs/${after}"]`).waitFor({ timeout: RESUME_MS });
  });

  await step("events name factories by name", async () => {
    const ran = await submit("shell-runs", { capabilities: ["linux"] });
    const claimed = page.locator(".events li", { has: page.locator(`a[href="#/jobs/${ran}"]`), hasText: "factory shell-factory" });
    await claimed.first().waitFor();
    assert.doesNotMatch(await page.locator(".events").textContent(), /factory:[0-9a-f]{8}-/);
  });

  await step("a page opened while the coordinator is down fills in once it is back", async () => {
    await ask("kill");
    await page.evaluate(() => (location.hash = "#/factories"));
    await page.locator("#connection", { hasText: "Coordinator unreachable since" }).waitFor({ timeout: BANNER_MS });
    assert.equal(await page.locator("tr[data-factory]").count(), 0);
    await ask("start");
    await page.locator("tr[data-factory]").first().waitFor({ timeout: RESUME_MS });
    await page.locator("#connection").waitFor({ state: "hidden" });
  });

  await step("signing out revokes the session in every tab", async () => {
    const tab = await ctx.newPage();
    await tab.goto(`${url}/#/factories`);
    await tab.getByRole("heading", { name: "Factories" }).waitFor();
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("Token").waitFor();
    await tab.reload();
    await tab.getByLabel("Token").waitFor();
    await tab.close();
  });

  await step("on a phone the header and filters are compact and every factory action is on screen", async () => {
    const pctx = await browser.newContext({ viewport: { width: 390, height: 844 } });
    const phone = await pctx.newPage();
    phone.setDefaultTimeout(TIMEOUT_MS);
    await phone.goto(`${url}/#/jobs`);
    await phone.getByLabel("Token").fill(admin);
    await phone.getByRole("button", { name: "Sign in" }).click();
    await phone.locator(`tr[data-job="${held}"]`).waitFor();
    const chrome = await phone.evaluate(() => document.querySelector(".top").getBoundingClientRect().height + document.querySelector(".filters-box").getBoundingClientRect().height);
    assert.ok(chrome <= 200, `header and filters take ${chrome}px`);
    await assertNoSidewaysScroll(phone, "the jobs page on a phone");
    await audit(phone, "the jobs page on a phone");
    await phone.screenshot({ path: `${shots}/jobs-phone.png` });
    await phone.goto(`${url}/#/factories`);
    const buttons = phone.locator(`tr[data-factory="${fid}"] button`);
    await buttons.first().waitFor();
    assert.deepEqual(await buttons.allTextContents(), ["drain", "rotate", "revoke"]);
    for (const b of await buttons.all()) {
      const box = await b.boundingBox();
      assert.ok(box.x >= 0 && box.x + box.width <= 390, `${await b.textContent()} at x ${box.x}..${box.x + box.width}`);
    }
    await assertNoSidewaysScroll(phone, "the factories page on a phone");
    await audit(phone, "the factories page on a phone");
    await phone.screenshot({ path: `${shots}/factories-phone.png`, fullPage: true });
    await pctx.close();
  });
} finally {
  await browser.close();
}
finish();
process.exit(0);
