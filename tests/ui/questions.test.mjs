// A job's question to an operator in a real browser (Debian's headless Chromium driven by
// playwright-core) against the coordinator tests/e2e_ui.rs started. The test plays the
// factory over HTTP: enroll, claim, ask "Merge the migration now?" with two choices. The
// overview counts the job as waiting for input and links to the jobs table filtered to it,
// which marks it; its page shows the question first with a button per choice; a viewer sees
// it without them; the operator clicks one, and the answer shows in the timeline.
// Usage: node questions.test.mjs URL ADMIN_TOKEN VIEWER_TOKEN SCREENSHOT_DIR
import assert from "node:assert/strict";
import { TIMEOUT_MS, apiClient, audit, launch, signIn } from "./harness.mjs";

const [url, admin, viewer, shots] = process.argv.slice(2);
const apiCall = apiClient(url, admin);

const { browser, step, finish } = await launch();
try {
  const made = await apiCall("POST", "/v1/jobs", { key: "ui-ask", title: "UI asks", product: "ui-ask", capabilities: ["ui-ask"], payload: { command: "true" } });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  const jobId = made.body.id;
  const enrollment = await apiCall("POST", "/v1/enrollment-tokens", {});
  const bot = await apiCall("POST", "/v1/factories/enroll", { name: "ui-ask-bot", os: "linux", arch: "x86_64", capabilities: ["ui-ask"], slots: 1 }, enrollment.body.token);
  assert.equal(bot.status, 200, JSON.stringify(bot.body));
  const token = bot.body.token;
  const claim = await apiCall("POST", "/v1/claims", { max_jobs: 1, wait_ms: 10_000 }, token);
  assert.equal(claim.status, 200, JSON.stringify(claim.body));
  const epoch = claim.body.jobs[0].epoch;
  const ask = (requestId, text) => apiCall("POST", `/v1/jobs/${jobId}/question`, { epoch, request_id: requestId, text, choices: ["yes", "no"], timeout_ms: 600_000 }, token);
  const asked = await ask("ui-q1", "Merge the migration now?");
  assert.equal(asked.status, 200, JSON.stringify(asked.body));

  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(TIMEOUT_MS);
  await signIn(page, url, admin);

  await step("the overview counts the jobs waiting for input and links to them, marked", async () => {
    await page.locator('[data-testid="waiting-for-input"]', { hasText: "1" }).waitFor();
    await page.locator('a[data-key="waiting-for-input"]').click();
    await page.waitForURL(/waiting_for_input=true/);
    const row = page.locator(`tr[data-job="${jobId}"]`);
    await row.locator('[data-testid="waits-for-input"]').waitFor();
    assert.equal(await page.locator("tr[data-job]").count(), 1, "only the job that asks");
    assert.ok(await page.getByLabel("Waiting for input").isChecked(), "the filter shows as set");
    await audit(page, "the jobs waiting for input");
  });

  await step("a viewer sees the question without the buttons", async () => {
    const vctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const vpage = await vctx.newPage();
    vpage.setDefaultTimeout(TIMEOUT_MS);
    await signIn(vpage, url, viewer);
    await vpage.goto(`${url}/#/jobs/${jobId}`);
    const card = vpage.locator('[data-testid="question"]');
    await card.getByText("Merge the migration now?").waitFor();
    await card.getByText("Only an operator can answer.").waitFor();
    assert.equal(await card.locator("button[data-choice]").count(), 0);
    await vctx.close();
  });

  await step("the job page shows the question first, with a button per choice", async () => {
    await page.goto(`${url}/#/jobs/${jobId}`);
    const card = page.locator('[data-testid="question"]');
    await card.locator('[data-testid="question-text"]', { hasText: "Merge the migration now?" }).waitFor();
    assert.deepEqual(await card.locator("button[data-choice]").allTextContents(), ["yes", "no"]);
    const first = await page.locator("main section.card").first().getAttribute("data-testid");
    assert.equal(first, "question", "the question comes first on the page");
    await card.getByText(/times out/).waitFor();
    await audit(page, "a job waiting for input");
    await page.screenshot({ path: `${shots}/question.png` });
  });

  await step("the operator clicks a choice: the job gets it and the timeline shows it", async () => {
    const card = page.locator('[data-testid="question"]');
    await card.getByLabel("Note with the answer").fill("backup done");
    await card.locator('button[data-choice="yes"]').click();
    await page.locator('.timeline li[data-kind="answer"]', { hasText: "yes (backup done)" }).waitFor();
    await page.locator('.timeline li[data-kind="ask"]', { hasText: "Merge the migration now?" }).waitFor();
    await card.waitFor({ state: "hidden" });
    const me = (await apiCall("GET", "/v1/whoami")).body.name;
    const polled = await fetch(`${url}/v1/jobs/${jobId}/question?epoch=${epoch}`, { headers: { Authorization: `Bearer ${token}` } });
    const view = await polled.json();
    assert.equal(view.status, "answered");
    assert.equal(view.answer, "yes");
    assert.equal(view.answered_by, me);
    const again = await apiCall("POST", `/v1/jobs/${jobId}/answer`, { question_id: "ui-q1", answer: "no" });
    assert.equal(again.status, 409, "a second answer is refused");
    assert.equal(again.body.error, "question_conflict");
  });

  await step("a free-text question takes its answer from a text box", async () => {
    const asked = await apiCall("POST", `/v1/jobs/${jobId}/question`, { epoch, request_id: "ui-q2", text: "Name the branch?", timeout_ms: 600_000 }, token);
    assert.equal(asked.status, 200, JSON.stringify(asked.body));
    const card = page.locator('[data-testid="question"]');
    await card.getByText("Name the branch?").waitFor();
    // 700 characters of 3 bytes each: under 2,000 characters, over the server's 2,000 bytes.
    await card.getByLabel("Answer", { exact: true }).fill("€".repeat(700));
    await card.getByRole("button", { name: "Send answer" }).click();
    await card.locator('[data-testid="question-error"]', { hasText: "2100 bytes; at most 2000" }).waitFor();
    assert.equal((await apiCall("GET", `/v1/jobs/${jobId}`)).body.question.status, "open", "nothing was sent");
    await card.getByLabel("Answer", { exact: true }).fill("fix/cache");
    // A double click sends one answer: the form is disabled while the first is on its way.
    let posted = 0;
    page.on("request", (r) => {
      if (r.method() === "POST" && r.url().endsWith(`/v1/jobs/${jobId}/answer`)) posted += 1;
    });
    await card.getByRole("button", { name: "Send answer" }).dblclick();
    await page.locator('.timeline li[data-kind="answer"]', { hasText: "fix/cache" }).waitFor();
    assert.equal(posted, 1, "one POST for a double click");
  });
} finally {
  await browser.close();
}
finish();
