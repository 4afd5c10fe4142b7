// A conversation as the console draws it, for a live session (views/timeline.js, from the tap) and a recorded one
// (views/tapes.js, from a tape): requests paired with their answers, notifications under the request they belong
// to (by progress token, else the newest request still waiting for its answer), latency, time, verdict, and each
// message's body on demand. An event is shaped as the tap sends it: {seq, kind, direction, method, tool, id,
// verdict, by, latency_ms, time, body} plus `answers` (the seq of the request a reply answers).

import { h } from "./dom.js";
import { ARROW, DIRECTION, clock, json, ms } from "./format.js";

/** Draw the conversation of `events()` into the list `list`; returns the function that redraws it. "Body" buttons
 * open and close a message's body. options: {empty, pending} (what an empty list and an unanswered request say),
 * {when} (how an event's `time` is written; the clock time unless given). */
export function conversation(list, events, { empty, pending, when = clock }) {
  const open = new Set();
  const draw = () => {
    list.replaceChildren(...exchanges(events()).map((entry) => item(entry, open, { pending, when })));
    if (!list.childElementCount) list.append(h("li.empty", {}, empty));
  };
  list.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-seq]");
    if (!button) return;
    const seq = Number(button.dataset.seq);
    if (open.has(seq)) open.delete(seq);
    else open.add(seq);
    draw();
    list.querySelector(`button[data-seq="${seq}"]`)?.focus();
  });
  return draw;
}

/** Requests with their answers and notifications nested; what pairs with nothing stands alone, in order. */
function exchanges(events) {
  const entries = [];
  const bySeq = new Map();
  const waiting = [];
  const byToken = new Map();
  for (const event of events) {
    if (event.kind === "request") {
      const entry = { event, answer: null, notes: [] };
      entries.push(entry);
      bySeq.set(event.seq, entry);
      waiting.push(entry);
      const token = event.body?.params?._meta?.progressToken;
      if (token !== undefined) byToken.set(JSON.stringify(token), entry);
    } else if (event.answers !== undefined && bySeq.has(event.answers)) {
      const entry = bySeq.get(event.answers);
      entry.answer = event;
      waiting.splice(waiting.indexOf(entry), 1);
    } else if (event.kind === "notification") {
      const token = event.body?.params?.progressToken;
      const owner = (token !== undefined && byToken.get(JSON.stringify(token))) || waiting[waiting.length - 1];
      if (owner) owner.notes.push(event);
      else entries.push({ event, answer: null, notes: [] });
    } else {
      entries.push({ event, answer: null, notes: [] });
    }
  }
  return entries;
}

function line(event, open, when, label) {
  const blocked = event.verdict === "block";
  const parts = [
    h("span.arrow", { title: DIRECTION[event.direction] }, ARROW[event.direction]),
    h("span.kind", {}, label ?? event.kind),
    h("span.method", {}, event.method ?? "—"),
    event.tool ? h("span.tool", {}, event.tool) : null,
    event.id !== null && event.id !== undefined ? h("span.id", {}, `id ${JSON.stringify(event.id)}`) : null,
    h(`span.badge.verdict-${event.verdict}`, {}, blocked ? `blocked${event.by ? ` by ${event.by}` : ""}` : event.verdict),
    event.latency_ms !== null && event.latency_ms !== undefined ? h("span.latency", {}, ms(event.latency_ms)) : null,
    h("time.when", {}, when(event.time)),
    h("button.quiet", { type: "button", "data-seq": event.seq, "aria-expanded": open.has(event.seq) ? "true" : "false" }, "Body"),
  ];
  const body = open.has(event.seq)
    ? h("pre.body", {}, event.body === undefined || event.body === null ? (event.body_omitted ?? "no body") : json(event.body))
    : null;
  return [h(`div.line${blocked ? ".blocked" : ""}`, {}, parts), body];
}

function item({ event, answer, notes }, open, { pending, when }) {
  const kind = event.kind === "request" ? "call" : event.kind;
  return h(
    `li.exchange${event.verdict === "block" ? ".blocked" : ""}`,
    {},
    line(event, open, when, kind),
    notes.length ? h("ul.notes", { "aria-label": "Notifications" }, notes.map((note) => h("li", {}, line(note, open, when)))) : null,
    answer
      ? h("div.answer", {}, line(answer, open, when, answer.kind === "error" ? "error" : "answer"))
      : event.kind === "request" && event.verdict !== "block"
        ? h("div.answer.pending", {}, pending)
        : null,
  );
}
