// One session's page: what the proxy knows of it, and its conversation as this console saw it on the tap:
// requests paired with their answers, notifications under the request they belong to (by progress token, else
// the newest request of the session still waiting for its answer), timings, verdicts, and each message's body
// (as the tap masks it) on demand. Redrawn at most once per animation frame.

import { call, get } from "../api.js";
import { h, status } from "../dom.js";
import { ARROW, DIRECTION, age, client, clock, json, ms, shortId } from "../format.js";
import { HISTORY } from "../feed.js";

export function mountSession(root, { param: id, feed }) {
  const facts = h("dl.facts");
  const note = status();
  const list = h("ol.timeline", { "aria-label": "Conversation" });
  const end = h("button", { type: "button", class: "danger" }, "End session");
  root.append(
    h("p.crumbs", {}, h("a", { href: "#/sessions" }, "Sessions"), " / ", h("span.mono", {}, shortId(id))),
    h("h1", { tabindex: "-1" }, `Session ${shortId(id)}`),
    facts,
    h("div.controls", {}, end),
    note,
    h("h2", {}, "Conversation"),
    h("p.hint", {}, `Messages this console has seen since it was opened (the newest ${HISTORY}); open the console before the client connects to see a whole conversation.`),
    list,
  );
  const open = new Set();
  let frame = 0;
  const draw = () => {
    frame = 0;
    list.replaceChildren(...exchanges(feed.history(id)).map((entry) => item(entry, open)));
    if (!list.childElementCount) list.append(h("li.empty", {}, "Nothing seen yet."));
  };
  const later = () => {
    if (!frame) frame = requestAnimationFrame(draw);
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
  const unsubscribe = feed.subscribe((batch) => {
    if (batch.some((event) => event.session === id)) later();
  });
  const load = async () => {
    const answer = await get(`sessions/${encodeURIComponent(id)}`).catch(() => null);
    if (answer?.status === 404) {
      facts.replaceChildren(h("dt", {}, "State"), h("dd", {}, "not live (ended, or held by another instance)"));
      return;
    }
    if (answer?.ok) facts.replaceChildren(...describe(answer.data));
  };
  end.addEventListener("click", async () => {
    const answer = await call("DELETE", `sessions/${encodeURIComponent(id)}`).catch(() => null);
    note.textContent = answer?.status === 204 ? "Session ended." : "The session was not ended (it is not live here).";
    load();
  });
  load();
  draw();
  const timer = setInterval(load, 3000);
  return () => {
    clearInterval(timer);
    unsubscribe();
    cancelAnimationFrame(frame);
  };
}

function describe(session) {
  const rows = [
    ["Id", session.id],
    ["Principal", session.principal ?? "—"],
    ["Client", client(session)],
    ["Upstream", session.upstream],
    ["Protocol", session.protocol_version ?? "—"],
    ["Transport", session.transport ?? "—"],
    ["Age", age(Date.now() / 1000 - session.created_at)],
    ["Messages", String(session.messages)],
    ["Errors", String(session.errors)],
    ["State", session.state],
  ];
  return rows.flatMap(([name, value]) => [h("dt", {}, name), h("dd", {}, value)]);
}

/** Requests with their answers and notifications nested; what pairs with nothing stands alone, in order. */
export function exchanges(events) {
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

function line(event, open, label) {
  const blocked = event.verdict === "block";
  const parts = [
    h("span.arrow", { title: DIRECTION[event.direction] }, ARROW[event.direction]),
    h("span.kind", {}, label ?? event.kind),
    h("span.method", {}, event.method ?? "—"),
    event.tool ? h("span.tool", {}, event.tool) : null,
    event.id !== null && event.id !== undefined ? h("span.id", {}, `id ${JSON.stringify(event.id)}`) : null,
    h(`span.badge.verdict-${event.verdict}`, {}, blocked ? `blocked${event.by ? ` by ${event.by}` : ""}` : event.verdict),
    event.latency_ms !== null && event.latency_ms !== undefined ? h("span.latency", {}, ms(event.latency_ms)) : null,
    h("time.when", {}, clock(event.time)),
    h("button.quiet", { type: "button", "data-seq": event.seq, "aria-expanded": open.has(event.seq) ? "true" : "false" }, "Body"),
  ];
  const body = open.has(event.seq)
    ? h("pre.body", {}, event.body === undefined || event.body === null ? (event.body_omitted ?? "no body") : json(event.body))
    : null;
  return [h(`div.line${blocked ? ".blocked" : ""}`, {}, parts), body];
}

function item({ event, answer, notes }, open) {
  const kind = event.kind === "request" ? "call" : event.kind;
  return h(
    `li.exchange${event.verdict === "block" ? ".blocked" : ""}`,
    {},
    line(event, open, kind),
    notes.length ? h("ul.notes", { "aria-label": "Notifications" }, notes.map((note) => h("li", {}, line(note, open)))) : null,
    answer
      ? h("div.answer", {}, line(answer, open, answer.kind === "error" ? "error" : "answer"))
      : event.kind === "request" && event.verdict !== "block"
        ? h("div.answer.pending", {}, "waiting for the answer…")
        : null,
  );
}
