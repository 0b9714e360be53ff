// Schedules in a real browser against a coordinator with one real factory (started by
// tests/e2e_ui.rs): a schedule created from the form shows its cron, zone and next runs; a bad
// one shows the API's problems beside their fields and is not saved; a run in its history
// links to the job it submitted; pause and resume from its page; a viewer only reads; delete
// with confirmation; axe on each page.
// Usage: node schedules.test.mjs URL ADMIN_TOKEN VIEWER_TOKEN SCREENSHOT_DIR
import assert from "node:assert/strict";
import { TIMEOUT_MS, apiClient, audit, launch, signIn } from "./harness.mjs";

const [url, admin, viewer, shots] = process.argv.slice(2);
const apiCall = apiClient(url, admin);
const JOB = JSON.stringify({ key: "tick", title: "UI tick", product: "uisched", payload: { command: "true" } });

const { browser, step, finish } = await launch();

try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(TIMEOUT_MS);
  page.on("dialog", (d) => d.accept());
  await signIn(page, url, admin);

  const fill = async (name, cron, zone, job) => {
    await page.locator("#s-name").fill(name);
    await page.locator("#s-cron").fill(cron);
    await page.locator("#s-zone").fill(zone);
    await page.locator("#s-job").fill(job);
    await page.getByRole("button", { name: "Save schedule" }).click();
  };

  await step("the nav leads to the schedules, empty at first", async () => {
    await page.getByRole("navigation").getByRole("link", { name: "Schedules" }).click();
    await page.getByRole("heading", { name: "Schedules", level: 1 }).waitFor();
    await page.getByText("No schedules yet.").waitFor();
  });

  await step("a bad schedule shows each problem beside its field and is not saved", async () => {
    await fill("ui-bad", "61 * * * *", "Nowhere/Land", JOB);
    await page.locator('[data-testid="error-cron"]', { hasText: "minute" }).waitFor();
    await page.locator('[data-testid="error-time_zone"]', { hasText: "IANA" }).waitFor();
    assert.ok(await page.locator('[data-testid="error-job"]').isHidden(), "the job has no problem");
    assert.equal(await page.locator("#s-cron").inputValue(), "61 * * * *", "what was typed stays");
    const listed = await apiCall("GET", "/v1/schedules");
    assert.deepEqual(listed.body, []);
    await audit(page, "the schedules page with a refused form");
  });

  await step("a schedule created from the form shows its cron, zone and next run", async () => {
    await fill("ui-every2", "*/2 * * * * *", "Europe/Paris", JOB);
    const card = page.locator('[data-schedule="ui-every2"]');
    await card.locator('[data-testid="cron"]', { hasText: "*/2 * * * * * in Europe/Paris" }).waitFor();
    await card.locator(".badge", { hasText: "active" }).waitFor();
    await card.locator('[data-testid="next-run"]', { hasText: /\+0[12]:00/ }).waitFor();
    assert.ok(await page.locator('[data-testid="error-cron"]').isHidden(), "the old problems are gone");
    await page.screenshot({ path: `${shots}/schedules.png`, fullPage: true });
  });

  await step("its page shows the next five runs and a run linking to its job", async () => {
    await page.locator('[data-schedule="ui-every2"] h2 a').click();
    await page.locator("#schedule-title", { hasText: "ui-every2" }).waitFor();
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="next-runs"] tr').length === 5);
    const link = page.locator('[data-testid="history"] a[data-job]').first();
    await link.waitFor();
    const id = await link.getAttribute("data-job");
    const job = (await apiCall("GET", `/v1/jobs/${id}`)).body;
    assert.match(job.idempotency_key, /^schedule:ui-every2:\d+$/);
    await audit(page, "a schedule's page");
    await page.screenshot({ path: `${shots}/schedule.png`, fullPage: true });
    await link.click();
    await page.locator("#job-title", { hasText: "UI tick" }).waitFor();
    await page.goBack();
    await page.locator("#schedule-title", { hasText: "ui-every2" }).waitFor();
  });

  await step("pause and resume from its page", async () => {
    await page.locator('button[data-action="pause"]').click();
    await page.locator("#schedule-title .badge", { hasText: "paused" }).waitFor();
    assert.equal((await apiCall("GET", "/v1/schedules/ui-every2")).body.state, "paused");
    await page.locator('button[data-action="resume"]').click();
    await page.locator("#schedule-title .badge", { hasText: "active" }).waitFor();
    assert.equal((await apiCall("GET", "/v1/schedules/ui-every2")).body.state, "active");
  });

  await step("a viewer reads the schedules and gets no actions or form", async () => {
    const vctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const v = await vctx.newPage();
    v.setDefaultTimeout(TIMEOUT_MS);
    await signIn(v, url, viewer);
    await v.goto(url + "/#/schedules");
    await v.locator('[data-schedule="ui-every2"]').waitFor();
    await v.getByText("Read only (viewer).").waitFor();
    assert.equal(await v.locator('[data-schedule="ui-every2"] button').count(), 0);
    await audit(v, "the schedules page as a viewer");
    await vctx.close();
  });

  await step("delete, confirmed, removes it", async () => {
    await page.goto(url + "/#/schedules");
    await page.locator('[data-schedule="ui-every2"] button[data-action="delete"]').click();
    await page.getByText("No schedules yet.").waitFor();
    assert.deepEqual((await apiCall("GET", "/v1/schedules")).body, []);
  });
  finish();
} finally {
  await browser.close();
}
