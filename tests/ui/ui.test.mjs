// The control plane in a real browser (Debian's headless Chromium driven by playwright-core),
// against a coordinator with a real factory that tests/e2e_ui.rs started. Every page is also
// audited with axe-core: a serious or critical accessibility violation fails the test.
// Usage: node ui.test.mjs URL ADMIN_TOKEN VIEWER_TOKEN SCREENSHOT_DIR
import assert from "node:assert/strict";
import { TIMEOUT_MS, apiClient, assertNoSidewaysScroll, audit, launch, signIn as signInAt, tabTo } from "./harness.mjs";

const [url, admin, viewer, shots] = process.argv.slice(2);
const apiCall = apiClient(url, admin);
const signIn = (page, token) => signInAt(page, url, token);

// Waits until the canvas under `selector` has pixels of about the colour `rgb`: a series drawn
// in that colour leaves some.
async function waitForColour(page, selector, [r, g, b]) {
  await page.waitForFunction(({ selector, r, g, b }) => {
    const canvas = document.querySelector(selector);
    const px = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 0; i < px.length; i += 4) if (Math.abs(px[i] - r) < 16 && Math.abs(px[i + 1] - g) < 16 && Math.abs(px[i + 2] - b) < 16 && px[i + 3] > 200) return true;
    return false;
  }, { selector, r, g, b });
}

// Budgets' periods turn over at UTC midnight; the budget steps below report spend and read it
// back for a few minutes, so they start after midnight when it is that close.
async function clearOfUtcMidnight(spanMs) {
  const day = 86_400_000;
  const left = day - (Date.now() % day);
  if (left < spanMs) {
    console.log(`waiting ${Math.ceil(left / 1000)} s for UTC midnight to pass before the budget steps`);
    await new Promise((r) => setTimeout(r, left + 2_000));
  }
}

const { browser, step, finish } = await launch();

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
    // 600 two-byte characters: within the field's 1000 characters, past the API's 1000 bytes.
    await page.locator('[data-testid="action-reason"]').fill("é".repeat(600));
    await page.locator('button[data-action="retry"]').click();
    await page.locator("#flash", { hasText: "invalid_request" }).waitFor();
    assert.equal((await apiCall("GET", `/v1/jobs/${id}`)).body.state, "cancelled", "a refused action changes nothing");
    await page.locator('[data-testid="action-reason"]').fill("");
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
    // The page keeps seeing the factory draining while it is revoked behind its back: the
    // rotate it still offers is refused, with the API's error.
    const factoryPath = `/v1/factories/${spare.body.factory_id}`;
    const draining = (await apiCall("GET", factoryPath)).body;
    await page.route(url + factoryPath, (r) => r.fulfill({ json: draining }));
    assert.equal((await apiCall("POST", `${factoryPath}/revoke`)).status, 204);
    await page.locator('button[data-action="rotate"]').click();
    await page.locator("#flash", { hasText: "illegal_transition" }).waitFor();
    await page.unroute(url + factoryPath);
    // A revoked factory offers no action.
    await page.locator("#factory-title .badge", { hasText: "revoked" }).waitFor();
    await page.locator('[aria-label="Actions"]', { hasText: "No actions." }).waitFor();
    assert.ok(dialogs.includes("rotate factory ui-spare?"), `asked: ${dialogs.join(" | ")}`);
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

  await step("an admin mints and revokes a token on the Tokens page, which shows the audit log", async () => {
    await page.goto(url + "/#/tokens");
    await page.getByLabel("Role", { exact: true }).selectOption("viewer");
    await page.getByLabel("Name", { exact: true }).fill("ui-minted");
    await page.getByLabel("Expires in", { exact: true }).fill("1d");
    await page.getByRole("button", { name: "Mint token" }).click();
    await page.locator('[data-testid="secret"]', { hasText: "gf_" }).waitFor();
    const row = page.locator('[data-testid="tokens"] tr', { hasText: "ui-minted" });
    await row.waitFor();
    await page.locator('[data-testid="audit"] td', { hasText: "POST /v1/tokens" }).first().waitFor();
    await page.screenshot({ path: `${shots}/tokens.png`, fullPage: true });
    await audit(page, "the tokens page");
    await row.getByRole("button", { name: "revoke ui-minted" }).click();
    await row.waitFor({ state: "detached" });
    const listed = (await apiCall("GET", "/v1/tokens")).body;
    assert.ok(!listed.some((t) => t.name === "ui-minted"), "a revoked token leaves the list");
  });

  await step("a job needing a capability no factory has says why, naming every factory, and the overview asks for a factory with it", async () => {
    const q = await apiCall("POST", "/v1/jobs", { key: "ui-quantum", title: "UI quantum", product: "ui", capabilities: ["quantum"], payload: { command: "true" } });
    assert.equal(q.status, 201, JSON.stringify(q.body));
    await page.goto(url + `/#/jobs/${q.body.id}`);
    await page.locator('[data-testid="waiting"]', { hasText: "no factory has capability quantum; closest: " }).waitFor();
    const row = page.locator('[data-testid="candidates"] tr', { hasText: "ui-factory" });
    await row.locator("td", { hasText: "lacks capability quantum" }).waitFor();
    await page.screenshot({ path: `${shots}/waiting.png`, fullPage: true });
    await audit(page, "the job page of a job no factory can run");
    // The overview's capacity by shape asks for one factory with quantum, none being online.
    await page.goto(url + "/#/overview");
    const shape = page.locator('[data-testid="capacity"] tr[data-shape="quantum/"]');
    await shape.locator('[data-testid="wanted"]', { hasText: "1 (1 more)" }).waitFor();
    assert.deepEqual(await shape.locator("td").allInnerTexts().then((t) => [t[0], t[1], t[2], t[5]]), ["quantum", "any", "1", "0"]);
    await audit(page, "the overview with capacity by shape");
    await apiCall("POST", `/v1/jobs/${q.body.id}/actions/cancel`);
    await shape.waitFor({ state: "detached" });
  });

  await step("an operator sets a product's fair share on the weights page", async () => {
    await page.goto(url + "/#/weights?product=ui");
    const share = page.getByLabel("Fair share");
    await share.fill("4");
    await page.getByRole("button", { name: "Save share" }).click();
    await page.locator("#flash", { hasText: "share saved" }).waitFor();
    assert.equal((await apiCall("GET", "/v1/products/shares")).body.shares.ui, 4);
    await share.fill("0");
    await page.getByRole("button", { name: "Save share" }).click();
    await page.locator("#flash", { hasText: "share must be between 1 and 1000" }).waitFor();
    assert.equal((await apiCall("GET", "/v1/products/shares")).body.shares.ui, 4, "a refused share changes nothing");
  });

  await clearOfUtcMidnight(5 * 60_000);
  await step("an operator creates a budget from the form, its dollars read exactly", async () => {
    await page.goto(url + "/#/budgets");
    await page.getByText("No budgets yet.").waitFor();
    await page.getByLabel("Name", { exact: true }).fill("ui-daily");
    await page.getByLabel("Product", { exact: true }).fill("ui-spend");
    await page.getByLabel("Period", { exact: true }).selectOption("day");
    // 4.35 × 1e6 is 4349999.999… in floating point: the form must not go through it.
    await page.getByLabel("Limit per period, in dollars").fill("4.35");
    await page.getByLabel("Alert at, % of the limit").fill("50");
    await page.getByRole("button", { name: "Save budget" }).click();
    await page.locator('li[data-budget="ui-daily"] .spend-bar').waitFor();
    const saved = (await apiCall("GET", "/v1/budgets/ui-daily")).body.budget;
    assert.equal(saved.limit_micros, 4_350_000);
    assert.equal(saved.alert_percent, 50);
    assert.equal(saved.period, "day");
    assert.equal(saved.policy, "finish");
  });

  // A factory this test plays itself: it claims a job of product ui-spend and reports what
  // the job spent, as an agent does, so the budgets have spend to show.
  const enrollment = await apiCall("POST", "/v1/enrollment-tokens", {});
  const payer = await apiCall("POST", "/v1/factories/enroll", { name: "ui-payer", os: "linux", arch: "x86_64", capabilities: ["ui-spend"], slots: 1 }, enrollment.body.token);
  assert.equal(payer.status, 200, JSON.stringify(payer.body));
  const burst = await apiCall("PUT", "/v1/budgets/ui-burst", { product: "ui-spend", label: "burst", period: "week", limit_micros: 1_000_000 });
  assert.equal(burst.status, 200, JSON.stringify(burst.body));
  const spender = await apiCall("POST", "/v1/jobs", { key: "ui-spender", title: "UI spender", product: "ui-spend", labels: ["burst"], capabilities: ["ui-spend"], cost_budget_micros: 5_000_000, payload: { command: "true" } });
  assert.equal(spender.status, 201, JSON.stringify(spender.body));
  const sid = spender.body.id;
  const claim = await apiCall("POST", "/v1/claims", { max_jobs: 1, wait_ms: 10_000 }, payer.body.token);
  assert.equal(claim.status, 200, JSON.stringify(claim.body));
  const { job_id: claimed, epoch } = claim.body.jobs[0];
  assert.equal(claimed, sid);
  const usage = await apiCall("POST", `/v1/jobs/${sid}/usage`, { epoch, request_id: "ui-usage-1", model: "claude-test", input_tokens: 120_000, output_tokens: 3_400, cost_micros: 2_500_000 }, payer.body.token);
  assert.equal(usage.status, 200, JSON.stringify(usage.body));
  const completed = await apiCall("POST", `/v1/jobs/${sid}/complete`, { epoch, request_id: "ui-complete-1" }, payer.body.token);
  assert.equal(completed.status, 200, JSON.stringify(completed.body));
  // Its budget ui-burst is now exhausted: a new job of that label waits, held.
  const heldJob = await apiCall("POST", "/v1/jobs", { key: "ui-held", title: "UI held", product: "ui-spend", labels: ["burst"], capabilities: ["ui-spend"], payload: { command: "true" } });
  assert.equal(heldJob.status, 201, JSON.stringify(heldJob.body));
  const hid = heldJob.body.id;

  await step("a job's cost shows on its page and in the jobs table", async () => {
    await page.goto(url + `/#/jobs/${sid}`);
    await page.locator("#job-title", { hasText: "UI spender" }).waitFor();
    const model = page.locator('[data-testid="cost-models"] tr', { hasText: "claude-test" });
    await model.waitFor();
    assert.deepEqual(await model.locator("td").allTextContents(), ["claude-test", "120,000", "3,400", "$2.50"]);
    // The payer enrolled without an hourly cost: the job cost what it reported.
    assert.equal((await apiCall("GET", `/v1/jobs/${sid}`)).body.cost.total_micros, 2_500_000);
    assert.equal(await page.locator('[data-testid="cost-total"]').textContent(), "$2.50");
    await page.locator('[data-testid="cost-budget"]', { hasText: "of $5.00 used (50 %)" }).waitFor();
    await page.locator('[data-testid="cost-budget"] .spend-bar').waitFor();
    assert.ok(await page.locator('[data-testid="held"]').isHidden(), "a job no budget holds says nothing of it");
    await page.locator("#flash").waitFor({ state: "hidden" });
    await page.screenshot({ path: `${shots}/job-cost.png`, fullPage: true });
    await audit(page, "the job page with its cost");
    await page.goto(url + "/#/jobs?product=ui-spend");
    await page.locator(`tr[data-job="${sid}"] [data-testid="cost"]`, { hasText: "$2.50" }).waitFor();
  });

  await step("a job a budget holds says why, on its page", async () => {
    await page.goto(url + `/#/jobs/${hid}`);
    await page.locator('[data-testid="held"]', { hasText: "budget ui-burst exhausted: $2.50 of $1.00, resets" }).waitFor();
    await page.locator("#job-title .badge", { hasText: "queued" }).waitFor();
  });

  await step("the Budgets page shows each budget's spend bar, state, reset and hold", async () => {
    await page.goto(url + "/#/budgets");
    const daily = page.locator('li[data-budget="ui-daily"]');
    await daily.locator('[data-testid="spend"]', { hasText: "$2.50 of $4.35 (57 %)" }).waitFor();
    await daily.locator(".badge", { hasText: "active" }).waitFor();
    // Past its alert (50 %), below its limit: the bar says so.
    await daily.locator('.spend-bar[data-level="alert"]').waitFor();
    assert.match(await daily.locator('[data-testid="resets"]').textContent(), /^Resets \d{4}-\d{2}-\d{2} 00:00 UTC \(in \d+ (min|h \d+ min)\)$/);
    assert.match(await daily.locator('[data-testid="scope"]').textContent(), /product ui-spend · all its jobs · daily/);
    assert.equal(await daily.locator('[data-testid="hold"]').count(), 0);
    const exhausted = page.locator('li[data-budget="ui-burst"]');
    await exhausted.locator(".badge", { hasText: "exhausted" }).waitFor();
    await exhausted.locator('.spend-bar[data-level="over"]').waitFor();
    await exhausted.locator('[data-testid="hold"]', { hasText: "budget ui-burst exhausted: $2.50 of $1.00" }).waitFor();
    await page.locator("#flash").waitFor({ state: "hidden" });
    await page.screenshot({ path: `${shots}/budgets.png`, fullPage: true });
    await audit(page, "the budgets page");
  });

  await step("a budget's page draws its burndown and lists its top jobs", async () => {
    await page.locator('li[data-budget="ui-daily"] a', { hasText: "ui-daily" }).click();
    await page.locator("#budget-title", { hasText: "ui-daily" }).waitFor();
    const canvas = '[data-testid="burndown-chart"] canvas';
    await page.locator(canvas).waitFor();
    const box = await page.locator(canvas).boundingBox();
    assert.ok(box.width > 200 && box.height > 100, `the chart has a size (${JSON.stringify(box)})`);
    const legend = await page.locator('[data-testid="burndown-chart"] .u-legend .u-label').allTextContents();
    for (const series of ["Spent per day", "Cumulative", "Limit", "Forecast"]) assert.ok(legend.includes(series), `series ${series} in ${legend}`);
    // The limit (red), the cumulative spend (dark blue) and the forecast (amber) are drawn.
    for (const rgb of [[185, 28, 28], [30, 58, 138], [180, 83, 9]]) await waitForColour(page, canvas, rgb);
    await page.locator('[data-testid="forecast"]', { hasText: "At the recent rate it reaches about $" }).waitFor();
    assert.equal(await page.locator('[data-testid="budget-summary"]').evaluate((el) => el.textContent.includes("null")), false);
    await page.locator('[data-testid="days"] tr', { hasText: "$2.50" }).waitFor();
    const top = page.locator(`[data-testid="top-jobs"] tr[data-job="${sid}"]`);
    await top.locator("td", { hasText: "$2.50" }).waitFor();
    await page.screenshot({ path: `${shots}/budget.png`, fullPage: true });
    await audit(page, "a budget's page");
    await top.locator("a", { hasText: "UI spender" }).click();
    await page.locator("#job-title", { hasText: "UI spender" }).waitFor();
  });

  await step("pause asks why and shows who paused; resume makes the budget active again", async () => {
    await page.goto(url + "/#/budgets");
    const card = page.locator('li[data-budget="ui-daily"]');
    await card.locator('button[data-action="pause"]').click();
    await page.getByLabel("Reason").fill("UI test: spend review");
    await audit(page, "the pause dialog");
    await page.getByRole("button", { name: "Pause budget" }).click();
    await card.locator(".badge", { hasText: "paused" }).waitFor();
    await card.locator('[data-testid="paused"]', { hasText: "UI test: spend review" }).waitFor();
    await card.locator('[data-testid="hold"]', { hasText: "budget ui-daily paused by" }).waitFor();
    assert.equal((await apiCall("GET", "/v1/budgets/ui-daily")).body.budget.state, "paused");
    // The keyboard focus comes back to the budget's button, which now resumes, redraws or not.
    await page.waitForFunction(() => document.activeElement && document.activeElement.dataset.action === "resume");
    await page.keyboard.press("Enter");
    await card.locator(".badge", { hasText: "active" }).waitFor();
    assert.equal(await card.locator('[data-testid="paused"]').count(), 0);
    assert.equal((await apiCall("GET", "/v1/budgets/ui-daily")).body.budget.state, "active");
  });

  await step("an edit with bad values shows every problem the API found and changes nothing", async () => {
    // Edit on a budget's own page opens the form of the Budgets page on it.
    await page.goto(url + "/#/budgets/ui-daily");
    await page.locator('button[data-action="edit"]').click();
    await page.locator("#budget-form-title", { hasText: "Edit budget ui-daily" }).waitFor();
    const card = page.locator('li[data-budget="ui-daily"]');
    const limit = page.getByLabel("Limit per period, in dollars");
    assert.equal(await limit.inputValue(), "4.35");
    await limit.fill("0");
    await page.getByLabel("Alert at, % of the limit").fill("150");
    await page.getByRole("button", { name: "Save budget" }).click();
    const problems = page.locator('[data-testid="budget-errors"]');
    await problems.locator("li", { hasText: "limit: must be more than $0" }).waitFor();
    await problems.locator("li", { hasText: "alert_percent: must be 1 to 100, got 150" }).waitFor();
    const after = (await apiCall("GET", "/v1/budgets/ui-daily")).body.budget;
    assert.equal(after.limit_micros, 4_350_000);
    assert.equal(after.alert_percent, 50);
    await card.locator('[data-testid="spend"]', { hasText: "of $4.35" }).waitFor();
    // What was typed stays, to be corrected; a good value then saves.
    assert.equal(await limit.inputValue(), "0");
    await audit(page, "the budgets page with a refused edit");
    await limit.fill("4.80");
    await page.getByLabel("Alert at, % of the limit").fill("50");
    await page.getByRole("button", { name: "Save budget" }).click();
    await card.locator('[data-testid="spend"]', { hasText: "of $4.80" }).waitFor();
    assert.equal((await apiCall("GET", "/v1/budgets/ui-daily")).body.budget.limit_micros, 4_800_000);
    assert.ok(await problems.isHidden(), "the problems go once it saved");
  });

  await step("delete asks first and removes the budget", async () => {
    const spare = await apiCall("PUT", "/v1/budgets/ui-spare", { product: "ui-spare", period: "month", limit_micros: 10_000_000 });
    assert.equal(spare.status, 200, JSON.stringify(spare.body));
    await page.goto(url + "/#/budgets/ui-spare");
    await page.locator("#budget-title", { hasText: "ui-spare" }).waitFor();
    await page.locator('button[data-action="delete"]').click();
    await page.getByRole("heading", { name: "Budgets", exact: true }).waitFor();
    assert.ok(dialogs.some((d) => d.startsWith("Delete budget ui-spare?")), `asked: ${dialogs.join(" | ")}`);
    assert.equal((await apiCall("GET", "/v1/budgets/ui-spare")).status, 404);
    await page.locator('li[data-budget="ui-daily"]').waitFor();
    assert.equal(await page.locator('li[data-budget="ui-spare"]').count(), 0);
    // The message goes by itself (and so stays off the next pictures).
    await page.locator("#flash").waitFor({ state: "hidden" });
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
    // Spend against the budgets, the exhausted one first.
    await page.locator('[data-testid="budgets-alert"] .value', { hasText: "2 / 2" }).waitFor();
    await page.locator('[data-testid="budget-spend"] tr').first().locator("a", { hasText: "ui-burst" }).waitFor();
    // More samples arrive while the page is open.
    await page.waitForFunction((n) => Number(document.querySelector('[data-testid="throughput-chart"]').dataset.points) > n, kept);
    await page.screenshot({ path: `${shots}/overview.png`, fullPage: true });
    await audit(page, "the overview");
  });

  await step("an engine a provider throttles shows on the overview until its reset", async () => {
    const until = Date.now() + 3600000;
    const set = await apiCall("PUT", "/v1/limits/engine:claude", { throttled_until: until });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    const far = await apiCall("PUT", "/v1/limits/engine:claude", { throttled_until: until + 30 * 86400000 });
    assert.equal(far.status, 400, "a reset further than a week is refused");
    await page.goto(url + "/#/overview");
    await page.locator('[data-testid="throttles"] li', { hasText: "claude throttled until" }).waitFor();
    await audit(page, "the overview with a throttled engine");
    assert.equal((await apiCall("DELETE", "/v1/limits/engine:claude")).status, 204);
    await page.locator('[data-testid="throttles"]').waitFor({ state: "hidden" });
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
    await vpage.goto(url + "/#/budgets");
    await vpage.locator('li[data-budget="ui-daily"] .spend-bar').waitFor();
    assert.equal(await vpage.locator("li[data-budget] button").count(), 0);
    assert.equal(await vpage.locator('[data-testid="budget-form"]').count(), 0);
    await audit(vpage, "the budgets page of a viewer");
    await vpage.goto(url + "/#/budgets/ui-daily");
    await vpage.locator('[data-testid="burndown-chart"] canvas').waitFor();
    await vpage.getByText("Read only (viewer).").waitFor();
    assert.equal(await vpage.locator("button[data-action]").count(), 0);
    assert.equal((await apiCall("POST", "/v1/budgets/ui-daily/pause", { reason: "viewer" }, viewer)).status, 403);
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
    await assertNoSidewaysScroll(npage, "the overview");
    await npage.screenshot({ path: `${shots}/overview-narrow.png`, fullPage: true });
    await audit(npage, "the overview on a narrow screen");
    await npage.goto(url + `/#/jobs/${id}`);
    await npage.locator('[data-testid="attempts"] tr[data-attempt="1"]').waitFor();
    await audit(npage, "the job detail page on a narrow screen");
    await npage.goto(url + `/#/factories/${fid}`);
    await npage.locator('[data-testid="slots"]').waitFor();
    await assertNoSidewaysScroll(npage, "the factory page");
    await audit(npage, "the factory page on a narrow screen");
    await npage.goto(url + "/#/budgets");
    await npage.locator('li[data-budget="ui-burst"] [data-testid="hold"]').waitFor();
    await assertNoSidewaysScroll(npage, "the budgets page");
    await audit(npage, "the budgets page on a narrow screen");
    await npage.goto(url + "/#/budgets/ui-daily");
    await npage.locator('[data-testid="burndown-chart"] canvas').waitFor();
    await assertNoSidewaysScroll(npage, "a budget's page");
    await npage.screenshot({ path: `${shots}/budget-narrow.png`, fullPage: true });
    await audit(npage, "a budget's page on a narrow screen");
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
finish();
