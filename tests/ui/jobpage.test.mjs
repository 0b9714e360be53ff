// The job page in a real browser against a coordinator with one real factory (started by
// tests/e2e_ui.rs): only the actions a job's state allows, on jobs queued, running, dead, in
// review and succeeded; an action's reason on the timeline; what the job runs; the logs of its
// attempts apart, searched, paused and downloaded, the heading once finished, and a dead job's
// stderr tail; a review naming other reviewers offering no decision; the whole run's graph
// coloured by state with labels cut to fit; the overview's charts saying when the coordinator
// started; axe on each page.
// Usage: node jobpage.test.mjs URL ADMIN_TOKEN VIEWER_TOKEN SCREENSHOT_DIR
import assert from "node:assert/strict";
import { TIMEOUT_MS, apiClient, assertNoSidewaysScroll, audit, launch, signIn } from "./harness.mjs";

const [url, admin, , shots] = process.argv.slice(2);
const apiCall = apiClient(url, admin);

// Review decisions sit beside the artifacts, not in the bar of actions.
const DECISIONS = ["ship", "reject", "request_changes"];

async function submit(spec) {
  const r = await apiCall("POST", "/v1/jobs", { product: "jobpage", title: spec.key, ...spec });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.id;
}

// Polls the API until job `id` is in `state` (or one of them).
async function until(id, ...states) {
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    const job = (await apiCall("GET", `/v1/jobs/${id}`)).body;
    if (states.includes(job.state)) return job;
    assert.ok(Date.now() < deadline, `job ${id} never reached ${states.join(" or ")} (it is ${job.state})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const { browser, step, finish } = await launch();

try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(TIMEOUT_MS);
  page.on("dialog", (d) => d.accept());
  await signIn(page, url, admin);

  await step("the overview's charts say the coordinator started within their hour", async () => {
    await page.locator('[data-testid="history-since"]', { hasText: "started" }).waitFor();
    assert.match(await page.locator('[data-testid="history-since"] time').textContent(), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(/);
  });

  // The bar offers exactly the API's allowed actions, less the review decisions.
  const offers = async (id, state) => {
    await page.goto(url + `/#/jobs/${id}`);
    await page.locator("#job-title .badge", { hasText: state }).waitFor();
    const job = (await apiCall("GET", `/v1/jobs/${id}`)).body;
    assert.equal(job.state, state);
    const want = job.allowed_actions.filter((a) => !DECISIONS.includes(a));
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid="actions"] button[data-action]').length === n, want.length);
    const shown = await page.locator('[data-testid="actions"] button[data-action]').evaluateAll((bs) => bs.map((b) => b.dataset.action));
    assert.deepEqual(shown, want, `a ${state} job offers ${want}`);
    return job;
  };

  const parked = await submit({ key: "parked", capabilities: ["nowhere"], payload: { command: "true" }, allowed_scope: ["src/**"], wall_clock_ms: 600000, cost_budget_micros: 2500000, engine_class: "shell", sandbox: { network: false, memory_mib: 64, cpu_millis: 500 } });
  await step("a queued job offers only cancel, and shows what it runs", async () => {
    const job = await offers(parked, "queued");
    assert.deepEqual(job.allowed_actions, ["cancel"]);
    const runs = page.locator('[data-testid="runs"]');
    await runs.locator('[data-testid="payload"]', { hasText: "true" }).waitFor();
    for (const text of ["shell", "src/**", "$2.50", "10m", "network off · 64 MiB · 0.5 CPU"]) await runs.getByText(text, { exact: false }).first().waitFor();
    await page.locator(".fields time").first().waitFor();
    assert.match(await page.locator(".fields time").first().textContent(), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \((just now|\d+.* ago)\)$/);
    await page.locator('[data-testid="queued-for"]', { hasText: "so far" }).waitFor();
    await page.locator("#actions-help", { hasText: "Requeue" }).waitFor({ state: "attached" });
    await audit(page, "a queued job's page");
  });

  // Prints on both streams, then waits: it runs until the test moves it on.
  const talker = await submit({ key: "talker", capabilities: ["linux"], payload: { command: 'echo "hello from attempt $GF_ATTEMPT"; echo "warning $GF_ATTEMPT" >&2; sleep 30' } });
  await step("a running job offers requeue and cancel, and its reason shows on the timeline", async () => {
    await until(talker, "running", "leased");
    await page.goto(url + `/#/jobs/${talker}`);
    await page.locator('[data-testid="logs"]', { hasText: "hello from attempt 1" }).waitFor();
    await page.locator('[data-testid="logs"]', { hasText: "warning 1" }).waitFor();
    await offers(talker, "running");
    await page.locator('[data-testid="running-for"]').waitFor();
    await page.locator('[data-testid="action-reason"]').fill("stuck on a slow machine");
    await page.locator('button[data-action="requeue"]').click();
    await page.locator(".timeline li[data-kind=requeue]", { hasText: "stuck on a slow machine" }).waitFor();
    assert.equal(await page.locator('[data-testid="action-reason"]').inputValue(), "", "the reason is cleared once used");
    const requeue = (await apiCall("GET", `/v1/jobs/${talker}/events`)).body.find((e) => e.kind === "requeue");
    assert.equal(requeue.detail, "stuck on a slow machine");
  });

  await step("the logs keep each attempt apart, with times, a search and a pause", async () => {
    const logs = page.locator('[data-testid="logs"]');
    await logs.getByText("hello from attempt 2").waitFor();
    await logs.getByText("warning 2").waitFor();
    const seps = await page.locator('[data-testid="log-attempt"]').evaluateAll((els) => els.map((e) => e.dataset.attempt));
    assert.deepEqual(seps, ["1", "2"]);
    assert.match(await logs.locator(".line .ts").first().textContent(), /^\d\d:\d\d:\d\d\.\d{3} $/);
    assert.equal(await page.locator("#logs-title").textContent(), "Live logs");
    await page.locator('[data-testid="logs-search"]').fill("warning");
    const visible = () => logs.locator(".line:not([hidden])").evaluateAll((ls) => ls.map((l) => l.lastChild.textContent.trim()));
    assert.deepEqual(await visible(), ["warning 1", "warning 2"]);
    await page.locator("#job-title .badge", { hasText: "running" }).waitFor();
    await page.screenshot({ path: `${shots}/job-logs.png`, fullPage: true });
    await page.locator('[data-testid="logs-search"]').fill("");
    assert.equal((await visible()).length, 4);
    // Paused, new output waits; resumed, it shows.
    await page.locator('[data-testid="logs-pause"]').click();
    assert.equal(await page.locator('[data-testid="logs-pause"]').getAttribute("aria-pressed"), "true");
    await logs.getByText("warning 2").waitFor();
    assert.equal((await apiCall("POST", `/v1/jobs/${talker}/actions/requeue`)).status, 200);
    await page.locator('[data-testid="logs-status"]', { hasText: "paused" }).waitFor();
    assert.equal(await page.locator('[data-testid="log-attempt"]').count(), 2, "nothing drawn while paused");
    await page.locator('[data-testid="logs-pause"]').click();
    await logs.getByText("hello from attempt 3").waitFor();
    assert.equal(await page.locator('[data-testid="log-attempt"]').count(), 3);
    // The download is the whole log as text.
    const [download] = await Promise.all([page.waitForEvent("download"), page.locator('[data-testid="logs-download"]').click()]);
    const text = await (await download.createReadStream()).toArray().then((cs) => Buffer.concat(cs).toString());
    for (const n of [1, 2, 3]) assert.ok(text.includes(`── attempt ${n} ──\nhello from attempt ${n}\n`), text);
    await audit(page, "a running job's page with its logs");
  });

  await step("a finished job's page says Logs, and a cancelled one offers retry and requeue", async () => {
    await page.locator('[data-testid="action-reason"]').fill("done looking");
    await page.locator('button[data-action="cancel"]').click();
    await page.locator("#logs-title", { hasText: /^Logs$/ }).waitFor();
    await offers(talker, "cancelled");
    await page.locator(".timeline li[data-kind=cancel]", { hasText: "done looking" }).waitFor();
  });

  const crasher = await submit({ key: "crasher", capabilities: ["linux"], max_attempts: 1, payload: { command: "echo 'thread main panicked: index out of bounds' >&2; exit 101" } });
  await step("a dead job offers retry and requeue, and its last error shows the end of stderr", async () => {
    await until(crasher, "dead");
    await offers(crasher, "dead");
    await page.locator('[data-testid="stderr-tail"]', { hasText: "index out of bounds" }).waitFor();
    await page.locator('[data-testid="attempt-length"]').first().waitFor();
    await page.locator(".fields dd", { hasText: "101" }).first().waitFor();
  });

  const reviewed = await submit({ key: "reviewed", capabilities: ["linux"], review: true, payload: { command: "echo ready" } });
  await step("a job in review offers its decisions beside its artifacts, then shipped only requeue", async () => {
    await until(reviewed, "review");
    await offers(reviewed, "review");
    const decision = page.locator('[data-testid="decision"]');
    for (const a of DECISIONS) await decision.locator(`button[data-action="${a}"]`).waitFor();
    await audit(page, "a job in review");
    await page.locator('[data-testid="action-reason"]').fill("looks right");
    await decision.locator('button[data-action="ship"]').click();
    await page.locator(".timeline li[data-kind=ship]", { hasText: "looks right" }).waitFor();
    await offers(reviewed, "shipped");
  });

  const named = await submit({ key: "named-reviewers", capabilities: ["linux"], review: true, reviewers: ["someone-else"], payload: { command: "true" } });
  await step("a review that names other reviewers offers the caller no decision", async () => {
    await until(named, "review");
    await page.goto(url + `/#/jobs/${named}`);
    const decision = page.locator('[data-testid="decision"]');
    await decision.locator('[data-testid="not-a-reviewer"]', { hasText: "someone-else" }).waitFor();
    assert.equal(await decision.locator("button[data-action]").count(), 0);
    await audit(page, "a review the caller may not decide");
  });

  const quick = await submit({ key: "quick", capabilities: ["linux"], payload: { command: "true" } });
  await step("a succeeded job offers only requeue", async () => {
    await until(quick, "succeeded");
    const job = await offers(quick, "succeeded");
    assert.deepEqual(job.allowed_actions, ["requeue"]);
  });

  await step("the graph shows the whole run coloured by state, labels cut to fit", async () => {
    const manifest = `product = "jobpage"
[[jobs]]
key = "root-of-the-run-with-a-long-name"
title = "Root"
command = "true"
capabilities = ["linux"]
[[jobs]]
key = "breaks"
title = "Breaks"
command = "exit 1"
max_attempts = 1
capabilities = ["linux"]
deps = ["root-of-the-run-with-a-long-name"]
[[jobs]]
key = "after-break"
title = "After break"
command = "true"
deps = ["breaks"]
[[jobs]]
key = "waits"
title = "Waits"
command = "true"
capabilities = ["nowhere"]
deps = ["root-of-the-run-with-a-long-name"]
[[jobs]]
key = "last"
title = "Last"
command = "true"
deps = ["waits"]
`;
    const res = await fetch(url + "/v1/manifests", { method: "POST", headers: { Authorization: `Bearer ${admin}`, "Content-Type": "application/toml" }, body: manifest });
    const made = await res.json();
    assert.equal(res.status, 200, JSON.stringify(made));
    const ids = Object.fromEntries(made.jobs);
    await until(ids["breaks"], "dead");
    await until(ids["waits"], "queued");
    // From a grandchild: its ancestors (and their descendants' line through it) are drawn.
    await page.goto(url + `/#/jobs/${ids["last"]}`);
    await page.locator(`.dag a[data-key="${ids["root-of-the-run-with-a-long-name"]}"]`).waitFor();
    await page.goto(url + `/#/jobs/${ids["root-of-the-run-with-a-long-name"]}`);
    const states = { "root-of-the-run-with-a-long-name": "succeeded", breaks: "dead", "after-break": "cancelled", waits: "queued", last: "pending" };
    for (const [key, state] of Object.entries(states)) await page.locator(`.dag a[data-key="${ids[key]}"][data-state="${state}"]`).waitFor();
    const fill = (key) => page.locator(`.dag a[data-key="${ids[key]}"] rect`).evaluate((r) => getComputedStyle(r).fill);
    const fills = {};
    for (const key of Object.keys(states)) fills[key] = await fill(key);
    assert.notEqual(fills.breaks, fills.last, "dead is not drawn as pending");
    assert.notEqual(fills.waits, fills.breaks);
    assert.notEqual(fills["root-of-the-run-with-a-long-name"], fills.last);
    // The long key is cut inside its box, whole in the tooltip.
    const root = page.locator(`.dag a[data-key="${ids["root-of-the-run-with-a-long-name"]}"]`);
    const label = await root.locator("text").textContent();
    assert.ok(label.endsWith("…"), label);
    assert.ok((await root.locator("title").textContent()).includes("root-of-the-run-with-a-long-name"));
    const fits = await root.evaluate((a) => a.querySelector("text").getBBox().width <= a.querySelector("rect").getBBox().width);
    assert.ok(fits, "the label fits its box");
    await page.locator(".dag").screenshot({ path: `${shots}/job-run.png` });
    await audit(page, "a job page with its run");
  });
  await step("on a phone the job page does not scroll sideways and its actions are reachable", async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 } });
    const p = await phone.newPage();
    p.setDefaultTimeout(TIMEOUT_MS);
    await signIn(p, url, admin);
    await p.goto(url + `/#/jobs/${talker}`);
    await p.locator('[data-testid="actions"] button[data-action="retry"]').waitFor();
    await p.locator('[data-testid="logs"]', { hasText: "hello from attempt 3" }).waitFor();
    await p.locator(".dag svg").waitFor();
    await assertNoSidewaysScroll(p, "a job page on a phone");
    for (const a of ["retry", "requeue"]) {
      const box = await p.locator(`[data-testid="actions"] button[data-action="${a}"]`).boundingBox();
      assert.ok(box.x >= 0 && box.x + box.width <= 390, `${a} is on screen (${JSON.stringify(box)})`);
    }
    await audit(p, "a job page on a phone");
    await phone.close();
  });
  finish();
} finally {
  await browser.close();
}
