// The console's views. Adding one is a module with `export function mount(root, context)` (returning a function
// that undoes it) and one entry here: `path` is its place after "#/", and the nav lists the entries in order.
// context: {param} (what follows "#/path/", decoded, or null), {feed} (the shared live tap).

export const VIEWS = [
  { path: "sessions", title: "Sessions", load: () => import("./sessions.js") },
  { path: "flow", title: "Flow", load: () => import("./flow.js") },
  { path: "upstreams", title: "Upstreams", load: () => import("./upstreams.js") },
  { path: "policy", title: "Policy", load: () => import("./policy.js") },
  { path: "approvals", title: "Approvals", load: () => import("./approvals.js") },
  { path: "tapes", title: "Tapes", load: () => import("./tapes.js") },
];
