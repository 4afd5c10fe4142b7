// Sessions: the live sessions as a table with search (#/sessions), and one session's page (#/sessions/ID).

import { get } from "../api.js";
import { h, status, table } from "../dom.js";
import { age, client, shortId } from "../format.js";
import { mountSession } from "./timeline.js";

const REFRESH_MS = 2000;
const COLUMNS = ["Session", "Principal", "Client", "Upstream", "Protocol", "Transport", "Age", "Messages", "Errors", "State"];

export function mount(root, context) {
  if (context.param) return mountSession(root, context);
  const search = h("input", { id: "session-search", type: "search", placeholder: "id, principal, client, upstream…" });
  const { box, body } = table("Live sessions", COLUMNS);
  const note = status();
  root.append(
    h("h1", { tabindex: "-1" }, "Sessions"),
    h("div.controls", {}, h("label", { for: "session-search" }, "Search"), search),
    note,
    box,
  );
  let sessions = [];
  const render = () => {
    const words = search.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    const shown = sessions.filter((s) => words.every((w) => haystack(s).includes(w)));
    const now = Date.now() / 1000;
    body.replaceChildren(
      ...shown.map((s) =>
        h(
          "tr",
          {},
          h("td", {}, h("a.mono", { href: `#/sessions/${encodeURIComponent(s.id)}`, title: s.id }, shortId(s.id))),
          h("td", {}, s.principal ?? "—"),
          h("td", {}, client(s)),
          h("td", {}, s.upstream),
          h("td", {}, s.protocol_version ?? "—"),
          h("td", {}, s.transport ?? "—"),
          h("td", {}, age(now - s.created_at)),
          h("td.num", {}, s.messages),
          h("td.num", {}, s.errors),
          h("td", {}, h(`span.badge.state-${s.state}`, {}, s.state)),
        ),
      ),
    );
    note.textContent = `${shown.length} of ${sessions.length} live sessions`;
  };
  const load = async () => {
    const answer = await get("sessions?limit=1000").catch(() => null);
    if (!answer?.ok) return;
    sessions = answer.data.sessions.slice().reverse();
    render();
  };
  search.addEventListener("input", render);
  load();
  const timer = setInterval(load, REFRESH_MS);
  return () => clearInterval(timer);
}

function haystack(session) {
  return [session.id, session.principal, client(session), session.upstream, session.transport, session.state]
    .filter(Boolean)
    .join(" ")
    .toLowerCase();
}
