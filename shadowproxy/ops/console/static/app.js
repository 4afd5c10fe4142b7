// The console's shell: logging in and out, the header figures, the nav, and the hash router ("#/view/param").
// Opening the console at "#token=TOKEN" logs in with TOKEN and takes it out of the address bar at once.

import { auth, get, Unauthorized } from "./api.js";
import { Charts } from "./charts.js";
import { h } from "./dom.js";
import { feed } from "./feed.js";
import { VIEWS } from "./views/index.js";

const $ = (id) => document.getElementById(id);
const login = $("login");
const viewRoot = $("view");
const charts = new Charts($("charts"));
let unmount = null;
let routing = 0;

function takeTokenFromAddress() {
  const match = location.hash.match(/^#token=([^&]+)/);
  if (!match) return;
  auth.set(decodeURIComponent(match[1]));
  history.replaceState(null, "", `${location.pathname}${location.search}#/sessions`);
}

async function verified() {
  if (!auth.token) return false;
  try {
    return (await get("summary")).ok;
  } catch (error) {
    if (error instanceof Unauthorized) return false;
    throw error;
  }
}

function showLoggedIn(loggedIn) {
  login.hidden = loggedIn;
  viewRoot.hidden = !loggedIn;
  for (const id of ["nav", "charts", "logout"]) $(id).hidden = !loggedIn;
}

function loggedOut(message) {
  unmount?.();
  unmount = null;
  viewRoot.replaceChildren();
  feed.stop();
  charts.stop();
  showLoggedIn(false);
  document.title = "Log in · ShadowProxy console";
  $("login-error").textContent = message ?? "";
  $("token").focus();
}

function loggedIn() {
  showLoggedIn(true);
  feed.start();
  charts.start();
  route();
}

async function route() {
  if (!auth.token) return loggedOut();
  const hash = location.hash.startsWith("#/") ? location.hash.slice(2) : "";
  if (!hash && viewRoot.childElementCount && location.hash) return; // an in-page link such as "Skip to content"
  const [path, ...rest] = hash.split("/");
  const view = VIEWS.find((v) => v.path === path) ?? VIEWS[0];
  const param = rest.length ? decodeURIComponent(rest.join("/")) : null;
  for (const link of document.querySelectorAll("#nav-list a")) {
    if (link.dataset.path === view.path) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const mine = ++routing;
  const module = await view.load();
  if (mine !== routing) return;
  unmount?.();
  viewRoot.replaceChildren();
  unmount = module.mount(viewRoot, { param, feed });
  document.title = `${viewRoot.querySelector("h1")?.textContent ?? view.title} · ShadowProxy console`;
  viewRoot.querySelector("h1")?.focus();
}

function buildNav() {
  $("nav-list").replaceChildren(...VIEWS.map((v) => h("li", {}, h("a", { href: `#/${v.path}`, "data-path": v.path }, v.title))));
}

login.addEventListener("submit", async (event) => {
  event.preventDefault();
  auth.set($("token").value.trim());
  $("token").value = "";
  const ok = await verified().catch(() => null);
  if (ok) loggedIn();
  else loggedOut(ok === null ? "The proxy did not answer." : "That token was refused.");
});
$("logout").addEventListener("click", () => {
  auth.clear();
  loggedOut("Logged out.");
});
addEventListener("console:logout", () => loggedOut("The admin token was refused; log in again."));
addEventListener("hashchange", () => {
  if (location.hash.startsWith("#token=")) {
    takeTokenFromAddress();
    verified()
      .then((ok) => (ok ? loggedIn() : loggedOut("That token was refused.")))
      .catch(() => loggedOut("The proxy did not answer."));
    return;
  }
  if (auth.token) route();
});
addEventListener("console:tap", (event) => document.body.classList.toggle("tap-down", !event.detail));

buildNav();
takeTokenFromAddress();
verified()
  .then((ok) => (ok ? loggedIn() : loggedOut(auth.token ? "That token was refused." : "")))
  .catch(() => loggedOut("The proxy did not answer; reload the page to try again."));
