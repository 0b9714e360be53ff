// The Secrets page in a real browser against a coordinator with a secrets key (started by
// tests/e2e_ui.rs): an operator sets a secret in the form, it is listed with its version and
// who set it, its value is nowhere in the page (text, markup, any input's value) after saving
// nor after a reload; a refused one shows the API's error; it is deleted after a confirmation;
// a viewer gets no form; axe on the page.
// Usage: node secrets.test.mjs URL ADMIN_TOKEN VIEWER_TOKEN SCREENSHOT_DIR
import assert from "node:assert/strict";
import { TIMEOUT_MS, apiClient, audit, launch, signIn } from "./harness.mjs";

const [url, admin, viewer, shots] = process.argv.slice(2);
const apiCall = apiClient(url, admin);
// Several lines, as a pasted key file is: they must reach the API as typed.
const SECRET_LINE = "sk-ui-test/Zq8+value&never?shown 9";
const VALUE = `-----BEGIN TEST KEY-----\n${SECRET_LINE}\n-----END TEST KEY-----\n`;
const ROTATED = "sk-ui-test/rotated+value&never 10";

const { browser, step, finish } = await launch();

// Whether `value` is anywhere in the page: its text, its markup, or any field's value.
async function pageHolds(page, value) {
  return page.evaluate((v) => {
    const fields = [...document.querySelectorAll("input, textarea, select")].map((el) => el.value);
    return document.documentElement.outerHTML.includes(v) || document.body.innerText.includes(v) || fields.some((f) => f.includes(v));
  }, value);
}

try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(TIMEOUT_MS);
  const dialogs = [];
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    d.accept();
  });
  // What the page sends to set a secret: the value must arrive whole, line breaks too.
  const puts = [];
  page.on("request", (r) => {
    if (r.method() === "PUT" && r.url().includes("/v1/secrets/")) puts.push(r.postDataJSON());
  });
  await signIn(page, url, admin);
  const row = page.locator('[data-secret="ui//UI_API_KEY"]');

  await step("the nav leads to the Secrets page", async () => {
    await page.getByRole("link", { name: "Secrets" }).click();
    await page.getByRole("heading", { name: "Secrets" }).waitFor();
    await page.getByText("No secrets yet.").waitFor();
  });

  await step("a secret set in the form is listed, and its value is gone from the page", async () => {
    const value = page.getByLabel("Value");
    // A text area (a password field would drop the line breaks) the browser neither fills
    // nor remembers.
    assert.equal(await value.evaluate((el) => el.tagName), "TEXTAREA");
    assert.equal(await value.getAttribute("autocomplete"), "off");
    assert.equal(await value.getAttribute("spellcheck"), "false");
    await page.getByLabel("Product").fill("ui");
    await page.getByLabel("Name").fill("UI_API_KEY");
    await value.fill(VALUE);
    await page.getByRole("button", { name: "Save secret" }).click();
    await row.waitFor();
    await row.locator("td", { hasText: "admin:admin" }).waitFor();
    assert.equal(await row.locator('[data-label="Version"]').textContent(), "1");
    assert.equal(await value.inputValue(), "", "the value field is cleared once saved");
    assert.equal(puts.length, 1);
    assert.equal(puts[0].value, VALUE, "the PUT carries the value with its line breaks");
    assert.equal(await pageHolds(page, SECRET_LINE), false, "the value is not in the page");
    const listed = await apiCall("GET", "/v1/secrets?product=ui");
    assert.equal(listed.body.length, 1);
    assert.ok(!JSON.stringify(listed.body).includes(SECRET_LINE));
  });

  await step("setting it again rotates it, and still nothing shows the value", async () => {
    await page.getByLabel("Product").fill("ui");
    await page.getByLabel("Name").fill("UI_API_KEY");
    await page.getByLabel("Value").fill(ROTATED);
    await page.getByRole("button", { name: "Save secret" }).click();
    await row.locator('[data-label="Version"]', { hasText: "2" }).waitFor();
    await page.reload();
    await row.waitFor();
    for (const v of [SECRET_LINE, ROTATED]) assert.equal(await pageHolds(page, v), false, "not after a reload either");
    await audit(page, "the secrets page");
    await page.screenshot({ path: `${shots}/secrets.png`, fullPage: true });
  });

  await step("a refused secret shows the API's error and changes nothing", async () => {
    await page.getByLabel("Product").fill("ui");
    await page.getByLabel("Name").fill("UI_SHORT");
    await page.getByLabel("Value").fill("short");
    await page.getByRole("button", { name: "Save secret" }).click();
    const problem = page.locator('[data-testid="secret-errors"]');
    await problem.waitFor();
    assert.match(await problem.textContent(), /invalid_request: .*8 to 65536 bytes/);
    assert.equal((await apiCall("GET", "/v1/secrets")).body.length, 1);
  });

  await step("a viewer sees the list without a form or a delete button", async () => {
    const viewerCtx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const viewerPage = await viewerCtx.newPage();
    viewerPage.setDefaultTimeout(TIMEOUT_MS);
    await signIn(viewerPage, url, viewer);
    await viewerPage.goto(url + "/#/secrets");
    await viewerPage.locator('[data-secret="ui//UI_API_KEY"]').waitFor();
    assert.equal(await viewerPage.locator('[data-testid="secret-form"]').count(), 0);
    assert.equal(await viewerPage.locator('[data-action="delete"]').count(), 0);
    await viewerCtx.close();
  });

  await step("a secret is deleted after a confirmation", async () => {
    await row.getByRole("button", { name: "Delete UI_API_KEY of ui" }).click();
    await page.getByText("No secrets yet.").waitFor();
    assert.ok(dialogs.some((m) => m.includes("Delete secret UI_API_KEY of ui")), dialogs.join("\n"));
    assert.equal((await apiCall("GET", "/v1/secrets")).body.length, 0);
  });

  finish();
} finally {
  await browser.close();
}
