// Tapes: the recorded sessions (#/tapes), and one tape as a conversation (#/tapes/NAME) drawn by the same code as a
// live session's timeline. A download is fetched with the Authorization header and handed to the browser as a blob
// URL: the token never goes in a URL.

import { get, headers, refused, url } from "../api.js";
import { conversation } from "../conversation.js";
import { h, status, table } from "../dom.js";
import { bytes, client } from "../format.js";

const REFRESH_MS = 5000;
const COLUMNS = ["Tape", "Upstream", "Transport", "Client", "Started", "Messages", "Size", "Download"];
const NONE = "No tapes are configured: add tapes: {dir: ...} to the config, or run with --record DIR.";

export function mount(root, context) {
  if (context.param) return mountTape(root, context.param);
  const { box, body } = table("Tapes", COLUMNS);
  const note = status();
  const counts = h("p.counters");
  root.append(
    h("h1", { tabindex: "-1" }, "Tapes"),
    h("p.hint", {}, "Recorded sessions, newest first. A tape holds the messages as they went on, masked as configured."),
    counts,
    note,
    box,
  );
  body.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-tape]");
    if (button) download(button.dataset.tape, note);
  });
  const load = async () => {
    const answer = await get("tapes").catch(() => null);
    if (answer?.status === 404) {
      counts.textContent = NONE;
      return;
    }
    if (!answer?.ok) return;
    const { tapes, written, dropped, unattributed } = answer.data;
    counts.textContent = `${tapes.length} tapes · ${written} messages written · ${dropped} dropped (queue full) · ${unattributed} outside any session`;
    body.replaceChildren(
      ...tapes
        .slice()
        .reverse()
        .map((tape) =>
          h(
            "tr",
            {},
            h("td", {}, h("a.mono", { href: `#/tapes/${encodeURIComponent(tape.name)}` }, tape.name)),
            h("td", {}, tape.upstream ?? "—"),
            h("td", {}, tape.transport ?? "—"),
            h("td", {}, client({ client_info: tape.client })),
            h("td", {}, tape.started ?? "—"),
            h("td.num", {}, tape.messages),
            h("td.num", {}, bytes(tape.size)),
            h("td", {}, h("button.quiet", { type: "button", "data-tape": tape.name, "aria-label": `Download ${tape.name}` }, "Download")),
          ),
        ),
    );
  };
  load();
  const timer = setInterval(load, REFRESH_MS);
  return () => clearInterval(timer);
}

function mountTape(root, name) {
  const facts = h("dl.facts");
  const note = status();
  const list = h("ol.timeline", { "aria-label": "Conversation" });
  const save = h("button", { type: "button", id: "tape-download" }, "Download (JSON Lines)");
  root.append(
    h("p.crumbs", {}, h("a", { href: "#/tapes" }, "Tapes"), " / ", h("span.mono", {}, name)),
    h("h1", { tabindex: "-1" }, `Tape ${name}`),
    facts,
    h("div.controls", {}, save),
    note,
    h("h2", {}, "Conversation"),
    list,
  );
  let events = [];
  const draw = conversation(list, () => events, {
    empty: "The tape holds no message.",
    pending: "no answer on the tape",
    when: (t) => `+${t.toFixed(3)} s`,
  });
  save.addEventListener("click", () => download(name, note));
  get(`tapes/${encodeURIComponent(name)}`)
    .then((answer) => {
      if (!answer.ok) {
        note.textContent = answer.data?.error ?? `The tape could not be read (${answer.status}).`;
        return;
      }
      facts.replaceChildren(...describe(name, answer.data.header, answer.data.messages.length));
      events = asEvents(answer.data.messages);
      draw();
    })
    .catch(() => {
      note.textContent = "The proxy did not answer.";
    });
  return () => {};
}

function describe(name, header, count) {
  const rows = [
    ["Tape", name],
    ["Session (digest)", header.session ?? "—"],
    ["Client", client({ client_info: header.client })],
    ["Upstream", header.upstream ?? "—"],
    ["Protocol", header.protocol_version ?? "—"],
    ["Transport", header.transport ?? "—"],
    ["Started", header.started ?? "—"],
    ["Part", String(header.part ?? 1)],
    ["Messages", String(count)],
  ];
  return rows.flatMap(([key, value]) => [h("dt", {}, key), h("dd", {}, value)]);
}

/** The tape's lines shaped as tap events (`time` is seconds since the tape's first message), replies linked to their
 * requests, so the timeline's code draws them. */
function asEvents(messages) {
  const asked = new Map();
  return messages.map((entry) => {
    const msg = entry.msg;
    const kind = "method" in msg ? ("id" in msg ? "request" : "notification") : "error" in msg ? "error" : "response";
    const event = {
      seq: entry.line,
      kind,
      direction: entry.dir,
      method: msg.method ?? null,
      tool: msg.method === "tools/call" ? (msg.params?.name ?? null) : null,
      id: msg.id ?? null,
      verdict: entry.verdict,
      by: entry.from_proxy ? (entry.by ?? "the proxy") : entry.by,
      latency_ms: null,
      time: entry.t,
      body: msg,
    };
    const key = (direction) => `${direction}|${JSON.stringify(msg.id)}`;
    if (kind === "request") {
      asked.set(key(entry.dir), event);
    } else if (kind === "response" || kind === "error") {
      const request = asked.get(key(entry.dir === "client_to_server" ? "server_to_client" : "client_to_server"));
      if (request) {
        asked.delete(key(request.direction));
        Object.assign(event, { answers: request.seq, method: request.method, tool: request.tool });
        event.latency_ms = (event.time - request.time) * 1000;
      }
    }
    return event;
  });
}

/** Save a tape's file: fetched with the token in a header, then offered to the browser from a blob URL. */
async function download(name, note) {
  note.textContent = `Downloading ${name}…`;
  try {
    const response = await fetch(url(`tapes/${encodeURIComponent(name)}/download`), { headers: headers(), credentials: "omit", cache: "no-store" });
    if (response.status === 401) return refused();
    if (!response.ok) {
      note.textContent = `The download was refused (${response.status}).`;
      return;
    }
    const link = h("a", { href: URL.createObjectURL(await response.blob()), download: name, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
    note.textContent = `Downloaded ${name}.`;
  } catch {
    note.textContent = "The proxy did not answer.";
  }
}
