// A job's git repository on its page (the "what it runs" section), in a real browser against
// the coordinator tests/e2e_ui.rs started: a job with a `repo` shows its URL and revision, a
// job without one shows no repository row.
// Usage: node repo.test.mjs URL ADMIN_TOKEN VIEWER_TOKEN SCREENSHOT_DIR
import assert from "node:assert/strict";
import { TIMEOUT_MS, apiClient, audit, launch, signIn } from "./harness.mjs";

const [url, admin, , shots] = process.argv.slice(2);
const apiCall = apiClient(url, admin);

const { browser, step, finish } = await launch();
try {
  // No factory has the capability: the jobs stay queued, which is all the page needs.
  const submit = async (key, extra) => {
    const made = await apiCall("POST", "/v1/jobs", { key, title: key, product: "ui-repo", capabilities: ["ui-repo"], payload: { command: "true" }, ...extra });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    return made.body.id;
  };
  const withRepo = await submit("ui-repo", { repo: { url: "https://example.com/acme/api.git", rev: "release/1.2" } });
  const plain = await submit("ui-plain", {});

  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(TIMEOUT_MS);
  await signIn(page, url, admin);

  await step("a job with a repository shows its URL and revision with what it runs", async () => {
    await page.goto(`${url}/#/jobs/${withRepo}`);
    const repo = page.locator('[data-testid="repo"]');
    await repo.waitFor();
    assert.equal(await repo.textContent(), "https://example.com/acme/api.git @ release/1.2");
    await page.locator("dt", { hasText: "Repository" }).waitFor();
    await audit(page, "a job with a repository");
    await page.screenshot({ path: `${shots}/job-repo.png` });
  });

  await step("a job without one shows no repository row", async () => {
    await page.goto(`${url}/#/jobs/${plain}`);
    await page.locator('[data-testid="payload"]').waitFor();
    assert.equal(await page.locator('[data-testid="repo"]').count(), 0);
    assert.equal(await page.locator("dt", { hasText: "Repository" }).count(), 0);
  });
} finally {
  await browser.close();
}
finish();
