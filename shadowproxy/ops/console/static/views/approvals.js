// Approvals: the messages held by an `approve` rule or a breakpoint, to approve (optionally edited), deny or
// answer; how the last ones ended; and the breakpoints in force, to add or remove.

import { call, get, post } from "../api.js";
import { h, status, table } from "../dom.js";
import { age, json, shortId } from "../format.js";

const REFRESH_MS = 2000;
const ENDED = ["Held", "Rule", "Method", "Tool", "Session", "State", "Decided by", "Reason"];
const POINTS = ["Direction", "Method", "Tool", "Session", "Upstream", ""];

export function mount(root) {
  const note = status();
  const pending = h("div.holds");
  const ended = table("Recent holds", ENDED);
  const points = table("Breakpoints", POINTS);
  const fields = {
    method: h("input", { id: "bp-method", type: "text", placeholder: "tools/call" }),
    tool: h("input", { id: "bp-tool", type: "text", placeholder: "pay_*" }),
    direction: h("select", { id: "bp-direction" }, ["both", "client_to_server", "server_to_client"].map((v) => h("option", { value: v }, v))),
  };
  const addForm = h(
    "form.controls.filters",
    { "aria-label": "Add a breakpoint" },
    h("div", {}, h("label", { for: "bp-method" }, "Method"), fields.method),
    h("div", {}, h("label", { for: "bp-tool" }, "Tool"), fields.tool),
    h("div", {}, h("label", { for: "bp-direction" }, "Direction"), fields.direction),
    h("div.buttons", {}, h("button", { type: "submit" }, "Add breakpoint")),
  );
  root.append(
    h("h1", { tabindex: "-1" }, "Approvals"),
    note,
    h("h2", {}, "Waiting for a decision"),
    pending,
    h("h2", {}, "Recent"),
    ended.box,
    h("h2", {}, "Breakpoints"),
    addForm,
    points.box,
  );
  const load = async () => {
    const [all, set] = await Promise.all([get("approvals?limit=50"), get("breakpoints")]).catch(() => [null, null]);
    if (!all?.ok) return;
    const waiting = all.data.approvals.filter((hold) => hold.state === "pending");
    const shown = new Set([...pending.querySelectorAll("[data-hold]")].map((card) => card.dataset.hold));
    for (const card of pending.querySelectorAll("[data-hold]")) {
      if (!waiting.some((hold) => hold.id === card.dataset.hold)) card.remove();
    }
    for (const hold of waiting) if (!shown.has(hold.id)) pending.append(card(hold));
    for (const left of pending.querySelectorAll(".expires")) left.textContent = expires(Number(left.dataset.at));
    if (!waiting.length) pending.replaceChildren(h("p.hint", {}, "Nothing is held."));
    else pending.querySelector("p.hint")?.remove();
    ended.body.replaceChildren(...all.data.approvals.filter((hold) => hold.state !== "pending").map(endedRow));
    if (set?.ok) points.body.replaceChildren(...set.data.breakpoints.map(pointRow));
  };
  const decide = async (hold, decision, form) => {
    const body = { decision, by: "console", reason: form.reason.value.trim() || undefined };
    if (decision === "approve" && form.edit.value.trim() !== form.edit.defaultValue.trim()) {
      let edited;
      try {
        edited = JSON.parse(form.edit.value);
      } catch {
        note.textContent = "The edited JSON does not parse; nothing was sent.";
        form.edit.focus();
        return;
      }
      body[hold.kind === "breakpoint" ? "message" : "arguments"] = edited;
    }
    const answer = await post(`approvals/${encodeURIComponent(hold.id)}`, body).catch(() => null);
    note.textContent = answer?.ok ? `${shortId(hold.id)}: ${answer.data.state}.` : `Not decided: ${answer?.data?.error ?? "no answer"}`;
    load();
  };
  const card = (hold) => {
    const edited = hold.kind === "breakpoint" ? hold.message : (hold.arguments ?? {});
    const id = `hold-${hold.id}`;
    const form = h("form.hold", { "data-hold": hold.id, "aria-labelledby": `${id}-title` });
    form.append(
      h("h3", { id: `${id}-title` }, `${hold.method ?? hold.kind}${hold.tool ? ` ${hold.tool}` : ""}`),
      h(
        "p.line",
        {},
        h("span.badge.status-starting", {}, hold.kind),
        hold.rule ? h("span", {}, `rule ${hold.rule}`) : null,
        h("span", {}, "session ", h("a.mono", { href: `#/sessions/${encodeURIComponent(hold.session ?? "")}` }, shortId(hold.session))),
        h("span", {}, `held ${age(Date.now() / 1000 - hold.created_at)} ago`),
        h("span.expires", { "data-at": hold.expires_at }, expires(hold.expires_at)),
      ),
      h("label", { for: `${id}-edit` }, hold.kind === "breakpoint" ? "Message (edit to change it)" : "Arguments (edit to change them)"),
      h("textarea.mono", { id: `${id}-edit`, name: "edit", rows: "5" }, json(edited)),
      h("label", { for: `${id}-reason` }, "Reason (optional)"),
      h("input", { id: `${id}-reason`, name: "reason", type: "text" }),
      h(
        "div.buttons",
        {},
        h("button", { type: "button", on: { click: () => decide(hold, "approve", form) } }, "Approve"),
        h("button.danger", { type: "button", on: { click: () => decide(hold, "deny", form) } }, "Deny"),
      ),
    );
    form.addEventListener("submit", (event) => event.preventDefault());
    return form;
  };
  addForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { direction: fields.direction.value };
    if (fields.method.value.trim()) body.method = fields.method.value.trim();
    if (fields.tool.value.trim()) body.tool = fields.tool.value.trim();
    const answer = await post("breakpoints", body).catch(() => null);
    note.textContent = answer?.ok ? `Breakpoint ${answer.data.id} set.` : `Not set: ${answer?.data?.error ?? "no answer"}`;
    load();
  });
  points.body.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-breakpoint]");
    if (!button) return;
    const answer = await call("DELETE", `breakpoints/${encodeURIComponent(button.dataset.breakpoint)}`).catch(() => null);
    note.textContent = answer?.status === 204 ? "Breakpoint removed." : "The breakpoint was not removed.";
    load();
  });
  load();
  const timer = setInterval(load, REFRESH_MS);
  return () => clearInterval(timer);
}

function expires(at) {
  const left = at - Date.now() / 1000;
  return left > 0 ? `decided by itself in ${age(left)}` : "timing out";
}

function endedRow(hold) {
  return h(
    "tr",
    {},
    h("td.mono", {}, shortId(hold.id)),
    h("td", {}, hold.rule ?? hold.kind),
    h("td", {}, hold.method ?? "—"),
    h("td", {}, hold.tool ?? ""),
    h("td.mono", {}, shortId(hold.session)),
    h("td", {}, h(`span.badge.hold-${hold.state}`, {}, hold.state)),
    h("td", {}, hold.decided_by ?? ""),
    h("td", {}, hold.reason ?? ""),
  );
}

function pointRow(point) {
  return h(
    "tr",
    {},
    h("td", {}, point.direction),
    h("td.mono", {}, point.method ?? "any"),
    h("td.mono", {}, point.tool ?? "any"),
    h("td.mono", {}, point.session ?? "any"),
    h("td", {}, point.upstream ?? "any"),
    h("td", {}, h("button.quiet", { type: "button", "data-breakpoint": point.id, "aria-label": `Remove breakpoint ${point.id}` }, "Remove")),
  );
}
