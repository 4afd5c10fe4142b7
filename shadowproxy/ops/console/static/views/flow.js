// Flow: the live message stream, filtered by method, tool, session, direction and verdict, with pause.
//
// Built to keep up with 1,000 messages a second: events arrive in batches (feed.js), are filtered at once, and
// drawn in an animation frame at most every DRAW_EVERY_MS; a draw adds at most PER_FRAME rows (the newest; the
// rest are counted as "not drawn", and stay in feed.recent) and the table keeps only the newest MAX_ROWS rows. While paused, up to PAUSED_LIMIT events wait;
// beyond that they are counted as dropped by the console. The proxy's own drops (a reader too slow for its
// queue) are counted apart.

import { h, table } from "../dom.js";
import { ARROW, DIRECTION, bytes, clock, json, ms, shortId } from "../format.js";

const MAX_ROWS = 100;
const PER_FRAME = 40;
const DRAW_EVERY_MS = 100;
const PAUSED_LIMIT = 5000;
const COLUMNS = ["Time", "Dir", "Session", "Kind", "Method", "Tool", "Id", "Verdict", "Latency", "Size", "Body"];

export function mount(root, { feed }) {
  const fields = {
    method: h("input", { id: "flow-method", type: "search", placeholder: "tools/call, tools/*" }),
    tool: h("input", { id: "flow-tool", type: "search" }),
    session: h("input", { id: "flow-session", type: "search", placeholder: "id prefix" }),
    direction: select("flow-direction", [["", "both"], ["client_to_server", "client → server"], ["server_to_client", "server → client"]]),
    verdict: select("flow-verdict", [["", "any"], ["forward", "forward"], ["modified", "modified"], ["block", "block"], ["respond", "respond"]]),
  };
  const pause = h("button", { type: "button", "aria-pressed": "false", id: "flow-pause" }, "Pause");
  const clearButton = h("button.quiet", { type: "button" }, "Clear");
  const counters = h("p.counters", { id: "flow-counters", "aria-live": "off" });
  const detail = h("section.detail", { "aria-label": "Message body", hidden: true });
  const { box, body } = table("Messages, newest first", COLUMNS);
  box.classList.add("flow-table");
  const label = (id, text) => h("label", { for: id }, text);
  root.append(
    h("h1", { tabindex: "-1" }, "Flow"),
    h(
      "form.controls.filters",
      { role: "search", "aria-label": "Filter messages", on: { submit: (e) => e.preventDefault() } },
      h("div", {}, label("flow-method", "Method"), fields.method),
      h("div", {}, label("flow-tool", "Tool"), fields.tool),
      h("div", {}, label("flow-session", "Session"), fields.session),
      h("div", {}, label("flow-direction", "Direction"), fields.direction),
      h("div", {}, label("flow-verdict", "Verdict"), fields.verdict),
      h("div.buttons", {}, pause, clearButton),
    ),
    counters,
    h("p.hint", {}, `Drawn in batches, at most ${1000 / DRAW_EVERY_MS} times a second and ${PER_FRAME} new rows each (the newest); the newest ${MAX_ROWS} rows are kept.`),
    detail,
    box,
  );

  const state = { paused: false, waiting: [], pending: [], shown: 0, matched: 0, notDrawn: 0, consoleDropped: 0, frame: 0, drawn: 0, bodies: new Map() };
  let test = matcher(fields);

  const draw = () => {
    state.frame = 0;
    state.drawn = performance.now();
    let events = state.pending;
    state.pending = [];
    if (events.length > PER_FRAME) {
      state.notDrawn += events.length - PER_FRAME;
      events = events.slice(-PER_FRAME);
    }
    const fragment = document.createDocumentFragment();
    for (let i = events.length - 1; i >= 0; i -= 1) fragment.append(row(events[i], state.bodies));
    body.prepend(fragment);
    while (body.childElementCount > MAX_ROWS) {
      state.bodies.delete(Number(body.lastElementChild.dataset.seq));
      body.lastElementChild.remove();
    }
    state.shown = body.childElementCount;
    counters.textContent =
      `${state.matched} matched · ${state.shown} shown · ${state.notDrawn} not drawn · ` +
      `dropped: ${feed.dropped} by the proxy, ${state.consoleDropped} by the console` +
      (state.paused ? ` · paused, ${state.waiting.length} waiting` : "");
  };
  // At most one draw per DRAW_EVERY_MS, in an animation frame: the browser's layout and paint of the table, not
  // the script, are what a faster pace would cost.
  const later = () => {
    if (state.frame) return;
    const wait = DRAW_EVERY_MS - (performance.now() - state.drawn);
    state.frame = wait > 0 ? setTimeout(() => (state.frame = requestAnimationFrame(draw)), wait) : requestAnimationFrame(draw);
  };
  const take = (batch) => {
    for (const event of batch) {
      if (!test(event)) continue;
      state.matched += 1;
      if (!state.paused) {
        state.pending.push(event);
      } else if (state.waiting.length < PAUSED_LIMIT) {
        state.waiting.push(event);
      } else {
        state.consoleDropped += 1;
      }
    }
    later();
  };
  const refilter = () => {
    test = matcher(fields);
    body.replaceChildren();
    state.bodies.clear();
    state.matched = 0;
    state.pending = [];
    state.waiting = [];
    take(feed.recent.slice(-MAX_ROWS));
  };
  for (const field of Object.values(fields)) field.addEventListener("input", refilter);
  pause.addEventListener("click", () => {
    state.paused = !state.paused;
    pause.setAttribute("aria-pressed", String(state.paused));
    pause.textContent = state.paused ? "Resume" : "Pause";
    if (!state.paused) {
      state.pending.push(...state.waiting);
      state.waiting = [];
    }
    later();
  });
  clearButton.addEventListener("click", () => {
    body.replaceChildren();
    state.bodies.clear();
    Object.assign(state, { matched: 0, notDrawn: 0, consoleDropped: 0, pending: [], waiting: [] });
    later();
  });
  body.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-seq]");
    if (!button) return;
    const shown = state.bodies.get(Number(button.dataset.seq));
    detail.hidden = false;
    detail.replaceChildren(
      h("h2", {}, `${shown.method ?? shown.kind} · ${DIRECTION[shown.direction]}`),
      h("pre.body", { tabindex: "0" }, shown.body === undefined || shown.body === null ? (shown.body_omitted ?? "no body") : json(shown.body)),
      h("button.quiet", { type: "button", on: { click: () => { detail.hidden = true; button.focus(); } } }, "Close"),
    );
    detail.querySelector("pre").focus();
  });

  take(feed.recent.slice(-MAX_ROWS));
  const unsubscribe = feed.subscribe(take);
  return () => {
    unsubscribe();
    cancelAnimationFrame(state.frame);
    clearTimeout(state.frame);
  };
}

function select(id, options) {
  return h("select", { id }, options.map(([value, text]) => h("option", { value }, text)));
}

/** The filter as one test; method accepts a prefix or a glob (*, ?), like the tap's own parameter. */
function matcher(fields) {
  const method = fields.method.value.trim();
  const methodTest = /[*?]/.test(method)
    ? new RegExp(`^${method.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`)
    : null;
  const tool = fields.tool.value.trim();
  const session = fields.session.value.trim();
  const direction = fields.direction.value;
  const verdict = fields.verdict.value;
  return (event) =>
    (!method || (methodTest ? methodTest.test(event.method ?? "") : (event.method ?? "").startsWith(method))) &&
    (!tool || (event.tool ?? "").includes(tool)) &&
    (!session || (event.session ?? "").startsWith(session)) &&
    (!direction || event.direction === direction) &&
    (!verdict || event.verdict === verdict);
}

function row(event, bodies) {
  bodies.set(event.seq, event);
  const blocked = event.verdict === "block";
  return h(
    `tr${blocked ? ".blocked" : ""}`,
    { "data-seq": event.seq },
    h("td.mono", {}, clock(event.time)),
    h("td", { title: DIRECTION[event.direction] }, ARROW[event.direction]),
    h("td", {}, event.session ? h("a.mono", { href: `#/sessions/${encodeURIComponent(event.session)}` }, shortId(event.session)) : "—"),
    h("td", {}, event.kind),
    h("td.method", {}, event.method ?? "—"),
    h("td", {}, event.tool ?? ""),
    h("td.mono", {}, event.id === null || event.id === undefined ? "" : JSON.stringify(event.id)),
    h("td", {}, h(`span.badge.verdict-${event.verdict}`, {}, blocked ? "blocked" : event.verdict)),
    h("td.num", {}, event.latency_ms === null ? "" : ms(event.latency_ms)),
    h("td.num", {}, bytes(event.size)),
    h("td", {}, h("button.quiet", { type: "button", "data-seq": event.seq, "aria-label": `Body of ${event.kind} ${event.method ?? ""}` }, "Body")),
  );
}
