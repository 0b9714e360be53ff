// A job's output on its page: every attempt's lines after a separator naming the attempt,
// each line with the time the coordinator kept its chunk, a search that shows only the
// matching lines, pause and resume of following, and a download of the whole log as text.
// The heading says "Live logs" while the job may still print, "Logs" once it finished.

import { h, followSse, app, TERMINAL } from "./lib.js";

// The time of day a chunk was kept, to the millisecond.
function clock(ms) {
  const d = new Date(ms);
  return `${d.toTimeString().slice(0, 8)}.${String(d.getMilliseconds()).padStart(3, "0")}`;
}

export function logsPanel(id) {
  const title = h("h2", { id: "logs-title" }, "Live logs");
  const out = h("pre", { class: "logs", "data-testid": "logs", role: "log", tabindex: "0", "aria-labelledby": "logs-title" });
  const search = h("input", { type: "search", id: "logs-search", "data-testid": "logs-search", placeholder: "Show lines containing…" });
  const pause = h("button", { type: "button", class: "secondary", "data-testid": "logs-pause", "aria-pressed": "false" }, "Pause");
  const download = h("button", { type: "button", class: "secondary", "data-testid": "logs-download" }, "Download");
  const status = h("span", { class: "hint", "aria-live": "polite", "data-testid": "logs-status" });
  const el = h(
    "section",
    { class: "card", "aria-labelledby": "logs-title" },
    title,
    h("div", { class: "log-tools" }, h("label", { for: "logs-search" }, "Search"), search, pause, download, status),
    out,
  );
  // Every chunk received, in order: the download and the stderr tail read them.
  const chunks = [];
  // Chunks received while paused, appended on resume.
  let held = [];
  let paused = false;
  let lastAttempt = null;
  // Whether the last text drawn ended its line: the next one starts a line with its time.
  let atLineStart = true;
  const matches = (text) => !search.value || text.toLowerCase().includes(search.value.toLowerCase());
  const draw = (chunk) => {
    if (chunk.attempt !== lastAttempt) {
      out.append(h("span", { class: "attempt-sep", role: "separator", "data-testid": "log-attempt", "data-attempt": chunk.attempt }, `── attempt ${chunk.attempt} ──`));
      lastAttempt = chunk.attempt;
      atLineStart = true;
    }
    // One element per line, so the search hides whole lines; a chunk's partial last line
    // continues in the next chunk's first element.
    for (const piece of chunk.data.split(/(?<=\n)/)) {
      const line = h("span", { class: `line ${chunk.stream}`, "data-attempt": chunk.attempt });
      if (atLineStart && chunk.at) line.append(h("span", { class: "ts", "aria-hidden": "true" }, clock(chunk.at) + " "));
      line.append(piece);
      line.hidden = !matches(piece);
      out.append(line);
      atLineStart = piece.endsWith("\n");
    }
  };
  const follow = () => {
    if (!paused) out.scrollTop = out.scrollHeight;
  };
  search.addEventListener("input", () => {
    for (const line of out.querySelectorAll(".line")) line.hidden = !matches(line.lastChild.textContent);
    const shown = out.querySelectorAll(".line:not([hidden])").length;
    status.textContent = search.value ? `${shown} matching` : "";
  });
  pause.addEventListener("click", () => {
    paused = !paused;
    pause.textContent = paused ? "Resume" : "Pause";
    pause.setAttribute("aria-pressed", String(paused));
    if (!paused) {
      for (const c of held) draw(c);
      held = [];
      status.textContent = "";
      follow();
    }
  });
  download.addEventListener("click", () => {
    let attempt = null;
    const text = chunks
      .map((c) => {
        const sep = c.attempt !== attempt ? `── attempt ${c.attempt} ──\n` : "";
        attempt = c.attempt;
        return sep + c.data;
      })
      .join("");
    const a = h("a", { href: URL.createObjectURL(new Blob([text], { type: "text/plain" })), download: `job-${id}.log` });
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 0);
  });
  app.cleanups.push(
    followSse(`/v1/jobs/${id}/logs`, (ev) => {
      const chunk = JSON.parse(ev.data);
      chunks.push(chunk);
      if (paused) {
        held.push(chunk);
        status.textContent = `paused: ${held.length} new chunks`;
        return;
      }
      draw(chunk);
      follow();
    }),
  );
  return {
    el,
    // The heading for where the job is: finished jobs print no more.
    refresh(job) {
      const done = TERMINAL.includes(job.state) || job.state === "review";
      title.textContent = done ? "Logs" : "Live logs";
    },
    // The last `n` lines attempt `attempt` wrote to stderr.
    stderrTail(attempt, n = 5) {
      const text = chunks
        .filter((c) => c.attempt === attempt && c.stream === "stderr")
        .map((c) => c.data)
        .join("");
      return text.trimEnd().split("\n").slice(-n).join("\n");
    },
  };
}
