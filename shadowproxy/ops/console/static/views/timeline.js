// One session's page: what the proxy knows of it, and its conversation as this console saw it on the tap:
// requests paired with their answers, notifications under the request they belong to (by progress token, else
// the newest request of the session still waiting for its answer), timings, verdicts, and each message's body
// (as the tap masks it) on demand. Redrawn at most once per animation frame.

import { call, get } from "../api.js";
import { h, status } from "../dom.js";
import { conversation } from "../conversation.js";
import { age, client, shortId } from "../format.js";
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
  const draw = conversation(list, () => feed.history(id), { empty: "Nothing seen yet.", pending: "waiting for the answer…" });
  let frame = 0;
  const later = () => {
    if (!frame) {
      frame = requestAnimationFrame(() => {
        frame = 0;
        draw();
      });
    }
  };
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
