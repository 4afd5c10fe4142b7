// How numbers, times and ids are written.

export function shortId(id) {
  return id ? id.slice(0, 8) : "—";
}

export function age(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "—";
  if (seconds < 60) return `${Math.floor(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
  return `${Math.floor(seconds / 86400)} d`;
}

export function ms(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  return value < 10 ? `${value.toFixed(2)} ms` : `${Math.round(value)} ms`;
}

const two = (n) => (n < 10 ? `0${n}` : `${n}`);

/** hh:mm:ss.mmm in local time (by hand: toLocaleTimeString was the flow view's costliest call). */
export function clock(unixSeconds) {
  const date = new Date(unixSeconds * 1000);
  const millis = date.getMilliseconds();
  const tail = millis < 10 ? `00${millis}` : millis < 100 ? `0${millis}` : `${millis}`;
  return `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}.${tail}`;
}

export function bytes(size) {
  if (size === null || size === undefined) return "—";
  return size < 1024 ? `${size} B` : `${(size / 1024).toFixed(1)} KB`;
}

export const ARROW = { client_to_server: "→", server_to_client: "←" };
export const DIRECTION = { client_to_server: "client → server", server_to_client: "server → client" };

export function json(value) {
  return JSON.stringify(value, null, 2);
}

export function client(session) {
  const info = session.client_info;
  if (!info?.name) return "—";
  return info.version ? `${info.name} ${info.version}` : info.name;
}
