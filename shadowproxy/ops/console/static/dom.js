// Building the page: elements are made with h(), and every value goes in as text, never as HTML.

/** h("tag.class1.class2", {attribute: value, on: {click: fn}}, ...children) */
export function h(tag, props, ...children) {
  const [name, ...classes] = tag.split(".");
  const element = document.createElement(name);
  if (classes.length) element.className = classes.join(" ");
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "on") {
      for (const [event, listener] of Object.entries(value)) element.addEventListener(event, listener);
    } else if (key === "class") {
      element.classList.add(...String(value).split(" ").filter(Boolean));
    } else {
      element.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

export function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

/** A table in a focusable, labelled scroll box (narrow screens scroll it sideways). */
export function table(label, columns) {
  const body = h("tbody");
  const box = h(
    "div.table-wrap",
    { role: "region", "aria-label": label, tabindex: "0" },
    h("table", {}, h("caption.visually-hidden", {}, label), h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))), body),
  );
  return { box, body };
}

/** A polite live region that says what an action did. */
export function status() {
  return h("p.status", { role: "status", "aria-live": "polite" });
}
