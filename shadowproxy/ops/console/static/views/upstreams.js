// Upstreams: status, circuit, restarts, crashes, sessions and latency percentiles (since the proxy started),
// with a restart button for the upstreams the proxy runs (stdio).

import { get, post } from "../api.js";
import { h, status, table } from "../dom.js";
import { ms } from "../format.js";

const REFRESH_MS = 3000;
const COLUMNS = ["Upstream", "Transport", "Status", "Circuit", "Restarts", "Crashes", "Sessions", "p50", "p95", "p99", "Paths", ""];

export function mount(root) {
  const { box, body } = table("Upstreams", COLUMNS);
  const note = status();
  root.append(h("h1", { tabindex: "-1" }, "Upstreams"), note, box, h("p.hint", {}, "Latency: time from sending a request upstream to its reply, since the proxy started."));
  let busy = null;
  const load = async () => {
    const [listed, totals] = await Promise.all([get("upstreams"), get("summary")]).catch(() => [null, null]);
    if (!listed?.ok) return;
    const latency = totals?.data?.upstreams ?? {};
    const focused = document.activeElement?.dataset?.upstream;
    body.replaceChildren(...listed.data.upstreams.map((u) => row(u, latency[u.name] ?? {}, busy)));
    if (focused) body.querySelector(`button[data-upstream="${CSS.escape(focused)}"]`)?.focus();
  };
  body.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-upstream]");
    if (!button || busy) return;
    busy = button.dataset.upstream;
    note.textContent = `Restarting ${busy}…`;
    button.disabled = true;
    const answer = await post(`upstreams/${encodeURIComponent(busy)}/restart`).catch(() => null);
    note.textContent = answer?.ok
      ? `Restarted ${busy}: ${answer.data.status}, ${answer.data.restarts} restarts.`
      : `${busy} was not restarted: ${answer?.data?.error ?? "no answer"}`;
    busy = null;
    load();
  });
  load();
  const timer = setInterval(load, REFRESH_MS);
  return () => clearInterval(timer);
}

function row(upstream, latency, busy) {
  const runs = upstream.transport === "stdio";
  return h(
    "tr",
    {},
    h("th", { scope: "row" }, upstream.name),
    h("td", {}, upstream.transport),
    h("td", {}, h(`span.badge.status-${upstream.status}`, { title: upstream.problem ?? "" }, upstream.status)),
    h("td", {}, upstream.circuit ?? "—"),
    h("td.num", {}, upstream.restarts),
    h("td.num", {}, upstream.crashes),
    h("td.num", {}, upstream.sessions),
    h("td.num", {}, ms(latency.p50_ms)),
    h("td.num", {}, ms(latency.p95_ms)),
    h("td.num", {}, ms(latency.p99_ms)),
    h("td", {}, upstream.paths.join(" ")),
    h(
      "td",
      {},
      h(
        "button",
        {
          type: "button",
          "data-upstream": upstream.name,
          disabled: !runs || busy === upstream.name,
          title: runs ? "" : "reached by URL: the proxy does not run it",
          "aria-label": `Restart ${upstream.name}`,
        },
        "Restart",
      ),
    ),
  );
}
