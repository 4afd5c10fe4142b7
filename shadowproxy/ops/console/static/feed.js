// The live tap (GET /_shadowproxy/tap?bodies=1), read once for the whole console and shared by its views.
//
// EventSource cannot send an Authorization header, so the stream is read with fetch() and its body parsed as
// server-sent events here: the token stays in a header, never in a URL. Events are handed to subscribers in
// batches (one per chunk the network delivered), so a view does its work once per batch, not per message.
//
// What the console remembers is bounded: the newest RECENT events, and per session its newest HISTORY events
// for SESSIONS sessions. A session's timeline shows what this console saw since it was opened.

import { headers, refused, url } from "./api.js";

export const RECENT = 2000;
export const HISTORY = 500;
export const SESSIONS = 200;
const PENDING = 10000;
const RETRY_MS = 2000;

export class Feed {
  constructor() {
    this.subscribers = new Set();
    this.recent = [];
    this.sessions = new Map();
    this.requests = new Map();
    this.seq = 0;
    this.received = 0;
    this.dropped = 0;
    this.connected = false;
    this.controller = null;
  }

  start() {
    if (this.controller) return;
    this.controller = new AbortController();
    this.run(this.controller.signal);
  }

  stop() {
    this.controller?.abort();
    this.controller = null;
    this.connected = false;
  }

  subscribe(listener) {
    this.subscribers.add(listener);
    return () => this.subscribers.delete(listener);
  }

  history(session) {
    return this.sessions.get(session) ?? [];
  }

  async run(signal) {
    while (!signal.aborted) {
      try {
        const response = await fetch(url("tap?bodies=1"), { headers: headers(), credentials: "omit", cache: "no-store", signal });
        if (response.status === 401) {
          refused();
          return;
        }
        if (!response.ok || !response.body) throw new Error(`tap answered ${response.status}`);
        this.setConnected(true);
        await this.read(response.body, signal);
      } catch (error) {
        if (signal.aborted) return;
      }
      this.setConnected(false);
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }

  async read(body, signal) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    while (!signal.aborted) {
      const { value, done } = await reader.read();
      if (done) return;
      // One split per chunk: the frames it completes, and the unfinished rest kept for the next chunk.
      const frames = (buffer + value.replace(/\r\n?/g, "\n")).split("\n\n");
      buffer = frames.pop();
      const batch = [];
      for (const frame of frames) {
        const event = this.parse(frame);
        if (event) batch.push(event);
      }
      if (batch.length) this.publish(batch);
    }
  }

  parse(frame) {
    let name = "message";
    const data = [];
    for (const line of frame.split("\n")) {
      if (line.startsWith("data:")) data.push(line.slice(line[5] === " " ? 6 : 5));
      else if (line.startsWith("event:")) name = line.slice(6).trim();
    }
    if (!data.length) return null;
    const payload = JSON.parse(data.join("\n"));
    if (name === "dropped") {
      this.dropped = payload.total;
      return null;
    }
    return this.ingest(payload);
  }

  ingest(event) {
    event.seq = ++this.seq;
    this.received += 1;
    const key = `${event.session}|${JSON.stringify(event.id)}`;
    if (event.kind === "request") {
      event.tool = event.method === "tools/call" ? (event.body?.params?.name ?? null) : null;
      if (this.requests.size >= PENDING) this.requests.delete(this.requests.keys().next().value);
      this.requests.set(`${event.direction}|${key}`, event);
    } else if (event.kind === "response" || event.kind === "error") {
      const asked = event.direction === "client_to_server" ? "server_to_client" : "client_to_server";
      const request = this.requests.get(`${asked}|${key}`);
      if (request) {
        this.requests.delete(`${asked}|${key}`);
        event.tool = request.tool;
        event.answers = request.seq;
      }
    }
    if (event.session) this.remember(event);
    this.recent.push(event);
    if (this.recent.length > RECENT * 1.5) this.recent.splice(0, this.recent.length - RECENT);
    return event;
  }

  remember(event) {
    let history = this.sessions.get(event.session);
    if (history) {
      this.sessions.delete(event.session);
    } else if (this.sessions.size >= SESSIONS) {
      this.sessions.delete(this.sessions.keys().next().value);
    }
    history = history ?? [];
    history.push(event);
    if (history.length > HISTORY) history.shift();
    this.sessions.set(event.session, history);
  }

  publish(batch) {
    for (const listener of this.subscribers) listener(batch);
  }

  setConnected(connected) {
    this.connected = connected;
    dispatchEvent(new CustomEvent("console:tap", { detail: connected }));
  }
}

export const feed = new Feed();
