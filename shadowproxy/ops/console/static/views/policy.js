// Policy: the rules in force (file, id, action), hits per rule, the last refused reload's error, and a reload
// button (POST /_shadowproxy/rules/reload).

import { get, post } from "../api.js";
import { h, status, table } from "../dom.js";

const REFRESH_MS = 3000;
const COLUMNS = ["Rule", "Action", "File", "Priority", "Hits", "Description"];

export function mount(root) {
  const reload = h("button", { type: "button", id: "policy-reload" }, "Reload rules");
  const note = status();
  const content = h("div");
  root.append(h("h1", { tabindex: "-1" }, "Policy"), h("div.controls", {}, reload), note, content);
  const load = async () => {
    const answer = await get("rules").catch(() => null);
    if (!answer?.ok) return;
    const found = answer.data.interceptors;
    if (!found.length) {
      content.replaceChildren(h("p", {}, "No rules interceptor is configured."));
      return;
    }
    content.replaceChildren(...found.map(section));
  };
  reload.addEventListener("click", async () => {
    reload.disabled = true;
    const answer = await post("rules/reload").catch(() => null);
    reload.disabled = false;
    if (answer?.status === 200) note.textContent = "Reloaded: the new rules are in force.";
    else if (answer?.status === 422) {
      const errors = answer.data.interceptors.filter((i) => !i.reloaded).map((i) => `${i.interceptor}: ${i.error}`);
      note.textContent = `Refused; the last good rules stay in force. ${errors.join(" ")}`;
    } else note.textContent = `Reload failed: ${answer?.data?.error ?? "no answer"}`;
    load();
  });
  load();
  const timer = setInterval(load, REFRESH_MS);
  return () => clearInterval(timer);
}

function section(interceptor) {
  const { box, body } = table(`Rules of ${interceptor.interceptor}`, COLUMNS);
  body.append(
    ...interceptor.rules.map((rule) =>
      h(
        "tr",
        {},
        h("th.mono", { scope: "row" }, rule.id),
        h("td", {}, h(`span.badge.action-${rule.action}`, {}, rule.action)),
        h("td.mono", {}, rule.line ? `${rule.file}:${rule.line}` : rule.file),
        h("td.num", {}, rule.priority),
        h("td.num", {}, rule.hits),
        h("td", {}, rule.description ?? ""),
      ),
    ),
  );
  return h(
    "section",
    { "aria-label": interceptor.interceptor },
    h("h2", {}, `${interceptor.interceptor}: ${interceptor.rules.length} rule${interceptor.rules.length === 1 ? "" : "s"}, default ${interceptor.default}`),
    h("p.mono.files", {}, interceptor.files.join(", ")),
    interceptor.last_error
      ? h("div.refused", {}, h("h3", {}, "The last reload was refused"), h("pre", {}, interceptor.last_error))
      : null,
    box,
  );
}
