// A job's page (#/jobs/ID): its fields, why it is not running (`waiting.js`), the files its attempts saved
// (beside the review's decision while it waits for review: its approvals, Ship or Approve,
// Request changes and Reject), the tracker item it came from with its
// deliveries, lease countdown, score breakdown, cost, attempts with their lengths, logs
// (`joblogs.js`), timeline, the whole run's graph (`dag.js`) and the actions its state allows
// (`jobactions.js`), and first its open question to an operator (`question.js`). Times show the date and how long ago (`when.js`).

import { h, api, every, rerender, fmtTime, badge, flash, canAct, app, connection, REFRESH_MS, LEASED, TERMINAL } from "./lib.js";
import { when, fmtDuration, fmtDate } from "./when.js";
import { logsPanel } from "./joblogs.js";
import { actionsPanel } from "./jobactions.js";
import { drawDag } from "./dag.js";
import { fmtUsd, percentOf, spendBar } from "./money.js";
import { artifactsPanel } from "./artifacts.js";
import { itemPanel } from "./item.js";
import { waitingPanel } from "./waiting.js";
import { questionPanel } from "./question.js";

// Events fetched per request; a job's timeline is read incrementally.
const EVENTS_PAGE = 500;

// The attempts of a job from its timeline: each claim starts one (attempt n is the nth claim,
// as the job's `attempts` counts them); it ends with the first event after which the job holds
// no lease under that epoch (complete, fail, release, expire, cancel, ...).
function attemptsOf(events) {
  const attempts = [];
  let open = null;
  for (const e of events) {
    if (e.kind === "claim") {
      open = { n: attempts.length + 1, factory: e.factory_id, epoch: e.epoch, started: e.at, end: null };
      attempts.push(open);
    } else if (open && (e.epoch !== open.epoch || !LEASED.includes(e.state))) {
      open.end = e;
      open = null;
    }
  }
  return attempts;
}

// What job `job` has cost: the total, factory time, its own cost budget and how much of it is
// used, and each model with its tokens.
function drawCost(el, job) {
  const c = job.cost;
  const cap = job.cost_budget_micros;
  const row = (k, v, testid) => [h("dt", {}, k), h("dd", { "data-testid": testid }, v)];
  const budget = cap
    ? [`${fmtUsd(c.total_micros)} of ${fmtUsd(cap)} used (${percentOf(c.total_micros, cap)} %)`, spendBar({ spent: c.total_micros, limit: cap, label: "Cost budget used" })]
    : "none";
  const models = c.models.map((m) => h("tr", {}, h("td", {}, m.model), h("td", {}, m.input_tokens.toLocaleString("en-US")), h("td", {}, m.output_tokens.toLocaleString("en-US")), h("td", {}, fmtUsd(m.micros))));
  const col = (label) => h("th", { scope: "col" }, label);
  el.replaceChildren(
    h("dl", { class: "fields" }, ...row("Total", h("strong", {}, fmtUsd(c.total_micros)), "cost-total"), ...row("Factory time", fmtUsd(c.factory_micros), "cost-factory"), ...row("Cost budget", budget, "cost-budget")),
    h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Cost by model", "data-key": "cost-models" }, h("table", {}, h("thead", {}, h("tr", {}, col("Model"), col("Input tokens"), col("Output tokens"), col("Cost"))), h("tbody", { "data-testid": "cost-models" }, ...(models.length ? models : [h("tr", {}, h("td", { colspan: 4 }, "No model usage reported."))])))),
  );
}

export function jobPage(main, id) {
  const fields = h("dl", { class: "fields" });
  const lease = h("p", { "data-testid": "lease" }, "No lease.");
  const expiresIn = h("span");
  const held = h("p", { class: "hold", "data-testid": "held", hidden: true });
  const cost = h("div", { "data-testid": "cost" });
  const score = h("tbody");
  const attempts = h("tbody", { "data-testid": "attempts" });
  const timeline = h("ol", { class: "timeline", tabindex: "0", "aria-label": "Timeline" });
  const logs = logsPanel(id);
  const actions = actionsPanel(id, () => load());
  // What the job runs and its limits.
  const runs = h("dl", { class: "fields", "data-testid": "runs" });
  const dag = h("div", { class: "dag" });
  const artifacts = artifactsPanel(id);
  // Ship and Reject beside what the job saved, while it waits for review.
  const decision = h("div", { class: "decision", role: "group", "aria-labelledby": "decision-title", "data-testid": "decision", hidden: true });
  const artifactsTitle = h("h2", { id: "artifacts-title" }, "Artifacts");
  const artifactsCard = h("section", { class: "card", hidden: true, "aria-labelledby": "artifacts-title", "data-testid": "artifacts-card" }, artifactsTitle, h("div", { class: "review-layout" }, artifacts.el, decision));
  const item = itemPanel(id);
  const waiting = waitingPanel(id);
  const question = questionPanel(id, () => load());
  const col = (label) => h("th", { scope: "col" }, label);
  main.append(
    h("p", {}, h("a", { href: "#/jobs" }, "← Jobs")),
    h("h1", { id: "job-title" }, "Job"),
    question.el,
    actions.el,
    held,
    waiting.el,
    artifactsCard,
    item.el,
    h("section", { class: "card" }, h("h2", {}, "What it runs"), runs),
    h("div", { class: "grid2" }, h("section", { class: "card" }, h("h2", {}, "Fields"), fields, lease), h("section", { class: "card" }, h("h2", {}, "Why this factory"), h("table", {}, h("thead", {}, h("tr", {}, col("Factor"), col("Raw"), col("Weight"), col("Contribution"))), score))),
    h("section", { class: "card" }, h("h2", {}, "Cost"), cost),
    h("section", { class: "card" }, h("h2", { id: "attempts-title" }, "Attempts"), h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-labelledby": "attempts-title" }, h("table", {}, h("thead", {}, h("tr", {}, col("Attempt"), col("Factory"), col("Epoch"), col("Started"), col("Ended"), col("Length"), col("Outcome"), col("Error"))), attempts))),
    logs.el,
    h("div", { class: "grid2" }, h("section", { class: "card" }, h("h2", {}, "Timeline"), timeline), h("section", { class: "card" }, h("h2", {}, "The run"), dag)),
  );
  let job = null;
  // Every event of the job read so far, in order: each refresh reads only the newer ones.
  const events = [];
  const loadEvents = async () => {
    for (;;) {
      const after = events.length ? `&after=${events[events.length - 1].seq}` : "";
      const page = await api("GET", `/v1/jobs/${id}/events?limit=${EVENTS_PAGE}${after}`);
      if (page.length < EVENTS_PAGE) {
        events.push(...page);
        return;
      }
      // A full page may end inside the events of one write (they share a seq, and `after`
      // skips a whole seq): keep that write for the next page.
      const last = page[page.length - 1].seq;
      events.push(...page.filter((e) => e.seq !== last));
    }
  };
  // Factory names by id, for the attempts; read again when an attempt names an unknown one.
  let factoryNames = new Map();
  const factoryName = async (fid) => {
    if (!factoryNames.has(fid)) factoryNames = new Map((await api("GET", "/v1/factories")).map((f) => [f.id, f.name]));
    return factoryNames.get(fid) || fid;
  };
  // While the coordinator cannot be reached the lease is not known to run out: the countdown
  // stops where it was (the page marks it stale) and goes on from the next answer.
  const tick = () => {
    if (connection.since !== null) return;
    if (job && job.lease) expiresIn.textContent = String(Math.max(0, Math.round((job.lease.expires_at - Date.now()) / 1000)));
  };
  const countdown = setInterval(tick, 500);
  app.cleanups.push(() => clearInterval(countdown));
  // The lease drawn ("factory:epoch"): the line is redrawn only when it changes, so its link
  // keeps the keyboard focus while the countdown runs.
  let leaseDrawn = null;
  const drawLease = async () => {
    const l = job.lease;
    const key = l ? `${l.factory_id}:${l.epoch}` : null;
    if (key !== leaseDrawn) {
      const parts = l ? ["Lease: factory ", h("a", { href: `#/factories/${l.factory_id}`, "data-key": "lease-factory" }, await factoryName(l.factory_id)), `, epoch ${l.epoch}, expires in `, expiresIn, " s"] : ["No lease."];
      rerender(lease, () => lease.replaceChildren(...parts));
      leaseDrawn = key;
    }
    tick();
  };
  // Sends the job back for a new attempt with the reason the reviewer gives (the attempt gets
  // it as GF_REVIEW_FEEDBACK); the API's refusal (an empty reason, not a reviewer) is shown.
  const requestChanges = async () => {
    const reason = prompt("What should the next attempt change?");
    if (reason === null) return;
    try {
      await api("POST", `/v1/jobs/${id}/actions/request_changes`, { reason });
      flash("request changes: done, the job runs again", "ok");
      await load();
    } catch (e) {
      flash(e.message);
    }
  };
  // Whether the job was in review at the last redraw: the decision is drawn only when that
  // changes, so its focused button keeps the focus; its approvals line is redrawn each time.
  let inReview = false;
  const approvalsLine = h("p", { "data-testid": "approvals" });
  const drawApprovals = () => {
    const given = job.approvals || [];
    const who = given.map((a, i) => [i ? ", " : "", h("span", { title: fmtTime(a.at) }, a.by)]).flat();
    const reviewers = job.reviewers && job.reviewers.length ? ` (reviewers: ${job.reviewers.join(", ")})` : "";
    const text = [h("strong", {}, "Approvals: "), `${given.length} of ${job.approvals_required}`, ...(who.length ? [" — ", ...who] : []), reviewers];
    rerender(approvalsLine, () => approvalsLine.replaceChildren(...text));
  };
  const drawReview = (on, attempt) => {
    inReview = on;
    artifactsTitle.textContent = on ? "Review what it saved" : "Artifacts";
    artifactsCard.classList.toggle("review", on);
    decision.hidden = !on;
    // With more than one approval needed, each operator's Ship is an approval.
    const several = job.approvals_required > 1;
    const ship = several ? "Approve" : "Ship";
    // A job that names its reviewers may be decided only by them (the API refuses others).
    const reviewer = !job.reviewers.length || job.reviewers.includes(me);
    const buttons = !canAct()
      ? [h("p", { class: "muted" }, "Only an operator can ship or reject.")]
      : !reviewer
      ? [h("p", { class: "muted", "data-testid": "not-a-reviewer" }, `Only its reviewers (${job.reviewers.join(", ")}) may decide this review; you are ${me}.`)]
      : [
          h("button", { type: "button", "data-action": "ship", onclick: () => actions.act("ship", ship.toLowerCase()) }, ship),
          h("button", { type: "button", class: "secondary", "data-action": "request_changes", onclick: requestChanges }, "Request changes"),
          h("button", { type: "button", class: "secondary", "data-action": "reject", onclick: () => actions.act("reject") }, "Reject"),
        ];
    const counts = several ? `Approve counts toward the ${job.approvals_required} approvals it needs to ship what attempt ${attempt} saved` : `Ship accepts what attempt ${attempt} saved`;
    const explain = `This job waits for review. ${counts}; Request changes runs it again with your reason; Reject ends the job. The reason typed above the page goes with Ship and Reject.`;
    decision.replaceChildren(...(on ? [h("h3", { id: "decision-title" }, "Decision"), h("p", {}, explain), approvalsLine, ...buttons] : []));
  };
  // How long the job waited before its first claim (or has waited so far), and how long its
  // current lease has run.
  const durations = () => {
    const claim = events.find((e) => e.kind === "claim");
    const waited = fmtDuration((claim ? claim.at : Date.now()) - job.created_at);
    const queued = claim ? waited : TERMINAL.includes(job.state) ? `never claimed (ended after ${waited})` : `${waited} so far`;
    const out = [h("dt", {}, "Queued for"), h("dd", { "data-testid": "queued-for" }, queued)];
    if (job.lease) out.push(h("dt", {}, "Running for"), h("dd", { "data-testid": "running-for" }, fmtDuration(Date.now() - job.lease.granted_at)));
    return out;
  };
  // What the job's sandbox allows, in one line: "network off · 64 MiB · 0.5 CPU".
  const sandboxText = (s) => [s.network ? "network on" : "network off", s.memory_mib ? `${s.memory_mib} MiB` : "no memory limit", s.cpu_millis ? `${s.cpu_millis / 1000} CPU` : "no CPU limit"].join(" · ");
  let dagDrawn = null;
  // The caller's token name: a review that names its reviewers is decided by them only.
  let me = null;
  async function load() {
    if (me === null) me = (await api("GET", "/v1/whoami")).name;
    job = await api("GET", `/v1/jobs/${id}`);
    document.getElementById("job-title").replaceChildren(job.title, " ", badge(job.state));
    const row = (k, v) => [h("dt", {}, k), h("dd", {}, v ?? "–")];
    const lastError = job.last_error && /^exit status/.test(job.last_error) && logs.stderrTail(job.attempts) ? [job.last_error, h("pre", { class: "stderr-tail", "data-testid": "stderr-tail", "aria-label": "The end of its stderr" }, logs.stderrTail(job.attempts))] : job.last_error;
    fields.replaceChildren(...row("Id", job.id), ...row("Key", job.key), ...row("Product", job.product), ...row("Stage", job.stage), ...row("Priority", job.priority), ...row("Capabilities", job.capabilities.join(", ")), ...row("Labels", job.labels.join(", ") || "none"), ...row("Attempts", `${job.attempts} (failures ${job.failures} of ${job.max_attempts})`), ...row("Epoch", job.epoch), ...row("Created", when(job.created_at)), ...row("Updated", when(job.updated_at)), ...durations(), ...row("Exit code", job.exit_code), ...row("Last error", lastError), ...row("Checkpoint", job.checkpoint), ...(job.review_feedback ? row("Review feedback", job.review_feedback) : []));
    const payload = job.payload.command !== undefined ? ["Command", h("code", { "data-testid": "payload" }, job.payload.command)] : ["Prompt", h("pre", { class: "prompt", "data-testid": "payload" }, job.payload.prompt)];
    const wall = job.wall_clock_ms ? `${fmtDuration(job.wall_clock_ms)} (used ${fmtDuration(job.run_ms + (job.lease ? Date.now() - job.lease.granted_at : 0))})` : "none";
    rerender(runs, () => runs.replaceChildren(...row(...payload), ...row("Engine class", job.engine_class || "any"), ...row("Allowed scope", job.allowed_scope.length ? job.allowed_scope.join(", ") : "anywhere"), ...row("Cost budget", job.cost_budget_micros ? fmtUsd(job.cost_budget_micros) : "none"), ...row("Wall-clock budget", wall), ...row("Sandbox", sandboxText(job.sandbox)), ...(job.repo ? row("Repository", h("code", { "data-testid": "repo" }, `${job.repo.url} @ ${job.repo.rev}`)) : [])));
    question.refresh(job);
    actions.refresh(job);
    logs.refresh(job);
    held.hidden = !job.held;
    held.replaceChildren(h("strong", {}, "Held: "), job.held || "");
    rerender(cost, () => drawCost(cost, job));
    if ((job.state === "review") !== inReview) drawReview(job.state === "review", job.attempts);
    if (inReview) drawApprovals();
    const saved = await artifacts.refresh(job);
    artifactsCard.hidden = saved === 0 && !inReview;
    await item.refresh(job);
    await waiting.refresh(job);
    const factors = (job.placement && job.placement.factors) || [];
    await drawLease();
    score.replaceChildren(...factors.map((f) => h("tr", {}, h("td", {}, f.name), h("td", {}, f.raw.toFixed(3)), h("td", {}, f.weight.toFixed(2)), h("td", {}, f.contribution.toFixed(3)))), factors.length ? h("tr", {}, h("th", {}, "Total"), h("td"), h("td"), h("th", {}, job.placement.total.toFixed(3))) : h("tr", {}, h("td", { colspan: 4 }, "Not placed yet.")));
    await loadEvents();
    timeline.replaceChildren(...events.map((e) => h("li", { "data-kind": e.kind }, h("time", { title: fmtDate(e.at) }, fmtTime(e.at)), ` ${e.kind} `, badge(e.state), h("span", { class: "muted" }, ` epoch ${e.epoch} · ${e.actor}${e.detail ? " · " + e.detail : ""}`))));
    const rows = [];
    for (const a of attemptsOf(events)) {
      const end = a.end;
      rows.push(h("tr", { "data-attempt": a.n }, h("td", {}, a.n), h("td", {}, h("a", { href: `#/factories/${a.factory}`, "data-key": `attempt-${a.n}` }, await factoryName(a.factory))), h("td", {}, a.epoch), h("td", {}, h("span", { title: fmtDate(a.started) }, fmtTime(a.started))), h("td", {}, end ? h("span", { title: fmtDate(end.at) }, fmtTime(end.at)) : "–"), h("td", { "data-testid": "attempt-length" }, fmtDuration((end ? end.at : Date.now()) - a.started)), h("td", { class: "outcome" }, end ? [`${end.kind} → `, badge(end.state)] : badge(job.state)), h("td", {}, end && end.kind === "fail" ? end.detail : "")));
    }
    rerender(attempts, () => attempts.replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 8 }, "Not claimed yet."))])));
    const view = await api("GET", `/v1/jobs/${id}/dag`);
    const drawn = JSON.stringify(view);
    if (drawn !== dagDrawn) rerender(dag, () => drawDag(dag, view));
    dagDrawn = drawn;
  }
  every(REFRESH_MS, load);
}
