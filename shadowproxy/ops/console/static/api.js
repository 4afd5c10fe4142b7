// The admin API, as the console calls it: the token from sessionStorage in the Authorization header, no cookie.
// Paths are relative to the console's own (/_shadowproxy/console/), so a prefix added by a reverse proxy still works.

const KEY = "shadowproxy.console.token";

export const auth = {
  get token() {
    return sessionStorage.getItem(KEY);
  },
  set(token) {
    sessionStorage.setItem(KEY, token);
  },
  clear() {
    sessionStorage.removeItem(KEY);
  },
};

export class Unauthorized extends Error {}

export function url(path) {
  return new URL(`../${path}`, location.href).toString();
}

export function headers() {
  return { Authorization: `Bearer ${auth.token ?? ""}` };
}

/** Tell the page the token was refused: it logs out and shows the login form. */
export function refused() {
  auth.clear();
  dispatchEvent(new Event("console:logout"));
}

/** Call the admin API: {status, ok, data} (data is the JSON body or null); 401 logs out and throws. */
export async function call(method, path, body) {
  const sent = { method, headers: headers(), credentials: "omit", cache: "no-store" };
  if (body !== undefined) {
    sent.headers["Content-Type"] = "application/json";
    sent.body = JSON.stringify(body);
  }
  const response = await fetch(url(path), sent);
  if (response.status === 401) {
    refused();
    throw new Unauthorized("the admin token was refused");
  }
  const type = response.headers.get("Content-Type") ?? "";
  const data = type.includes("json") ? await response.json() : null;
  return { status: response.status, ok: response.ok, data };
}

export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body);
