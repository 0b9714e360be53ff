// What every page of the control plane shares: the signed-in session (the token lives in
// sessionStorage, never in a URL), requests to the REST API with that token (SSE streams and
// file downloads included, read with fetch since neither EventSource nor a link can send
// headers), element building, redraws that keep the keyboard focus, and the page's timers.

export const TOKEN_KEY = "gigafactory.token";
export const REFRESH_MS = 2000;
export const TERMINAL = ["succeeded", "shipped", "rejected", "dead", "cancelled"];
export const STATES = ["pending", "queued", "failed", "leased", "running", "preempting", "review", ...TERMINAL];
// States in which a job holds a lease: an attempt lasts while its job is in one of them.
export const LEASED = ["leased", "running", "preempting"];

export const app = {
  token: sessionStorage.getItem(TOKEN_KEY),
  role: null,
  // Work of the current page that must stop when the page changes.
  cleanups: [],
};

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
  const headers = { Authorization: `Bearer ${app.token}` };
  // Every write says it is JSON, as the API requires of writes (a cross-site form cannot).
  if (body !== undefined || method !== "GET") headers["Content-Type"] = "application/json";
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

// The bytes at `path` (an artifact) as a Blob typed by the response's Content-Type. A link
// cannot carry the token, so the page fetches the bytes and hands them on as a blob URL.
export async function apiBlob(path) {
  const res = await fetch(path, { headers: { Authorization: `Bearer ${app.token}` } });
  if (!res.ok) {
    const data = await res.json().catch(() => null);
    if (res.status === 401) signOut("Your token was refused; sign in again.");
    throw new ApiError(res.status, data);
  }
  return res.blob();
}

// Reads a server-sent event stream through fetch (EventSource cannot send a token), and
// reconnects with Last-Event-ID after a drop, so no event is lost or repeated.
export function followSse(path, onEvent) {
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

export function every(ms, fn) {
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

export function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  app.token = null;
  app.role = null;
  location.hash = "#/login";
  if (message) flash(message);
}
