// What every page of the control plane shares: the signed-in session (an HttpOnly cookie the
// page never sees, so every tab shares it and no token sits in page storage), requests to the
// REST API (SSE streams and file downloads included, read with fetch), the connection to the
// coordinator (a banner while it is unreachable, live values marked stale, automatic resume),
// element building, redraws that keep the keyboard focus, and the page's timers.

// Kept for pages that still import it: no token is stored under it any more.
export const TOKEN_KEY = "gigafactory.token";
export const REFRESH_MS = 2000;
export const TERMINAL = ["succeeded", "shipped", "rejected", "dead", "cancelled"];
export const STATES = ["pending", "queued", "failed", "leased", "running", "preempting", "review", ...TERMINAL];
// States in which a job holds a lease: an attempt lasts while its job is in one of them.
export const LEASED = ["leased", "running", "preempting"];
// Answers of a proxy in front of a coordinator that is down (without the API's JSON error
// body): as unreachable as no answer.
const GATEWAY_DOWN = [502, 503, 504];
// How often the page asks whether an unreachable coordinator is back.
const PROBE_MS = 1000;

// A token an older control plane kept in this tab's storage is dropped: the cookie replaced it.
sessionStorage.removeItem(TOKEN_KEY);

export const app = {
  // A bearer token for this tab only, when a caller sets one; the sign-in page does not: the
  // session cookie authenticates every request.
  token: null,
  role: null,
  // Work of the current page that must stop when the page changes.
  cleanups: [],
};

// The connection to the coordinator as this page last saw it: `since` is when a request
// first failed to reach it (null while it answers). Pages read it (a countdown stops while
// it is set) or listen for CONNECTION_EVENT on window.
export const connection = { since: null };
export const CONNECTION_EVENT = "gigafactory:connection";

// A request that never reached the coordinator (or reached only a proxy saying it is down).
export class UnreachableError extends Error {
  constructor(cause) {
    super(`coordinator unreachable (${cause})`);
  }
}

// Records whether the coordinator answered. The first failure shows the banner, marks live
// values stale and starts probing; the first answer after it clears both and wakes streams.
function setReachable(ok) {
  if (ok === (connection.since === null)) return;
  connection.since = ok ? null : Date.now();
  document.body.classList.toggle("stale", !ok);
  const banner = document.getElementById("connection");
  if (banner) {
    banner.textContent = ok ? "" : `Coordinator unreachable since ${fmtTime(connection.since)}, retrying…`;
    banner.hidden = ok;
  }
  if (!ok) probe();
  window.dispatchEvent(new CustomEvent(CONNECTION_EVENT, { detail: { since: connection.since } }));
}

// While the coordinator is unreachable, asks its liveness route every PROBE_MS: pages whose
// own requests stopped (a stream waiting to reconnect) resume as soon as it answers.
function probe() {
  const tick = async () => {
    if (connection.since === null) return;
    await reach("/healthz", {}).catch(() => null);
    if (connection.since !== null) setTimeout(tick, PROBE_MS);
  };
  setTimeout(tick, PROBE_MS);
}

// fetch, recording whether the coordinator was reached. An aborted request says nothing.
async function reach(path, init) {
  let res;
  try {
    res = await fetch(path, { credentials: "same-origin", ...init });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    setReachable(false);
    throw new UnreachableError(e.message);
  }
  // The coordinator's own 503 (a JSON error body) is an answer, not an outage.
  const json = (res.headers.get("Content-Type") || "").includes("application/json");
  if (GATEWAY_DOWN.includes(res.status) && !json) {
    setReachable(false);
    throw new UnreachableError(`HTTP ${res.status}`);
  }
  setReachable(true);
  return res;
}

// The headers of a request: the tab's bearer token when it has one (else the session cookie
// goes by itself).
function authHeaders(extra = {}) {
  return app.token ? { Authorization: `Bearer ${app.token}`, ...extra } : extra;
}

export function h(tag, attrs = {}, ...children) {
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
export function rerender(el, render) {
  const active = document.activeElement;
  const key = active && el.contains(active) ? active.dataset.key : undefined;
  render();
  if (key === undefined) return;
  const again = el.querySelector(`[data-key="${CSS.escape(key)}"]`);
  if (again) again.focus();
}

export function fmtTime(ms) {
  return ms ? new Date(ms).toLocaleTimeString() : "–";
}

// "2026-12-03 00:00 UTC", as the coordinator writes when a budget's period resets: periods
// are UTC days, weeks and months, so their edges read in UTC.
export function fmtUtc(ms) {
  return `${new Date(ms).toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

// "in 5 h 12 min": how far away `ms` is, to the minute.
export function fmtUntil(ms) {
  const minutes = Math.max(0, Math.round((ms - Date.now()) / 60000));
  const hours = Math.floor(minutes / 60);
  if (hours === 0) return `in ${minutes} min`;
  if (hours < 48) return `in ${hours} h ${minutes % 60} min`;
  return `in ${Math.floor(hours / 24)} d ${hours % 24} h`;
}

// "1.5 KiB": a size in bytes, in binary units as the coordinator's limits are set.
export function fmtBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

// `text` as a web address, or null. Links that a job or a tracker wrote are followed only if
// they are http(s): a `javascript:` or `data:` one would run or show content as this app.
export function webUrl(text) {
  try {
    const u = new URL(String(text).trim());
    return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
  } catch (_) {
    return null;
  }
}

// Factory names by id (null: not listed), for naming factories where the API writes their ids.
const factoryNames = new Map();
let factoryNamesLoad = null;
const FACTORY_REF = /factory:([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/g;

// Reads the factory list once for every caller waiting on it; `ids` not in it are remembered as
// unnamed, so an event of a factory that is gone does not read the list again.
function loadFactoryNames(ids) {
  if (!factoryNamesLoad) {
    factoryNamesLoad = api("GET", "/v1/factories")
      .then((fs) => fs.forEach((f) => factoryNames.set(f.id, f.name)))
      .finally(() => (factoryNamesLoad = null));
  }
  return factoryNamesLoad.then(() => ids.forEach((id) => factoryNames.has(id) || factoryNames.set(id, null)));
}

// `text` (an event's author or detail) in an element, each `factory:ID` in it shown as
// `factory NAME` — at once when the name is known, else once the factory list is read.
export function withFactoryNames(text) {
  const el = h("span", {}, text);
  const draw = () => {
    el.textContent = text.replace(FACTORY_REF, (ref, id) => (factoryNames.get(id) ? `factory ${factoryNames.get(id)}` : ref));
  };
  draw();
  const unknown = [...text.matchAll(FACTORY_REF)].map((m) => m[1]).filter((id) => !factoryNames.has(id));
  if (unknown.length) loadFactoryNames(unknown).then(draw, () => {});
  return el;
}

export function badge(state) {
  return h("span", { class: `badge state-${state}` }, state);
}

export function flash(message, kind = "error") {
  const el = document.getElementById("flash");
  el.textContent = message;
  el.className = `flash ${kind}`;
  el.hidden = false;
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => (el.hidden = true), 8000);
}

export function canAct() {
  return app.role === "admin" || app.role === "operator";
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? `${body.error}: ${body.message}` : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export async function api(method, path, body) {
  const headers = authHeaders();
  // Every write says it is JSON, as the API requires of writes (a cross-site form cannot).
  if (body !== undefined || method !== "GET") headers["Content-Type"] = "application/json";
  const res = await reach(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (_) {
    data = null;
  }
  if (!res.ok) {
    if (res.status === 401 && path !== "/v1/whoami" && path !== "/v1/session") requireSignIn("Your session ended; sign in again.");
    throw new ApiError(res.status, data);
  }
  return data;
}

// The bytes at `path` (an artifact) as a Blob typed by the response's Content-Type. A link
// cannot carry the token, so the page fetches the bytes and hands them on as a blob URL.
export async function apiBlob(path) {
  const res = await reach(path, { headers: authHeaders() });
  if (!res.ok) {
    const data = await res.json().catch(() => null);
    if (res.status === 401) requireSignIn("Your session ended; sign in again.");
    throw new ApiError(res.status, data);
  }
  return res.blob();
}

// Reads a server-sent event stream through fetch (EventSource cannot send a bearer token), and
// reconnects with Last-Event-ID after a drop, so no event is lost or repeated: at once when the
// coordinator is reachable again, else after a backoff.
export function followSse(path, onEvent) {
  const ctl = new AbortController();
  let lastId = null;
  let stopped = false;
  (async () => {
    let backoff = 500;
    while (!stopped) {
      try {
        const headers = authHeaders({ Accept: "text/event-stream" });
        if (lastId) headers["Last-Event-ID"] = lastId;
        const res = await reach(path, { headers, signal: ctl.signal });
        if (res.status === 401) {
          requireSignIn("Your session ended; sign in again.");
          return;
        }
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
        // The stream ended: the coordinator stopped or dropped it.
        if (!stopped) setReachable(false);
      } catch (e) {
        if (stopped) return;
        // A stream cut mid-read by a coordinator going away is a network error too.
        if (e instanceof TypeError) setReachable(false);
      }
      await wakeOnReconnect(backoff);
      backoff = Math.min(backoff * 2, 10000);
    }
  })();
  return () => {
    stopped = true;
    ctl.abort();
  };
}

// Waits `ms`, or less if the coordinator becomes reachable again meanwhile.
function wakeOnReconnect(ms) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      window.removeEventListener(CONNECTION_EVENT, onChange);
      resolve();
    };
    const onChange = () => connection.since === null && done();
    const timer = setTimeout(done, ms);
    window.addEventListener(CONNECTION_EVENT, onChange);
  });
}

// Runs `fn` now and `ms` after each run ends, until the page changes. A failure reaches the
// page: an unreachable coordinator through the banner, any other error as a flash, shown once
// until a run succeeds again (not every `ms`).
export function every(ms, fn) {
  let alive = true;
  let shown = null;
  const tick = async () => {
    if (!alive) return;
    try {
      await fn();
      shown = null;
    } catch (e) {
      if (!(e instanceof ApiError) && !(e instanceof UnreachableError)) console.error(e);
      if (alive && !(e instanceof UnreachableError) && e.message !== shown && !(e instanceof ApiError && e.status === 401)) {
        shown = e.message;
        flash(e.message);
      }
    }
    if (alive) timer = setTimeout(tick, ms);
  };
  let timer = setTimeout(tick, 0);
  app.cleanups.push(() => {
    alive = false;
    clearTimeout(timer);
  });
}

// The page's way back to sign-in without a session (expired or revoked), at the same route:
// signing in lands where the user was. app.js draws the sign-in page on SIGNIN_EVENT.
export const SIGNIN_EVENT = "gigafactory:signin";
export function requireSignIn(message) {
  app.token = null;
  app.role = null;
  if (message) flash(message);
  window.dispatchEvent(new Event(SIGNIN_EVENT));
}

// Ends the session: the coordinator revokes it and clears the cookie, then the sign-in page.
// While the coordinator cannot be reached the session cannot end (the page cannot touch an
// HttpOnly cookie), so the page says so and stays signed in.
export async function signOut(message) {
  try {
    await api("DELETE", "/v1/session");
  } catch (e) {
    // 400: no session cookie (a tab's bearer token, or an insecure development node).
    if (!(e instanceof ApiError && (e.status === 400 || e.status === 401))) {
      flash(`Not signed out: ${e.message}`);
      return;
    }
  }
  if (location.hash !== "#/login") {
    app.token = null;
    app.role = null;
    if (message) flash(message);
    location.hash = "#/login";
  } else requireSignIn(message);
}
