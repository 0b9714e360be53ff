// A job made from a tracker item, in review with what it saved, in a real browser (Debian's
// headless Chromium driven by playwright-core) against the coordinator tests/e2e_ui.rs started
// with an [intake.github] source. The test sends the item as GitHub does (a signed webhook) and
// plays the factory over HTTP: enroll, claim, save notes, be requeued, claim again, upload a
// patch, a report, a link, an image and a binary file, complete. Nothing listens at the
// source's callback at first, so the job's deliveries dead-letter; the test then listens there
// and redelivers them from the page. A second job needs two approvals: the page shows who
// approved of how many, Request changes asks for a reason (an empty one is refused and says
// so) and runs the job again with it, and the second reviewer's approval ships it.
// Usage: node review.test.mjs URL ADMIN_TOKEN VIEWER_TOKEN SCREENSHOT_DIR CALLBACK_PORT
//        WEBHOOK_SECRET CALLBACK_SECRET
import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { TIMEOUT_MS, apiClient, assertNoSidewaysScroll, audit, launch, signIn, tabTo } from "./harness.mjs";

const [url, admin, viewer, shots, callbackPort, webhookSecret, callbackSecret] = process.argv.slice(2);
const apiCall = apiClient(url, admin);
const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");
const hmac = (secret, body) => `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;

const ISSUE_URL = "https://github.com/acme/app/issues/42";
const PR_URL = "https://github.com/acme/app/pull/43";
// Two files; the second hunk removes a line that itself starts with "--", which only the
// hunk's counts tell from a file header.
const PATCH = `diff --git a/src/cache.rs b/src/cache.rs
--- a/src/cache.rs
+++ b/src/cache.rs
@@ -10,4 +10,5 @@ fn load(path: &Path) -> Cache {
     let file = File::open(path)?;
-    let cache = read(file).unwrap();
+    let cache = read(file).unwrap_or_default();
+    warm(&cache);
     cache
 }
--- a/schema.sql
+++ b/schema.sql
@@ -1,2 +1,1 @@
--- the cache table is rebuilt at start
 CREATE TABLE cache (key TEXT PRIMARY KEY);
`;
// Markup in a report is shown as its text, never run or rendered.
const REPORT = "# Fix for acme/app#42\n\nThe cache now falls back to empty.\n\n<script>document.title = 'pwned'</script><b>not bold</b>\n";

const NOTES = "First attempt: could not reproduce without a cold cache.\n";

// PUT of one artifact as a factory sends it: the file as the body, its lease and digest in
// the query.
async function upload(token, jobId, epoch, name, kind, bytes) {
  const q = new URLSearchParams({ epoch: String(epoch), request_id: `ui-${name}`, kind, sha256: sha256(bytes) });
  const res = await fetch(`${url}/v1/jobs/${jobId}/artifacts/${encodeURIComponent(name)}?${q}`, { method: "PUT", headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/octet-stream" }, body: bytes });
  assert.equal(res.status, 200, `upload of ${name}: ${await res.text()}`);
}

const { browser, step, finish } = await launch();
// The tracker's callback endpoint, once the test starts it: every request it heard.
const heard = [];
const tracker = createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    heard.push({ headers: req.headers, body });
    res.writeHead(200).end();
  });
});

try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(TIMEOUT_MS);
  const dialogs = [];
  // What the test answers a prompt with (the reason Request changes asks for).
  let promptAnswer = "";
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    if (d.type() === "prompt") d.accept(promptAnswer);
    else d.accept();
  });
  await signIn(page, url, admin);

  // The item arrives as GitHub sends it.
  const issue = JSON.stringify({ action: "opened", repository: { full_name: "acme/app" }, issue: { number: 42, title: "Crash when the cache is cold", body: "Stack trace attached.", html_url: ISSUE_URL, state: "open", updated_at: "2026-12-02T10:00:00Z", labels: [{ name: "bug" }] } });
  const delivered = await fetch(`${url}/v1/intake/github`, { method: "POST", headers: { "Content-Type": "application/json", "X-Hub-Signature-256": hmac(webhookSecret, issue) }, body: issue });
  const intake = await delivered.json();
  assert.equal(delivered.status, 200, JSON.stringify(intake));
  assert.equal(intake.decision, "created");
  const jobId = intake.jobs[0][1];

  // The factory this test plays takes the job and saves notes; an operator requeues it; the
  // second attempt saves what it made and completes.
  const enrollment = await apiCall("POST", "/v1/enrollment-tokens", {});
  const bot = await apiCall("POST", "/v1/factories/enroll", { name: "ui-review-bot", os: "linux", arch: "x86_64", capabilities: ["ui-review"], slots: 1 }, enrollment.body.token);
  assert.equal(bot.status, 200, JSON.stringify(bot.body));
  const token = bot.body.token;
  const claimIt = async () => {
    const claim = await apiCall("POST", "/v1/claims", { max_jobs: 1, wait_ms: 10_000 }, token);
    assert.equal(claim.status, 200, JSON.stringify(claim.body));
    assert.equal(claim.body.jobs[0].job_id, jobId);
    return claim.body.jobs[0].epoch;
  };
  await upload(token, jobId, await claimIt(), "notes.txt", "file", Buffer.from(NOTES));
  const requeued = await apiCall("POST", `/v1/jobs/${jobId}/actions/requeue`);
  assert.equal(requeued.status, 200, JSON.stringify(requeued.body));
  const epoch = await claimIt();
  // A 120×80 PNG, blue with an amber block in the middle, as Chromium encodes it.
  const png = Buffer.from(await page.evaluate(() => {
    const c = document.createElement("canvas");
    c.width = 120;
    c.height = 80;
    const g = c.getContext("2d");
    g.fillStyle = "#1d4ed8";
    g.fillRect(0, 0, 120, 80);
    g.fillStyle = "#f59e0b";
    g.fillRect(30, 20, 60, 40);
    return c.toDataURL("image/png").split(",")[1];
  }), "base64");
  const binary = Buffer.from(Array.from({ length: 2048 }, (_, i) => (i * 37) % 256));
  await upload(token, jobId, epoch, "fix.patch", "patch", Buffer.from(PATCH));
  await upload(token, jobId, epoch, "report.md", "report", Buffer.from(REPORT));
  await upload(token, jobId, epoch, "pull-request", "link", Buffer.from(`${PR_URL}\n`));
  await upload(token, jobId, epoch, "screen.png", "file", png);
  await upload(token, jobId, epoch, "core.bin", "file", binary);
  const completed = await apiCall("POST", `/v1/jobs/${jobId}/complete`, { epoch, request_id: "ui-review-complete" }, token);
  assert.equal(completed.status, 200, JSON.stringify(completed.body));
  assert.equal((await apiCall("GET", `/v1/jobs/${jobId}`)).body.state, "review");

  // The artifacts of the attempt up for review, the second.
  const artifact = (name) => page.locator(`[data-artifact="2/${name}"]`);
  const notes = page.locator('[data-artifact="1/notes.txt"]');
  const decision = page.locator('[data-testid="decision"]');
  const itemCard = page.locator('[data-testid="item-card"]');
  // Each attempt's start was echoed; the first one's is redelivered below.
  const startedRow = itemCard.locator('tr[data-event="started"]').first();
  const reviewRow = itemCard.locator('tr[data-event="review"]');

  await step("a job in review shows what it saved beside Ship and Reject", async () => {
    await page.goto(`${url}/#/jobs/${jobId}`);
    await page.locator("#job-title .badge", { hasText: "review" }).waitFor();
    await page.locator("#artifacts-title", { hasText: "Review what it saved" }).waitFor();
    await decision.locator('button[data-action="ship"]').waitFor();
    await decision.locator('button[data-action="reject"]').waitFor();
    assert.ok(await page.locator('.actions button[data-action="ship"]').isHidden(), "Ship is offered once, beside the artifacts");
    const list = await page.locator('[data-testid="artifacts"]').boundingBox();
    const beside = await decision.boundingBox();
    assert.ok(beside.x >= list.x + list.width && beside.y < list.y + list.height, `the decision is beside the artifacts (${JSON.stringify({ list, beside })})`);
    // Each artifact with its kind and size, by attempt: the one up for review first, marked,
    // beside the decision that names it, its views open; an earlier one's below, closed.
    const reviewed = page.locator('section[data-attempt="2"]');
    await reviewed.locator("h3 .badge", { hasText: "up for review" }).waitFor();
    assert.deepEqual(await page.locator("section[data-attempt]").evaluateAll((els) => els.map((e) => e.dataset.attempt)), ["2", "1"]);
    assert.deepEqual(await page.locator("section[data-attempt].reviewed").evaluateAll((els) => els.map((e) => e.dataset.attempt)), ["2"]);
    assert.equal(await reviewed.evaluate((el) => getComputedStyle(el).borderLeftStyle), "solid", "the attempt up for review carries the decision's bar");
    await decision.getByText("Ship accepts what attempt 2 saved").waitFor();
    const attempt2 = await reviewed.boundingBox();
    assert.ok(beside.x >= attempt2.x + attempt2.width && beside.y < attempt2.y + attempt2.height && beside.y + beside.height > attempt2.y, `the decision is beside attempt 2's files (${JSON.stringify({ attempt2, beside })})`);
    assert.deepEqual(await page.locator("[data-artifact] .artifact-name").allTextContents(), ["report.md", "fix.patch", "pull-request", "core.bin", "screen.png", "notes.txt"]);
    assert.deepEqual(await page.locator('section[data-attempt="1"] [data-artifact]').evaluateAll((els) => els.map((e) => e.dataset.artifact)), ["1/notes.txt"]);
    const show = notes.getByRole("button", { name: "Show notes.txt" });
    assert.equal(await show.getAttribute("aria-expanded"), "false");
    assert.ok(await notes.locator(".artifact-view").isHidden());
    await artifact("core.bin").getByText("2.0 KiB").waitFor();
    await artifact("fix.patch").locator(".badge", { hasText: "patch" }).waitFor();
    assert.equal(await artifact("core.bin").locator("button[aria-controls]").count(), 0, "a binary file has no view, only a download");
  });

  await step("a patch's added and removed lines are marked by more than colour", async () => {
    const diff = artifact("fix.patch").locator("pre.diff");
    await diff.locator("ins").first().waitFor();
    assert.deepEqual(await diff.locator("ins").allTextContents(), ["+    let cache = read(file).unwrap_or_default();", "+    warm(&cache);"]);
    assert.deepEqual(await diff.locator("del").allTextContents(), ["-    let cache = read(file).unwrap();", "--- the cache table is rebuilt at start"]);
    assert.deepEqual(await diff.locator(".hunk").allTextContents(), ["@@ -10,4 +10,5 @@ fn load(path: &Path) -> Cache {", "@@ -1,2 +1,1 @@"]);
    assert.equal(await diff.locator(".meta", { hasText: "+++ b/schema.sql" }).count(), 1);
    await artifact("fix.patch").getByText("2 lines added (+), 2 removed (-)").waitFor();
    // Besides their colour, changed lines carry a bar that differs by kind (solid, dashed).
    const bars = await diff.evaluate((pre) => [pre.querySelector("ins"), pre.querySelector("del")].map((el) => getComputedStyle(el).borderLeftStyle));
    assert.deepEqual(bars, ["solid", "dashed"]);
  });

  await step("an image is drawn, a link is a link and a report's markup stays text", async () => {
    await page.waitForFunction(() => {
      const img = document.querySelector('[data-artifact="2/screen.png"] img');
      if (!img || !img.complete || img.naturalWidth !== 120 || img.naturalHeight !== 80) return false;
      const c = document.createElement("canvas");
      c.width = 120;
      c.height = 80;
      const g = c.getContext("2d");
      g.drawImage(img, 0, 0);
      const [r, gr, b] = g.getImageData(60, 40, 1, 1).data;
      return r === 245 && gr === 158 && b === 11;
    });
    assert.match(await artifact("screen.png").locator("img").getAttribute("src"), /^blob:/);
    const link = artifact("pull-request").locator(`a[href="${PR_URL}"]`);
    await link.waitFor();
    assert.equal(await link.getAttribute("rel"), "noopener noreferrer");
    const report = artifact("report.md").locator("pre.artifact-text");
    await report.waitFor();
    assert.equal(await report.textContent(), REPORT);
    assert.equal(await artifact("report.md").locator(".artifact-view b, .artifact-view script").count(), 0);
    assert.notEqual(await page.title(), "pwned");
  });

  await step("the keyboard opens an earlier attempt's file, and redraws keep the focus", async () => {
    await tabTo(page, '[data-key="view:1/notes.txt"]', 60);
    await page.keyboard.press("Enter");
    await notes.locator("pre.artifact-text", { hasText: NOTES.trim() }).waitFor();
    const hide = notes.getByRole("button", { name: "Hide notes.txt" });
    assert.equal(await hide.getAttribute("aria-expanded"), "true");
    for (let i = 0; i < 2; i++) await page.waitForResponse((r) => r.url().endsWith(`/v1/jobs/${jobId}/artifacts`));
    assert.equal(await page.evaluate(() => document.activeElement.dataset.key), "view:1/notes.txt");
    await page.keyboard.press("Enter");
    await notes.locator(".artifact-view").waitFor({ state: "hidden" });
    await page.keyboard.press("Enter");
    await notes.locator("pre.artifact-text").waitFor();
  });

  await step("a download saves the artifact's bytes under its name, an earlier attempt's too", async () => {
    const files = [[artifact("fix.patch"), "fix.patch", Buffer.from(PATCH)], [artifact("screen.png"), "screen.png", png], [artifact("core.bin"), "core.bin", binary], [notes, "notes.txt", Buffer.from(NOTES)]];
    for (const [row, name, bytes] of files) {
      const [download] = await Promise.all([page.waitForEvent("download"), row.getByRole("button", { name: `Download ${name}` }).click()]);
      assert.equal(download.suggestedFilename(), name);
      assert.equal(sha256(readFileSync(await download.path())), sha256(bytes), `the bytes of ${name}`);
    }
  });

  await step("the item's link and its dead-lettered deliveries show", async () => {
    const link = itemCard.locator(`a[href="${ISSUE_URL}"]`);
    await link.waitFor();
    assert.equal(await link.textContent(), "acme/app#42: Crash when the cache is cold");
    await itemCard.locator(".badge", { hasText: "open" }).waitFor();
    await itemCard.getByText("Fix acme/app#42 (this job)").waitFor();
    for (const row of [startedRow, reviewRow]) {
      await row.locator(".badge", { hasText: "dead letter" }).waitFor();
      assert.equal(await row.locator(".tries").textContent(), "2", "tries_max of the config");
      assert.notEqual(await row.locator(".answer").textContent(), "–", "why it failed");
      await row.getByRole("button", { name: /^Redeliver / }).waitFor();
    }
    await page.locator("#flash").waitFor({ state: "hidden" });
    await page.screenshot({ path: `${shots}/review-artifacts.png`, fullPage: true });
    await audit(page, "a job in review with its artifacts and deliveries");
  });

  await step("a viewer sees the artifacts and deliveries and no action", async () => {
    const vctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const vpage = await vctx.newPage();
    vpage.setDefaultTimeout(TIMEOUT_MS);
    await signIn(vpage, url, viewer);
    await vpage.goto(`${url}/#/jobs/${jobId}`);
    await vpage.locator('[data-artifact="2/fix.patch"] pre.diff ins').first().waitFor();
    await vpage.locator('[data-testid="decision"]', { hasText: "Only an operator can ship or reject." }).waitFor();
    await vpage.locator('[data-testid="item-card"] tr[data-event="started"] .badge', { hasText: "dead letter" }).first().waitFor();
    assert.equal(await vpage.locator("button[data-action]").count(), 0);
    assert.equal(await vpage.locator('[data-testid="item-card"] button').count(), 0);
    assert.equal(await vpage.locator('[data-testid="item-card"] th', { hasText: "Action" }).count(), 0);
    await audit(vpage, "a job in review, for a viewer");
    const refused = await apiCall("POST", `/v1/deliveries/${await startedRow.getAttribute("data-delivery")}/redeliver`, undefined, viewer);
    assert.equal(refused.status, 403);
    await vctx.close();
  });

  await step("a job in review works on a narrow screen", async () => {
    const nctx = await browser.newContext({ viewport: { width: 390, height: 844 } });
    const npage = await nctx.newPage();
    npage.setDefaultTimeout(TIMEOUT_MS);
    await signIn(npage, url, admin);
    await npage.goto(`${url}/#/jobs/${jobId}`);
    await npage.locator('[data-artifact="2/fix.patch"] pre.diff ins').first().waitFor();
    await npage.locator('[data-artifact="2/screen.png"] img').waitFor();
    await npage.locator('[data-testid="item-card"] tr[data-event="review"]').waitFor();
    await assertNoSidewaysScroll(npage, "a job in review");
    const list = await npage.locator('[data-testid="artifacts"]').boundingBox();
    const below = await npage.locator('[data-testid="decision"]').boundingBox();
    assert.ok(below.y >= list.y + list.height, "on a phone the decision follows the artifacts");
    await audit(npage, "a job in review on a narrow screen");
    await nctx.close();
  });

  await step("a dead letter is redelivered from the keyboard, and the tracker hears it", async () => {
    await new Promise((resolve) => tracker.listen(Number(callbackPort), "127.0.0.1", resolve));
    const id = await startedRow.getAttribute("data-delivery");
    // A fresh load, so Tab starts at the top of the document.
    await page.reload();
    await startedRow.getByRole("button", { name: "Redeliver started" }).waitFor();
    await tabTo(page, `[data-key="redeliver-${id}"]`, 80);
    // The deliveries redraw on every refresh; the focus stays on the button through two.
    for (let i = 0; i < 2; i++) await page.waitForResponse((r) => r.url().includes("/v1/items/"));
    assert.equal(await page.evaluate(() => document.activeElement.dataset.key), `redeliver-${id}`);
    await page.keyboard.press("Enter");
    await page.locator("#flash", { hasText: "redeliver started: queued" }).waitFor();
    await startedRow.locator(".badge", { hasText: "delivered" }).waitFor();
    assert.equal(await startedRow.locator(".answer").textContent(), "HTTP 200");
    assert.equal(await page.evaluate(() => document.activeElement.dataset.key), "deliveries", "the focus stays in the table");
    const echo = heard.find((r) => JSON.parse(r.body).event === "started");
    assert.ok(echo, `the tracker heard the redelivery (${heard.length} requests)`);
    assert.equal(echo.headers["idempotency-key"], id);
    assert.equal(echo.headers["x-gigafactory-signature"], hmac(callbackSecret, echo.body));
    await page.locator("#flash").waitFor({ state: "hidden" });
    // The picture shows the table, not where the keyboard left off.
    await page.evaluate(() => document.activeElement.blur());
    await itemCard.screenshot({ path: `${shots}/item-deliveries.png` });
  });

  await step("a refused redelivery shows the API's error", async () => {
    const id = await reviewRow.getAttribute("data-delivery");
    // The page's view of the deliveries is held still while another operator redelivers
    // the dead letter, so the page still offers it.
    let holding = true;
    const held = [];
    let heldOne;
    const first = new Promise((resolve) => (heldOne = resolve));
    const hold = (route) => {
      if (!holding) return route.continue();
      held.push(route);
      heldOne();
    };
    await page.route("**/v1/items/**", hold);
    // A refresh waits on the held read, so none is under way that could redraw the row.
    await first;
    const elsewhere = await apiCall("POST", `/v1/deliveries/${id}/redeliver`);
    assert.equal(elsewhere.status, 202, JSON.stringify(elsewhere.body));
    await reviewRow.getByRole("button", { name: "Redeliver review" }).click();
    await page.locator("#flash", { hasText: "illegal_transition" }).waitFor();
    holding = false;
    for (const route of held.splice(0)) await route.continue();
    await page.unroute("**/v1/items/**", hold);
    await reviewRow.locator(".badge", { hasText: "delivered" }).waitFor();
    await page.locator("#flash").waitFor({ state: "hidden" });
  });

  await step("Ship beside the artifacts ends the review, and the tracker hears it", async () => {
    await decision.locator('button[data-action="ship"]').click();
    await page.locator("#job-title .badge", { hasText: "shipped" }).waitFor();
    assert.ok(dialogs.includes("ship this job?"), `asked: ${dialogs.join(" | ")}`);
    await page.locator("#artifacts-title", { hasText: "Artifacts" }).waitFor();
    assert.ok(await decision.isHidden());
    // Shipped, the job can only be requeued: the bar offers nothing else.
    await page.locator('.actions button[data-action="requeue"]').waitFor();
    assert.equal(await page.locator(".actions button[data-action]").count(), 1);
    await artifact("fix.patch").waitFor();
    await itemCard.locator('tr[data-event="shipped"] .badge', { hasText: "delivered" }).waitFor();
    assert.ok(heard.some((r) => JSON.parse(r.body).event === "shipped"));
    await audit(page, "a shipped job with its artifacts");
  });

  await step("a review needing two approvals counts them, requests changes and ships on the second", async () => {
    const REASON = "Cover the cold cache in a test too.";
    const made = await apiCall("POST", "/v1/jobs", { key: "ui-two-reviews", title: "UI two reviews", product: "ui-review", capabilities: ["ui-review"], payload: { command: "true" }, review: true, approvals: 2 });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const twoId = made.body.id;
    // The factory this test plays runs an attempt to its end: up for review again.
    const runToReview = async () => {
      const claim = await apiCall("POST", "/v1/claims", { max_jobs: 1, wait_ms: 10_000 }, token);
      assert.equal(claim.status, 200, JSON.stringify(claim.body));
      const claimed = claim.body.jobs[0];
      assert.equal(claimed.job_id, twoId);
      const done = await apiCall("POST", `/v1/jobs/${twoId}/complete`, { epoch: claimed.epoch, request_id: `ui-two-${claimed.attempt}` }, token);
      assert.equal(done.status, 200, JSON.stringify(done.body));
      return claimed;
    };
    assert.equal((await runToReview()).review_feedback, null, "no feedback before a request");
    await page.goto(`${url}/#/jobs/${twoId}`);
    await page.locator("#job-title .badge", { hasText: "review" }).waitFor();
    const approvals = decision.locator('[data-testid="approvals"]');
    await approvals.getByText("Approvals: 0 of 2").waitFor();
    const approve = decision.locator('button[data-action="ship"]');
    assert.equal(await approve.textContent(), "Approve", "with two approvals needed, Ship is an approval");
    await decision.getByText("Approve counts toward the 2 approvals").waitFor();

    // An empty reason is refused by the API, which the page shows; nothing changes.
    const requestChanges = decision.getByRole("button", { name: "Request changes" });
    promptAnswer = "   ";
    await requestChanges.click();
    await page.locator("#flash", { hasText: "invalid_request: a request for changes needs a reason" }).waitFor();
    assert.equal((await apiCall("GET", `/v1/jobs/${twoId}`)).body.state, "review");
    await page.locator("#flash").waitFor({ state: "hidden" });
    promptAnswer = REASON;
    await requestChanges.click();
    await page.locator("#job-title .badge", { hasText: "queued" }).waitFor();
    assert.ok(dialogs.includes("What should the next attempt change?"), `asked: ${dialogs.join(" | ")}`);
    await page.locator(".timeline li", { hasText: `request_changes` }).filter({ hasText: REASON }).waitFor();
    const second = await runToReview();
    assert.equal(second.review_feedback, REASON, "the next attempt is handed the reason");
    assert.equal(second.attempt, 2);

    await page.locator("#job-title .badge", { hasText: "review" }).waitFor();
    await approvals.getByText("Approvals: 0 of 2").waitFor();
    await approve.click();
    const me = (await apiCall("GET", "/v1/whoami")).body.name;
    await approvals.getByText(`Approvals: 1 of 2 — ${me}`).waitFor();
    assert.ok(dialogs.includes("approve this job?"), `asked: ${dialogs.join(" | ")}`);
    assert.equal((await apiCall("GET", `/v1/jobs/${twoId}`)).body.state, "review", "one approval of two does not ship");
    await page.locator("#flash").waitFor({ state: "hidden" });
    await audit(page, "a job in review with one approval of two");
    await approve.click();
    await page.locator("#flash", { hasText: "already_approved" }).waitFor();

    // A second operator's approval ships it.
    const bo = await apiCall("POST", "/v1/tokens", { role: "operator", name: "ui-bo" });
    assert.equal(bo.status, 200, JSON.stringify(bo.body));
    const shipped = await apiCall("POST", `/v1/jobs/${twoId}/actions/ship`, undefined, bo.body.token);
    assert.equal(shipped.status, 200, JSON.stringify(shipped.body));
    assert.deepEqual(shipped.body.approvals.map((a) => a.by), [me, "ui-bo"]);
    await page.locator("#job-title .badge", { hasText: "shipped" }).waitFor();
    assert.ok(await decision.isHidden());
  });

  await step("a job no tracker made and that saved nothing shows neither", async () => {
    const plain = await apiCall("POST", "/v1/jobs", { key: "ui-plain", title: "UI plain", product: "ui-review", capabilities: ["nowhere"], payload: { command: "true" } });
    assert.equal(plain.status, 201, JSON.stringify(plain.body));
    await page.goto(`${url}/#/jobs/${plain.body.id}`);
    await page.locator("#job-title", { hasText: "UI plain" }).waitFor();
    await page.locator('[data-testid="attempts"] td', { hasText: "Not claimed yet." }).waitFor();
    assert.ok(await page.locator('[data-testid="item-card"]').isHidden());
    assert.ok(await page.locator('[data-testid="artifacts-card"]').isHidden());
  });
} finally {
  tracker.close();
  await browser.close();
}
finish();
