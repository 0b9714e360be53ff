// Gigafactory's control plane: a small single-page app over the REST API, one ES module per
// page. Hash routes: #/overview, #/jobs, #/jobs/ID, #/factories, #/factories/ID, #/budgets,
// #/budgets/NAME, #/schedules, #/schedules/NAME, #/weights, #/tokens (admins: tokens and the audit log), #/secrets.
// This module signs in and routes; lib.js holds what the pages share.

import { h, api, flash, signOut, app, connection, CONNECTION_EVENT, SIGNIN_EVENT, UnreachableError } from "./lib.js";
import { overviewPage } from "./overview.js";
import { jobsPage } from "./jobs.js";
import { jobPage } from "./job.js";
import { factoriesPage, factoryPage } from "./factories.js";
import { budgetsPage } from "./budgets.js";
import { budgetPage } from "./budget.js";
import { schedulesPage } from "./schedules.js";
import { schedulePage } from "./schedule.js";
import { weightsPage } from "./weights.js";
import { tokensPage } from "./tokens.js";
import { secretsPage } from "./secrets.js";

function loginPage(main) {
  const input = h("input", { id: "token", type: "password", autocomplete: "off", required: true, placeholder: "gf_…" });
  const form = h(
    "form",
    {
      class: "card login",
      onsubmit: async (e) => {
        e.preventDefault();
        try {
          // The coordinator answers with an HttpOnly cookie: the token is not kept anywhere.
          const me = await api("POST", "/v1/session", { token: input.value.trim() });
          input.value = "";
          showSignedIn(me);
          // A deep link signed in from lands where it pointed; the sign-in route on the overview.
          if (!location.hash || location.hash.startsWith("#/login")) location.hash = "#/overview";
          else route();
        } catch (err) {
          flash(err.message);
        }
      },
    },
    h("h1", {}, "Sign in"),
    h("p", {}, "Paste an admin, operator or viewer token. It opens a session this browser's tabs share; the token itself is not stored."),
    h("label", { for: "token" }, "Token"),
    input,
    h("button", { type: "submit" }, "Sign in"),
  );
  main.append(form);
  input.focus();
}

// ---- routing ----

function showSignedIn(me) {
  app.role = me.role;
  document.getElementById("who").textContent = `${me.name} (${me.role})`;
}

function showSignedOut(main) {
  document.getElementById("nav").hidden = true;
  document.getElementById("signout").hidden = true;
  document.getElementById("who").textContent = "";
  loginPage(main);
}

// Draws the page the hash names. Without a known role it first asks who the session (or the
// tab's token) is: no session shows sign-in at the same hash, an unreachable coordinator a
// wait that the connection's return ends.
async function route() {
  for (const c of app.cleanups.splice(0)) c();
  const main = document.getElementById("main");
  main.replaceChildren();
  const [path, query] = location.hash.slice(1).split("?");
  const params = new URLSearchParams(query || "");
  const nav = document.getElementById("nav");
  if (!app.role) {
    try {
      const me = await api("GET", "/v1/whoami");
      if (me.role === "factory" || me.role === "enrollment") return showSignedOut(main);
      showSignedIn(me);
    } catch (e) {
      if (!(e instanceof UnreachableError)) return showSignedOut(main);
      main.append(h("p", { class: "muted" }, "Waiting for the coordinator…"));
      const retry = () => connection.since === null && route();
      window.addEventListener(CONNECTION_EVENT, retry);
      app.cleanups.push(() => window.removeEventListener(CONNECTION_EVENT, retry));
      return;
    }
  }
  if (path.startsWith("/login")) {
    location.hash = "#/overview";
    return;
  }
  nav.hidden = false;
  document.getElementById("nav-tokens").hidden = app.role !== "admin";
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
  else if (parts[0] === "budgets" && parts[1]) budgetPage(main, decodeURIComponent(parts[1]));
  else if (parts[0] === "budgets") budgetsPage(main, params);
  else if (parts[0] === "schedules" && parts[1]) schedulePage(main, decodeURIComponent(parts[1]));
  else if (parts[0] === "schedules") schedulesPage(main, params);
  else if (parts[0] === "weights") weightsPage(main, params);
  else if (parts[0] === "tokens") tokensPage(main);
  else if (parts[0] === "secrets") secretsPage(main);
  else overviewPage(main);
}

document.getElementById("signout").addEventListener("click", () => signOut());
window.addEventListener("hashchange", route);
window.addEventListener(SIGNIN_EVENT, route);
route();
