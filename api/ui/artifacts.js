// A job's artifacts, the files its attempts saved: grouped by attempt (the latest first), each
// with its name, kind, size, a download and a view inline. The bytes need the token, so they
// are fetched with it and shown as text or through blob URLs. Nothing an artifact holds is
// read as HTML: a report or a page shows as its source text, an image (SVG included) only
// through <img>, where scripts do not run, and a link is followed only if it is http(s).

import { h, api, apiBlob, app, flash, fmtBytes, fmtTime, rerender, webUrl } from "./lib.js";

// Largest file read for an inline view; past it the view says to download it.
const TEXT_VIEW_MAX_BYTES = 1 << 20;
const IMAGE_VIEW_MAX_BYTES = 16 << 20;
// Within an attempt, what a reviewer reads first comes first.
const KIND_ORDER = ["report", "patch", "link", "file"];

// How an artifact is viewed inline, or null when it has no view (a binary file: download it).
function viewKind(a) {
  const media = a.media_type.split(";")[0].trim();
  if (a.kind === "link") return "link";
  if (a.kind === "patch" || media === "text/x-diff") return "diff";
  if (media.startsWith("image/")) return "image";
  if (a.kind === "report" || media.startsWith("text/") || media === "application/json") return "text";
  return null;
}

function pathOf(jobId, a) {
  return `/v1/jobs/${jobId}/artifacts/${a.attempt}/${encodeURIComponent(a.name)}`;
}

// The counts a hunk header announces (`@@ -12,3 +12,4 @@`; a count left out is 1), or null.
function hunkCounts(line) {
  const m = /^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@/.exec(line);
  return m ? { old: m[1] === undefined ? 1 : Number(m[1]), new: m[2] === undefined ? 1 : Number(m[2]) } : null;
}

// A unified diff, line by line: an added line is an <ins> and a removed one a <del>, each
// keeping its sign in front, so a change reads without colour and assistive technology can
// announce it; file headers and hunk headers are marked apart. A hunk ends when the counts its
// header announced are used up, so a removed line that reads "--- x" is still a removal.
function drawDiff(text, label) {
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  let hunk = null;
  let added = 0;
  let removed = 0;
  const out = lines.map((line) => {
    const counts = hunkCounts(line);
    if (counts) {
      hunk = counts;
      return h("span", { class: "hunk" }, line);
    }
    if (hunk && (hunk.old > 0 || hunk.new > 0)) {
      const sign = line[0];
      if (sign === "+") {
        hunk.new--;
        added++;
        return h("ins", {}, h("b", { class: "sign" }, "+"), line.slice(1));
      }
      if (sign === "-") {
        hunk.old--;
        removed++;
        return h("del", {}, h("b", { class: "sign" }, "-"), line.slice(1));
      }
      if (sign === " " || line === "") {
        hunk.old--;
        hunk.new--;
        return h("span", {}, line);
      }
      // "\ No newline at end of file" belongs to the hunk but counts for neither side.
      if (sign === "\\") return h("span", { class: "meta" }, line);
    }
    hunk = null;
    return h("span", { class: "meta" }, line);
  });
  return [
    h("p", { class: "diff-stat" }, `${added} ${added === 1 ? "line" : "lines"} added (+), ${removed} removed (-)`),
    h("pre", { class: "diff", tabindex: "0", role: "region", "aria-label": `${label}: changes` }, ...out),
  ];
}

// A link artifact holds a URL (as text/uri-list: the first line that is not a # comment).
function drawLink(text) {
  const first = text.split("\n").map((l) => l.trim()).find((l) => l && !l.startsWith("#")) || "";
  const url = webUrl(first);
  if (!url) return h("p", {}, "Not a web address, so not a link: ", h("code", {}, first || "(empty)"));
  return h("p", { class: "artifact-link" }, h("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, url));
}

// The panel of job `jobId`'s artifacts: `el` to place, `refresh(job)` to call on each redraw.
export function artifactsPanel(jobId) {
  const el = h("div", { "data-testid": "artifacts" });
  const problem = h("p", { class: "form-errors", hidden: true });
  const list = h("div");
  el.append(problem, list);
  // Per artifact (`attempt/name`): its digest, whether its view is open, whether it was read,
  // and the view's element, kept across redraws so an open view is not read again and keeps
  // its scroll.
  const seen = new Map();
  let views = 0;
  // Blob URLs made for images and downloads, let go when the page changes.
  const urls = [];
  app.cleanups.push(() => urls.splice(0).forEach((u) => URL.revokeObjectURL(u)));
  let drawn = null;
  let count = 0;
  // The attempt whose views were opened for review, so they open once and a reviewer who
  // closes one keeps it closed.
  let reviewed = null;

  const entry = (a) => {
    const key = `${a.attempt}/${a.name}`;
    let e = seen.get(key);
    if (!e || e.sha256 !== a.sha256) {
      e = { sha256: a.sha256, open: viewKind(a) === "link", loaded: false, box: h("div", { class: "artifact-view", id: `artifact-view-${++views}` }) };
      seen.set(key, e);
    }
    return e;
  };

  const load = async (a, e) => {
    const kind = viewKind(a);
    const label = `${a.name} of attempt ${a.attempt}`;
    const max = kind === "image" ? IMAGE_VIEW_MAX_BYTES : TEXT_VIEW_MAX_BYTES;
    if (a.size > max) {
      e.box.replaceChildren(h("p", { class: "muted" }, `Too large to show here (${fmtBytes(a.size)}): download it.`));
      return;
    }
    e.box.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    try {
      const blob = await apiBlob(pathOf(jobId, a));
      if (kind === "image") {
        const url = URL.createObjectURL(blob);
        urls.push(url);
        e.box.replaceChildren(h("img", { class: "artifact-image", src: url, alt: `${a.name}, an image saved by attempt ${a.attempt}` }));
        return;
      }
      const text = new TextDecoder().decode(await blob.arrayBuffer());
      if (kind === "diff") e.box.replaceChildren(...drawDiff(text, label));
      else if (kind === "link") e.box.replaceChildren(drawLink(text));
      else e.box.replaceChildren(h("pre", { class: "artifact-text", tabindex: "0", role: "region", "aria-label": label }, text));
    } catch (err) {
      // Read again when opened again.
      e.loaded = false;
      e.box.replaceChildren(h("p", { class: "form-errors" }, `Could not read ${a.name}: ${err.message}`));
    }
  };

  // Shows or hides `a`'s view as its entry says, reading it the first time it opens.
  const show = (a, e, button) => {
    e.box.hidden = !e.open;
    if (button) {
      button.textContent = e.open ? "Hide" : "Show";
      button.setAttribute("aria-expanded", String(e.open));
      button.setAttribute("aria-label", `${e.open ? "Hide" : "Show"} ${a.name}`);
    }
    if (e.open && !e.loaded) {
      e.loaded = true;
      load(a, e);
    }
  };

  const download = async (a) => {
    try {
      const url = URL.createObjectURL(await apiBlob(pathOf(jobId, a)));
      urls.push(url);
      const link = h("a", { href: url, download: a.name, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
    } catch (err) {
      flash(err.message);
    }
  };

  const item = (a) => {
    const key = `${a.attempt}/${a.name}`;
    const e = entry(a);
    const toggle = viewKind(a) && viewKind(a) !== "link" ? h("button", { type: "button", class: "secondary", "aria-controls": e.box.id, "data-key": `view:${key}` }) : null;
    if (toggle) {
      toggle.addEventListener("click", () => {
        e.open = !e.open;
        show(a, e, toggle);
      });
    }
    show(a, e, toggle);
    return h(
      "li",
      { class: "artifact", "data-artifact": key },
      h(
        "div",
        { class: "artifact-head" },
        h("span", { class: "artifact-name" }, a.name),
        h("span", { class: `badge kind-${a.kind}` }, a.kind),
        h("span", { class: "muted" }, `${fmtBytes(a.size)} · ${fmtTime(a.created_at)}`),
        h("span", { class: "artifact-buttons" }, toggle, h("button", { type: "button", class: "secondary", "data-key": `download:${key}`, "aria-label": `Download ${a.name}`, onclick: () => download(a) }, "Download")),
      ),
      e.box,
    );
  };

  // The attempt up for review first and marked (a bar and a badge, beside the decision), then
  // the others, the latest first: an earlier attempt's files stay a click away.
  const draw = (all, reviewAttempt) => {
    const first = (n) => (n === reviewAttempt ? 0 : 1);
    const attempts = [...new Set(all.map((a) => a.attempt))].sort((x, y) => first(x) - first(y) || y - x);
    const rank = (a) => KIND_ORDER.indexOf(a.kind);
    const groups = attempts.map((n) => {
      const mine = all.filter((a) => a.attempt === n).sort((x, y) => rank(x) - rank(y) || x.name.localeCompare(y.name));
      const titleId = `artifacts-attempt-${n}`;
      const reviewed = n === reviewAttempt;
      const title = h("h3", { id: titleId }, `Attempt ${n}`, h("span", { class: "muted" }, ` · epoch ${mine[0].epoch}`), reviewed ? [" ", h("span", { class: "badge state-review" }, "up for review")] : null);
      return h("section", { class: `artifact-attempt${reviewed ? " reviewed" : ""}`, "aria-labelledby": titleId, "data-attempt": n }, title, h("ul", { class: "artifacts" }, ...mine.map(item)));
    });
    list.replaceChildren(...(groups.length ? groups : [h("p", { class: "muted" }, "No artifacts saved.")]));
  };

  // Reads the list again and redraws it when it changed; in review, the views of the attempt
  // up for review open. Answers how many artifacts the job has.
  const refresh = async (job) => {
    let all;
    try {
      all = await api("GET", `/v1/jobs/${jobId}/artifacts`);
      problem.hidden = true;
    } catch (err) {
      problem.hidden = false;
      problem.textContent = `Could not list the artifacts: ${err.message}`;
      return count;
    }
    const reviewAttempt = job.state === "review" ? job.attempts : null;
    let opened = false;
    if (reviewAttempt !== null && reviewAttempt !== reviewed) {
      for (const a of all.filter((a) => a.attempt === reviewAttempt && viewKind(a))) entry(a).open = true;
      reviewed = reviewAttempt;
      opened = true;
    }
    const sig = JSON.stringify([reviewAttempt, all.map((a) => [a.attempt, a.name, a.sha256])]);
    if (sig !== drawn || opened) rerender(list, () => draw(all, reviewAttempt));
    drawn = sig;
    count = all.length;
    return count;
  };

  return { el, refresh };
}
