// Gigafactory's control plane: a small single-page app over the REST API. Hash routes
// (#/overview, #/jobs, #/jobs/ID, #/factories, #/factories/ID, #/weights); the operator's token
// lives in sessionStorage (never in a URL) and goes in the Authorization header of every
// request, including the SSE streams, which are read with fetch for that reason.
"use strict";

const TOKEN_KEY = "gigafactory.token";
const REFRESH_MS = 2000;
const TERMINAL = ["succeeded", "shipped", "rejected", "dead", "cancelled"];
const STATES = ["pending", "queued", "failed", "leased", "running", "preempting", "review", ...TERMINAL];
// States in which a job holds a lease: an attempt lasts while its job is in one of them.
const LEASED = ["leased", "running", "preempting"];
// Points a chart keeps: by default the server keeps an hour of samples (720 at 5 s).
const CHART_POINTS_MAX = 720;
// Events fetched per request; a job's timeline is read incrementally.
const EVENTS_PAGE = 500;
// Pages of the job table (each scans a bounded slice of it on the server) read for a
// factory's current jobs on each refresh; past this the page says the list may be partial.
const FACTORY_JOBS_PAGES_MAX = 20;

const app = {
  token: sessionStorage.getItem(TOKEN_KEY),
  role: null,
  // Work of the current page that must stop when the page changes.
  cleanups: [],
};

// ---- small helpers ----

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// Replaces `el`'s content with what `render` puts there without losing the keyboard focus: if
// an element inside had it, the new element with the same data-key gets it back. Pages redraw
// every few seconds; without this a keyboard user would be thrown out of a table each time.
function rerender(el, render) {
  const active = document.activeElement;
  const key = active && el.contains(active) ? active.dataset.key : undefined;
  render();
  if (key === undefined) return;
  const again = el.querySelector(`[data-key="${CSS.escape(key)}"]`);
  if (again) again.focus();
}

function fmtTime(ms) {
  return ms ? new Date(ms).toLocaleTimeString() : "–";
}

function badge(state) {
  return h("span", { class: `badge state-${state}` }, state);
}

function flash(message, kind = "error") {
  const el = document.getElementById("flash");
  el.textContent = message;
  el.className = `flash ${kind}`;
  el.hidden = false;
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => (el.hidden = true), 8000);
}

function canAct() {
  return app.role === "admin" || app.role === "operator";
}

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? `${body.error}: ${body.message}` : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${app.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (_) {
    data = null;
  }
  if (!res.ok) {
    if (res.status === 401 && path !== "/v1/whoami") signOut("Your token was refused; sign in again.");
    throw new ApiError(res.status, data);
  }
  return data;
}

// Reads a server-sent event stream through fetch (EventSource cannot send a token), and
// reconnects with Last-Event-ID after a drop, so no event is lost or repeated.
function followSse(path, onEvent) {
  const ctl = new AbortController();
  let lastId = null;
  let stopped = false;
  (async () => {
    let backoff = 500;
    while (!stopped) {
      try {
        const headers = { Authorization: `Bearer ${app.token}`, Accept: "text/event-stream" };
        if (lastId) headers["Last-Event-ID"] = lastId;
        const res = await fetch(path, { headers, signal: ctl.signal });
        if (!res.ok) throw new ApiError(res.status, null);
        backoff = 500;
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += decoder.decode(value, { stream: true });
          let cut;
          while ((cut = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            const ev = { id: null, event: "message", data: "" };
            for (const line of block.split("\n")) {
              if (line.startsWith("id:")) ev.id = line.slice(3).trim();
              else if (line.startsWith("event:")) ev.event = line.slice(6).trim();
              else if (line.startsWith("data:")) ev.data += line.slice(5).trimStart();
            }
            if (ev.id) lastId = ev.id;
            if (ev.data) onEvent(ev);
          }
        }
      } catch (e) {
        if (stopped) return;
      }
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 10000);
    }
  })();
  return () => {
    stopped = true;
    ctl.abort();
  };
}

function every(ms, fn) {
  let alive = true;
  const tick = async () => {
    if (!alive) return;
    try {
      await fn();
    } catch (e) {
      if (!(e instanceof ApiError)) console.error(e);
    }
    if (alive) timer = setTimeout(tick, ms);
  };
  let timer = setTimeout(tick, 0);
  app.cleanups.push(() => {
    alive = false;
    clearTimeout(timer);
  });
}

// ---- sign in ----

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  app.token = null;
  app.role = null;
  location.hash = "#/login";
  if (message) flash(message);
}

function loginPage(main) {
  const input = h("input", { id: "token", type: "password", autocomplete: "off", required: true, placeholder: "gf_…" });
  const form = h(
    "form",
    {
      class: "card login",
      onsubmit: async (e) => {
        e.preventDefault();
        app.token = input.value.trim();
        try {
          const me = await api("GET", "/v1/whoami");
          if (me.role === "factory" || me.role === "enrollment") throw new ApiError(403, { error: "forbidden", message: "use an operator, viewer or admin token" });
          sessionStorage.setItem(TOKEN_KEY, app.token);
          location.hash = "#/overview";
        } catch (err) {
          app.token = null;
          flash(err.message);
        }
      },
    },
    h("h1", {}, "Sign in"),
    h("p", {}, "Paste an admin, operator or viewer token. It stays in this tab only."),
    h("label", { for: "token" }, "Token"),
    input,
    h("button", { type: "submit" }, "Sign in"),
  );
  main.append(form);
  input.focus();
}

// ---- overview ----

// A time series chart (uPlot). `add` appends a point (null values leave a gap), `draw` shows
// what was added; the chart's element carries the number of points for the tests.
function chart(el, title, series) {
  const width = Math.max(280, Math.min(el.clientWidth || 600, 900));
  const opts = {
    title,
    width,
    height: 180,
    series: [{}, ...series.map((label, i) => ({ label, stroke: ["#2563eb", "#b91c1c", "#047857"][i], width: 2 }))],
    axes: [{}, { size: 50 }],
  };
  const data = [[], ...series.map(() => [])];
  const plot = new uPlot(opts, data, el);
  return {
    add(t, values) {
      data[0].push(t);
      values.forEach((v, i) => data[i + 1].push(v ?? null));
      while (data[0].length > CHART_POINTS_MAX) data.forEach((d) => d.shift());
    },
    draw() {
      plot.setData(data);
      el.dataset.points = String(data[0].length);
    },
  };
}

function overviewPage(main) {
  const cards = h("div", { class: "cards" });
  const byProduct = h("tbody");
  const byCap = h("tbody");
  const events = h("ol", { class: "events", "aria-live": "polite", tabindex: "0", "aria-label": "Recent events" });
  const tChart = h("div", { class: "chart", "data-testid": "throughput-chart" });
  const lChart = h("div", { class: "chart", "data-testid": "latency-chart" });
  main.append(
    h("h1", {}, "Overview"),
    cards,
    h(
      "div",
      { class: "grid2" },
      h("section", { class: "card" }, h("h2", {}, "Throughput, last hour"), tChart),
      h("section", { class: "card" }, h("h2", {}, "Claim latency, last hour"), lChart),
    ),
    h(
      "div",
      { class: "grid2" },
      h("section", { class: "card" }, h("h2", {}, "Queue by product"), h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Product"), h("th", {}, "Queued"))), byProduct)),
      h("section", { class: "card" }, h("h2", {}, "Queue by capability"), h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Capability"), h("th", {}, "Queued"))), byCap)),
    ),
    h("section", { class: "card" }, h("h2", {}, "Recent events"), events),
  );
  const throughput = chart(tChart, "jobs per second", ["finished/s", "claimed/s"]);
  const latency = chart(lChart, "placement → lease committed (ms)", ["p50", "p99"]);
  // The node keeps the last hour of samples: the charts start with it, then append each new
  // sample as it is taken.
  let lastSampleAt = null;
  const loadSamples = async () => {
    const history = await api("GET", `/v1/stats/history${lastSampleAt === null ? "" : `?after=${lastSampleAt}`}`);
    for (const s of history.samples) {
      const t = s.at / 1000;
      throughput.add(t, [s.finished_per_s, s.claims_per_s]);
      latency.add(t, [s.claim_latency_p50_ms, s.claim_latency_p99_ms]);
      lastSampleAt = s.at;
    }
    throughput.draw();
    latency.draw();
  };
  every(REFRESH_MS, async () => {
    const s = await api("GET", "/v1/stats");
    cards.replaceChildren(
      stat("Factories online", s.factories_online, "factories-online"),
      stat("Draining", s.factories_draining),
      stat("Offline", s.factories_offline),
      stat("Slots busy", `${s.slots_busy} / ${s.slots}`, "slots"),
      stat("Queued", s.queued, "queued"),
      stat("Running", s.running),
    );
    const rows = (m) => Object.entries(m).map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, v)));
    byProduct.replaceChildren(...rows(s.queued_by_product));
    byCap.replaceChildren(...rows(s.queued_by_capability));
    await loadSamples();
  });
  const stop = followSse("/v1/events", (ev) => {
    const e = JSON.parse(ev.data);
    const item = h(
      "li",
      {},
      h("time", {}, fmtTime(e.at)),
      " ",
      h("a", { href: `#/jobs/${e.job_id}` }, e.title),
      " ",
      h("span", { class: "kind" }, e.kind),
      " → ",
      badge(e.state),
      h("span", { class: "muted" }, ` ${e.actor}`),
    );
    events.prepend(item);
    while (events.children.length > 50) events.lastChild.remove();
  });
  app.cleanups.push(stop);
}

function stat(label, value, testid) {
  return h("div", { class: "stat", "data-testid": testid }, h("div", { class: "value" }, value), h("div", { class: "label" }, label));
}

// ---- jobs ----

function jobsPage(main, params) {
  const filters = { state: params.get("state") || "", product: params.get("product") || "", capability: params.get("capability") || "", factory: params.get("factory") || "", q: params.get("q") || "" };
  const cursors = [null];
  let page = 0;
  let sortKey = null;
  let sortDir = 1;
  let rows = [];
  const tbody = h("tbody");
  const more = h("button", { type: "button", onclick: () => { page++; refresh(); } }, "Next page");
  const back = h("button", { type: "button", onclick: () => { page = Math.max(0, page - 1); refresh(); } }, "Previous page");
  const form = h("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); page = 0; cursors.length = 1; refresh(); } });
  const field = (name, label, el) => h("label", {}, label, el);
  const stateSel = h("select", { name: "state", onchange: (e) => { filters.state = e.target.value; form.requestSubmit(); } }, h("option", { value: "" }, "any"), ...STATES.map((s) => h("option", { value: s, selected: filters.state === s }, s)));
  const text = (name) => h("input", { name, value: filters[name], oninput: (e) => (filters[name] = e.target.value.trim()) });
  form.append(field("state", "State", stateSel), field("product", "Product", text("product")), field("capability", "Capability", text("capability")), field("factory", "Factory id", text("factory")), field("q", "Text", text("q")), h("button", { type: "submit" }, "Filter"));
  const head = (key, label) => h("th", { scope: "col" }, h("button", { type: "button", class: "sort", onclick: () => { sortDir = sortKey === key ? -sortDir : 1; sortKey = key; draw(); } }, label));
  main.append(
    h("h1", {}, "Jobs"),
    form,
    h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Jobs" }, h("table", { class: "jobs" }, h("thead", {}, h("tr", {}, head("title", "Title"), head("state", "State"), head("stage", "Stage"), head("priority", "Priority"), head("product", "Product"), head("attempts", "Attempts"), head("updated_at", "Updated"))), tbody)),
    h("div", { class: "pager" }, back, more),
  );
  function draw() {
    const sorted = [...rows];
    if (sortKey) sorted.sort((a, b) => (a[sortKey] > b[sortKey] ? 1 : a[sortKey] < b[sortKey] ? -1 : 0) * sortDir);
    rerender(tbody, () => tbody.replaceChildren(...sorted.map((j) => h("tr", { "data-job": j.id }, h("td", {}, h("a", { href: `#/jobs/${j.id}`, "data-key": j.id }, j.title)), h("td", {}, badge(j.state)), h("td", {}, j.stage || ""), h("td", {}, j.priority), h("td", {}, j.product), h("td", {}, `${j.attempts}`), h("td", {}, fmtTime(j.updated_at))))));
  }
  async function refresh() {
    const qs = new URLSearchParams({ limit: "50" });
    for (const [k, v] of Object.entries(filters)) if (v) qs.set(k, v);
    if (cursors[page]) qs.set("cursor", cursors[page]);
    const res = await api("GET", `/v1/jobs?${qs}`);
    cursors[page + 1] = res.next_cursor;
    more.disabled = !res.next_cursor;
    back.disabled = page === 0;
    rows = res.jobs;
    draw();
  }
  every(REFRESH_MS, refresh);
}

// ---- job detail ----

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

function jobPage(main, id) {
  const fields = h("dl", { class: "fields" });
  const lease = h("p", { "data-testid": "lease" }, "No lease.");
  const expiresIn = h("span");
  const actions = h("div", { class: "actions", role: "group", "aria-label": "Actions" });
  const score = h("tbody");
  const attempts = h("tbody", { "data-testid": "attempts" });
  const timeline = h("ol", { class: "timeline", tabindex: "0", "aria-label": "Timeline" });
  const logs = h("pre", { class: "logs", "data-testid": "logs", role: "log", tabindex: "0", "aria-label": "Live output" });
  const dag = h("div", { class: "dag" });
  const col = (label) => h("th", { scope: "col" }, label);
  main.append(
    h("p", {}, h("a", { href: "#/jobs" }, "← Jobs")),
    h("h1", { id: "job-title" }, "Job"),
    actions,
    h("div", { class: "grid2" }, h("section", { class: "card" }, h("h2", {}, "Fields"), fields, lease), h("section", { class: "card" }, h("h2", {}, "Why this factory"), h("table", {}, h("thead", {}, h("tr", {}, col("Factor"), col("Raw"), col("Weight"), col("Contribution"))), score))),
    h("section", { class: "card" }, h("h2", { id: "attempts-title" }, "Attempts"), h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-labelledby": "attempts-title" }, h("table", {}, h("thead", {}, h("tr", {}, col("Attempt"), col("Factory"), col("Epoch"), col("Started"), col("Ended"), col("Outcome"), col("Error"))), attempts))),
    h("section", { class: "card" }, h("h2", {}, "Live logs"), logs),
    h("div", { class: "grid2" }, h("section", { class: "card" }, h("h2", {}, "Timeline"), timeline), h("section", { class: "card" }, h("h2", {}, "Dependencies"), dag)),
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
  const tick = () => {
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
  const act = async (name) => {
    if (!confirm(`${name} this job?`)) return;
    try {
      await api("POST", `/v1/jobs/${id}/actions/${name}`);
      flash(`${name}: done`, "ok");
      await load();
    } catch (e) {
      flash(e.message);
    }
  };
  // Drawn once, not on every refresh, so a focused button keeps the focus.
  actions.replaceChildren(...(canAct() ? ["cancel", "requeue", "retry", "ship", "reject"].map((a) => h("button", { type: "button", "data-action": a, onclick: () => act(a) }, a)) : [h("span", { class: "muted" }, "Read only (viewer).")]));
  let dagDrawn = null;
  async function load() {
    job = await api("GET", `/v1/jobs/${id}`);
    document.getElementById("job-title").replaceChildren(job.title, " ", badge(job.state));
    const row = (k, v) => [h("dt", {}, k), h("dd", {}, v ?? "–")];
    fields.replaceChildren(...row("Id", job.id), ...row("Key", job.key), ...row("Product", job.product), ...row("Stage", job.stage), ...row("Priority", job.priority), ...row("Capabilities", job.capabilities.join(", ")), ...row("Attempts", `${job.attempts} (failures ${job.failures} of ${job.max_attempts})`), ...row("Epoch", job.epoch), ...row("Last error", job.last_error), ...row("Checkpoint", job.checkpoint));
    const factors = (job.placement && job.placement.factors) || [];
    await drawLease();
    score.replaceChildren(...factors.map((f) => h("tr", {}, h("td", {}, f.name), h("td", {}, f.raw.toFixed(3)), h("td", {}, f.weight.toFixed(2)), h("td", {}, f.contribution.toFixed(3)))), factors.length ? h("tr", {}, h("th", {}, "Total"), h("td"), h("td"), h("th", {}, job.placement.total.toFixed(3))) : h("tr", {}, h("td", { colspan: 4 }, "Not placed yet.")));
    await loadEvents();
    timeline.replaceChildren(...events.map((e) => h("li", {}, h("time", {}, fmtTime(e.at)), ` ${e.kind} `, badge(e.state), h("span", { class: "muted" }, ` epoch ${e.epoch} · ${e.actor}${e.detail ? " · " + e.detail : ""}`))));
    const rows = [];
    for (const a of attemptsOf(events)) {
      const end = a.end;
      rows.push(h("tr", { "data-attempt": a.n }, h("td", {}, a.n), h("td", {}, h("a", { href: `#/factories/${a.factory}`, "data-key": `attempt-${a.n}` }, await factoryName(a.factory))), h("td", {}, a.epoch), h("td", {}, fmtTime(a.started)), h("td", {}, end ? fmtTime(end.at) : "–"), h("td", { class: "outcome" }, end ? [`${end.kind} → `, badge(end.state)] : badge(job.state)), h("td", {}, end && end.kind === "fail" ? end.detail : "")));
    }
    rerender(attempts, () => attempts.replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 7 }, "Not claimed yet."))])));
    const view = await api("GET", `/v1/jobs/${id}/dag`);
    const drawn = JSON.stringify(view);
    if (drawn !== dagDrawn) rerender(dag, () => drawDag(dag, view));
    dagDrawn = drawn;
  }
  every(REFRESH_MS, load);
  app.cleanups.push(followSse(`/v1/jobs/${id}/logs`, (ev) => {
    const line = JSON.parse(ev.data);
    logs.append(h("span", { class: line.stream }, line.data));
    logs.scrollTop = logs.scrollHeight;
  }));
}

// Lays the job, its parents and children out with dagre and draws them as SVG.
function drawDag(el, view) {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "LR", nodesep: 16, ranksep: 40, marginx: 8, marginy: 8 });
  g.setDefaultEdgeLabel(() => ({}));
  const nodes = [view.job, ...view.parents, ...view.children];
  for (const n of nodes) g.setNode(n.id, { label: n, width: 160, height: 40 });
  for (const p of view.parents) g.setEdge(p.id, view.job.id);
  for (const c of view.children) g.setEdge(view.job.id, c.id);
  dagre.layout(g);
  const { width, height } = g.graph();
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  // Natural size, shrunk to fit: a lone node must not fill the card.
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  // A group of links, not an image: an image's content is hidden from assistive technology,
  // and the links must stay reachable.
  svg.setAttribute("role", "group");
  svg.setAttribute("aria-label", `Dependencies: ${view.parents.length} parents, ${view.children.length} children`);
  for (const e of g.edges()) {
    const pts = g.edge(e).points.map((p) => `${p.x},${p.y}`).join(" ");
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", pts);
    line.setAttribute("class", "edge");
    svg.append(line);
  }
  for (const id of g.nodes()) {
    const n = g.node(id);
    const a = document.createElementNS(ns, "a");
    a.setAttribute("href", `#/jobs/${id}`);
    a.dataset.key = id;
    const r = document.createElementNS(ns, "rect");
    r.setAttribute("x", n.x - n.width / 2);
    r.setAttribute("y", n.y - n.height / 2);
    r.setAttribute("width", n.width);
    r.setAttribute("height", n.height);
    r.setAttribute("rx", 6);
    r.setAttribute("class", `node state-${n.label.state}`);
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", n.x);
    t.setAttribute("y", n.y + 4);
    t.setAttribute("text-anchor", "middle");
    t.textContent = `${n.label.key} · ${n.label.state}`;
    a.append(r, t);
    svg.append(a);
  }
  el.replaceChildren(svg);
}

// ---- factories ----

// What the signed-in role may do to a factory: operators drain, admins also rotate and revoke.
function factoryActions() {
  return [...(canAct() ? ["drain"] : []), ...(app.role === "admin" ? ["rotate", "revoke"] : [])];
}

// Asks, then drains, rotates or revokes factory `f`; a rotated factory's new token is shown once
// in `secret`, a refusal is shown with the API's error. True when the API accepted.
async function factoryAction(f, what, secret) {
  if (!confirm(`${what} factory ${f.name}?`)) return false;
  try {
    const r = await api("POST", `/v1/factories/${f.id}/${what}`);
    if (r && r.token) secret.textContent = `New token for ${f.name} (shown once): ${r.token}`;
    flash(`${what}: done`, "ok");
    return true;
  } catch (e) {
    flash(e.message);
    return false;
  }
}

function fmtAgo(ms) {
  return ms ? `${fmtTime(ms)} (${Math.max(0, Math.round((Date.now() - ms) / 1000))} s ago)` : "–";
}

function factoriesPage(main) {
  const tbody = h("tbody");
  const secret = h("p", { class: "secret", "data-testid": "secret" });
  const create = h("button", { type: "button", hidden: app.role !== "admin", onclick: async () => {
    try {
      const t = await api("POST", "/v1/enrollment-tokens", {});
      secret.textContent = `Enrollment token (shown once): ${t.token}`;
    } catch (e) {
      flash(e.message);
    }
  } }, "Create enrollment token");
  main.append(h("h1", {}, "Factories"), create, secret, h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Factories" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Status"), h("th", { scope: "col" }, "Slots"), h("th", { scope: "col" }, "Capabilities"), h("th", { scope: "col" }, "Last heartbeat"), h("th", { scope: "col" }, "Actions"))), tbody)));
  every(REFRESH_MS, async () => {
    const fs = await api("GET", "/v1/factories");
    const button = (f, what) => h("button", { type: "button", "data-key": `${f.id}:${what}`, "aria-label": `${what} ${f.name}`, onclick: () => factoryAction(f, what, secret) }, what);
    rerender(tbody, () => tbody.replaceChildren(...fs.map((f) => h("tr", { "data-factory": f.id }, h("td", {}, h("a", { href: `#/factories/${f.id}`, "data-key": `${f.id}:page` }, f.name)), h("td", {}, badge(f.status)), h("td", {}, `${f.slots_busy} / ${f.slots}`), h("td", {}, f.capabilities.join(", ")), h("td", {}, fmtTime(f.last_heartbeat)), h("td", {}, factoryActions().map((what) => button(f, what)))))));
  });
}

function factoryPage(main, id) {
  const title = h("h1", { id: "factory-title" }, "Factory");
  const actions = h("div", { class: "actions", role: "group", "aria-label": "Actions" });
  const secret = h("p", { class: "secret", "data-testid": "secret" });
  const fields = h("dl", { class: "fields", "data-testid": "factory-fields" });
  const current = h("tbody", { "data-testid": "current-jobs" });
  const partial = h("p", { class: "muted", hidden: true });
  const col = (label) => h("th", { scope: "col" }, label);
  main.append(
    h("p", {}, h("a", { href: "#/factories" }, "← Factories")),
    title,
    actions,
    secret,
    h("section", { class: "card" }, h("h2", {}, "Fields"), fields),
    h("section", { class: "card" }, h("h2", { id: "current-title" }, "Current jobs"), h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-labelledby": "current-title" }, h("table", {}, h("thead", {}, h("tr", {}, col("Title"), col("State"), col("Stage"), col("Product"), col("Epoch"), col("Leased at"), col("Lease expires"))), current)), partial),
  );
  // Until the first load answers, an action names the factory by its id.
  let factory = { id, name: id };
  // Drawn once, not on every refresh, so a focused button keeps the focus.
  const allowed = factoryActions();
  actions.replaceChildren(...(allowed.length ? allowed.map((what) => h("button", { type: "button", "data-action": what, onclick: async () => {
    if (await factoryAction(factory, what, secret)) await load();
  } }, what)) : [h("span", { class: "muted" }, "Read only (viewer).")]));
  // The jobs whose lease this factory holds (the jobs list's factory filter matches only
  // those), read page by page up to FACTORY_JOBS_PAGES_MAX. Complete is false when that bound
  // stopped the reading.
  const currentJobs = async () => {
    const jobs = [];
    let cursor = null;
    for (let page = 0; page < FACTORY_JOBS_PAGES_MAX; page++) {
      const qs = new URLSearchParams({ factory: id, limit: "500" });
      if (cursor) qs.set("cursor", cursor);
      const res = await api("GET", `/v1/jobs?${qs}`);
      jobs.push(...res.jobs.filter((j) => LEASED.includes(j.state)));
      cursor = res.next_cursor;
      if (!cursor) return { jobs, complete: true };
    }
    return { jobs, complete: false };
  };
  async function load() {
    try {
      factory = await api("GET", `/v1/factories/${encodeURIComponent(id)}`);
    } catch (e) {
      if (e.status === 400 || e.status === 404) title.textContent = `No factory ${id}`;
      throw e;
    }
    const f = factory;
    title.replaceChildren(f.name, " ", badge(f.status));
    const row = (k, v, testid) => [h("dt", {}, k), h("dd", { "data-testid": testid }, v ?? "–")];
    fields.replaceChildren(
      ...row("Id", f.id),
      ...row("OS / arch", `${f.os} / ${f.arch}`, "platform"),
      ...row("Capabilities", f.capabilities.join(", ") || "none", "capabilities"),
      ...row("Engine classes", f.engine_classes.join(", ") || "none"),
      ...row("Slots busy", `${f.slots_busy} / ${f.slots}`, "slots"),
      ...row("Cost per hour", `$${f.cost_per_hour_usd.toFixed(2)}`),
      ...row("Last heartbeat", fmtAgo(f.last_heartbeat), "heartbeat"),
      ...row("Enrolled", f.enrolled_at ? new Date(f.enrolled_at).toLocaleString() : "–"),
    );
    const { jobs, complete } = await currentJobs();
    rerender(current, () => current.replaceChildren(...(jobs.length ? jobs.map((j) => h("tr", { "data-job": j.id }, h("td", {}, h("a", { href: `#/jobs/${j.id}`, "data-key": j.id }, j.title)), h("td", {}, badge(j.state)), h("td", {}, j.stage || ""), h("td", {}, j.product), h("td", {}, j.lease.epoch), h("td", {}, fmtTime(j.lease.granted_at)), h("td", {}, fmtTime(j.lease.expires_at)))) : [h("tr", {}, h("td", { colspan: 7 }, "No current jobs."))])));
    partial.hidden = complete;
    partial.replaceChildren(...(complete ? [] : ["Only part of the job table was searched; ", h("a", { href: `#/jobs?factory=${id}` }, "the jobs table"), " pages through all of this factory's jobs."]));
  }
  every(REFRESH_MS, load);
}

// ---- weights ----

function weightsPage(main, params) {
  const product = h("input", { id: "product", value: params.get("product") || "", required: true });
  const table = h("tbody");
  const out = h("div");
  const names = ["priority", "age", "affinity", "load", "cost", "success"];
  const explain = {
    priority: "the job's priority (0–1000)",
    age: "how long it has waited",
    affinity: "the factory already has its repository warm",
    load: "free slots on the factory",
    cost: "cheaper factories",
    success: "the factory's past success on this engine class",
  };
  const load = async () => {
    const w = await api("GET", `/v1/products/${encodeURIComponent(product.value)}/weights`);
    table.replaceChildren(...names.map((n) => h("tr", {}, h("th", { scope: "row" }, n), h("td", {}, explain[n]), h("td", {}, w.defaults[n]), h("td", {}, h("input", { type: "number", step: "0.1", min: "0", max: "10", name: n, "aria-label": `${n} override`, value: w.override[n] ?? "", disabled: !canAct() })), h("td", {}, w.effective[n]))));
  };
  const form = h("form", { onsubmit: async (e) => {
    e.preventDefault();
    const body = {};
    for (const n of names) {
      const v = form.querySelector(`input[name=${n}]`);
      if (v && v.value !== "") body[n] = Number(v.value);
    }
    try {
      await api("PUT", `/v1/products/${encodeURIComponent(product.value)}/weights`, body);
      flash("weights saved", "ok");
      await load();
    } catch (err) {
      flash(err.message);
    }
  } }, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Factor"), h("th", {}, "Favours"), h("th", {}, "Default"), h("th", {}, "Override"), h("th", {}, "Effective"))), table), canAct() ? h("button", { type: "submit" }, "Save") : "");
  main.append(
    h("h1", {}, "Scoring weights"),
    h("p", {}, "Each queued job's score on a factory is the sum of factor × weight; the highest score is placed first. A product's override replaces the default for its jobs; blank keeps the default."),
    h("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); load().catch((err) => flash(err.message)); } }, h("label", { for: "product" }, "Product"), product, h("button", { type: "submit" }, "Load")),
    form,
    out,
  );
  if (product.value) load().catch((e) => flash(e.message));
}

// ---- routing ----

async function route() {
  for (const c of app.cleanups.splice(0)) c();
  const main = document.getElementById("main");
  main.replaceChildren();
  const [path, query] = location.hash.slice(1).split("?");
  const params = new URLSearchParams(query || "");
  const nav = document.getElementById("nav");
  if (!app.token) {
    nav.hidden = true;
    document.getElementById("signout").hidden = true;
    document.getElementById("who").textContent = "";
    return loginPage(main);
  }
  if (!app.role) {
    try {
      const me = await api("GET", "/v1/whoami");
      app.role = me.role;
      document.getElementById("who").textContent = `${me.name} (${me.role})`;
    } catch (e) {
      return signOut("Sign in again.");
    }
  }
  nav.hidden = false;
  document.getElementById("signout").hidden = false;
  for (const a of nav.querySelectorAll("a")) {
    if (path.startsWith(a.getAttribute("href").slice(1))) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const parts = (path || "/overview").split("/").filter(Boolean);
  if (parts[0] === "jobs" && parts[1]) jobPage(main, parts[1]);
  else if (parts[0] === "jobs") jobsPage(main, params);
  else if (parts[0] === "factories" && parts[1]) factoryPage(main, parts[1]);
  else if (parts[0] === "factories") factoriesPage(main);
  else if (parts[0] === "weights") weightsPage(main, params);
  else overviewPage(main);
}

document.getElementById("signout").addEventListener("click", () => signOut());
window.addEventListener("hashchange", route);
route();
