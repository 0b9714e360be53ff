// Questions to an operator: on a job's page, its open question shown first, with a button per
// choice (or a text box for a free-text answer) and an optional note; viewers see it without
// the buttons, and the answer then shows in the timeline. On the overview, how many jobs wait
// for input, linking to the jobs table filtered to them.

import { h, api, rerender, flash, canAct } from "./lib.js";
import { when } from "./when.js";

// Jobs the overview counts at most (one page of the listing, which the server reads from its
// index of open questions: the cost of the waiting jobs, not of every job).
const WAITING_COUNT_MAX = 100;
// The server's bounds, in UTF-8 bytes (`core/src/job/question.rs`); `maxlength` would count
// characters, so an answer in another script could pass it and still be refused.
const ANSWER_MAX_BYTES = 2000;
const NOTE_MAX_BYTES = 500;

// Why `value` is too long for the server, or null.
function overBytes(what, value, max) {
  const bytes = new TextEncoder().encode(value).length;
  return bytes > max ? `The ${what} is ${bytes} bytes; at most ${max}.` : null;
}

// The question card of job `id`; `onAnswered` reloads the page after an answer.
export function questionPanel(id, onAnswered) {
  const el = h("section", { class: "card question", hidden: true, "aria-labelledby": "question-title", "data-testid": "question" });
  // The open question drawn (its id): redrawn only when it changes, so a focused button or a
  // half-typed answer stays as it is across refreshes.
  let drawn = null;
  // Answers question `q` (its id: the server refuses it if the job asks another by now).
  // Everything in the card is disabled while the answer is on its way, so a second click
  // does not send it twice; a refusal shows next to the answer.
  const send = async (q, answer, note, error) => {
    const tooLong = overBytes("answer", answer, ANSWER_MAX_BYTES) || overBytes("note", note, NOTE_MAX_BYTES);
    if (tooLong) {
      error.textContent = tooLong;
      return;
    }
    const inputs = [...el.querySelectorAll("button, input, textarea")];
    inputs.forEach((i) => (i.disabled = true));
    error.textContent = "";
    try {
      const body = { question_id: q.id, answer };
      if (note) body.note = note;
      await api("POST", `/v1/jobs/${id}/answer`, body);
      flash(`answered: ${answer}`, "ok");
      await onAnswered();
    } catch (e) {
      error.textContent = e.message;
    } finally {
      inputs.forEach((i) => (i.disabled = false));
    }
  };
  const draw = (q) => {
    const note = h("input", { name: "note", placeholder: "Note (optional)", "aria-label": "Note with the answer" });
    const error = h("p", { class: "error", role: "alert", "data-testid": "question-error" });
    const waited = h("p", { class: "muted", "data-testid": "question-waited" }, `Asked `, when(q.asked_at), `; times out `, when(q.timeout_at), q.default ? `, then the answer is ${q.default}` : ", then the job is told nobody answered", ".");
    let controls;
    if (!canAct()) {
      controls = [h("p", { class: "muted" }, "Only an operator can answer.")];
    } else if (q.choices.length) {
      controls = [h("div", { class: "choices", role: "group", "aria-label": "Answers" }, ...q.choices.map((c) => h("button", { type: "button", "data-choice": c, onclick: () => send(q, c, note.value.trim(), error) }, c))), note, error];
    } else {
      const text = h("textarea", { name: "answer", rows: 3, "aria-label": "Answer" });
      const form = h("form", { onsubmit: (e) => { e.preventDefault(); send(q, text.value.trim(), note.value.trim(), error); } }, text, note, h("button", { type: "submit" }, "Send answer"), error);
      controls = [form];
    }
    el.replaceChildren(h("h2", { id: "question-title" }, "Waits for input"), h("p", { class: "question-text", "data-testid": "question-text" }, q.text), waited, ...controls);
  };
  const refresh = (job) => {
    const q = job.question && job.question.status === "open" ? job.question : null;
    el.hidden = !q;
    const key = q ? q.id : null;
    if (key !== drawn) rerender(el, () => (q ? draw(q) : el.replaceChildren()));
    drawn = key;
  };
  return { el, refresh };
}

// The overview's count of jobs waiting for input, linking to them; hidden when none waits.
export function waitingForInputCard() {
  const count = h("strong", { "data-testid": "waiting-for-input" });
  const el = h("section", { class: "card warn", hidden: true, "aria-labelledby": "input-title" }, h("h2", { id: "input-title" }, "Waiting for input"), h("p", {}, h("a", { href: "#/jobs?waiting_for_input=true", "data-key": "waiting-for-input" }, count, " jobs ask an operator a question")));
  const refresh = async () => {
    const page = await api("GET", `/v1/jobs?waiting_for_input=true&limit=${WAITING_COUNT_MAX}`);
    const n = page.jobs.length;
    el.hidden = n === 0;
    count.textContent = page.next_cursor ? `${n}+` : String(n);
  };
  return { el, refresh };
}
