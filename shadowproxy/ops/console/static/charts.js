// The header's live figures: requests per second, the proxy's p50/p99 overhead and errors per second, from two
// readings of GET /_shadowproxy/summary (running totals) every PERIOD_MS; each drawn as a small canvas chart
// of its last POINTS values, with the current value as text beside it (the chart itself is hidden from
// screen readers).

import { get } from "./api.js";
import { h } from "./dom.js";
import { ms } from "./format.js";

const PERIOD_MS = 2000;
const POINTS = 60;

const FIGURES = [
  { key: "rps", label: "req/s", show: (v) => (v === null ? "—" : v.toFixed(1)) },
  { key: "p50", label: "overhead p50", show: ms },
  { key: "p99", label: "overhead p99", show: ms },
  { key: "eps", label: "errors/s", show: (v) => (v === null ? "—" : v.toFixed(1)) },
];

/** The q-quantile, in ms, of the observations between two cumulative histograms (interpolated in its bucket). */
export function quantile(bounds, before, after, q) {
  const counts = after.map((count, i) => count - (before?.[i] ?? 0));
  const total = counts[counts.length - 1];
  if (!total || total <= 0) return null;
  const rank = q * total;
  let below = 0;
  let lower = 0;
  for (let i = 0; i < counts.length; i += 1) {
    if (counts[i] >= rank) {
      if (i >= bounds.length) return lower * 1000;
      const share = counts[i] > below ? (rank - below) / (counts[i] - below) : 1;
      return (lower + (bounds[i] - lower) * share) * 1000;
    }
    below = counts[i];
    lower = bounds[i] ?? lower;
  }
  return lower * 1000;
}

export class Charts {
  constructor(root) {
    this.root = root;
    this.series = Object.fromEntries(FIGURES.map((f) => [f.key, []]));
    this.previous = null;
    this.timer = null;
    this.cells = {};
    root.replaceChildren(
      ...FIGURES.map((figure) => {
        const value = h("span.value", {}, "—");
        const canvas = h("canvas", { width: "120", height: "28", "aria-hidden": "true" });
        this.cells[figure.key] = { value, canvas };
        return h("div.figure", {}, h("span.label", {}, figure.label), value, canvas);
      }),
    );
  }

  start() {
    if (this.timer) return;
    this.tick();
    this.timer = setInterval(() => this.tick(), PERIOD_MS);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.previous = null;
  }

  async tick() {
    let reading;
    try {
      reading = (await get("summary")).data;
    } catch {
      return;
    }
    if (!reading) return;
    const before = this.previous;
    this.previous = reading;
    if (!before) return;
    const seconds = Math.max(reading.time - before.time, 0.001);
    const overhead = reading.overhead;
    const values = {
      rps: (reading.requests - before.requests) / seconds,
      eps: (reading.errors - before.errors) / seconds,
      p50: quantile(overhead.bounds, before.overhead.cumulative, overhead.cumulative, 0.5),
      p99: quantile(overhead.bounds, before.overhead.cumulative, overhead.cumulative, 0.99),
    };
    for (const figure of FIGURES) {
      const points = this.series[figure.key];
      points.push(values[figure.key]);
      if (points.length > POINTS) points.shift();
      this.cells[figure.key].value.textContent = figure.show(values[figure.key]);
      draw(this.cells[figure.key].canvas, points);
    }
  }
}

function draw(canvas, points) {
  const context = canvas.getContext("2d");
  const { width, height } = canvas;
  context.clearRect(0, 0, width, height);
  const known = points.filter((p) => p !== null);
  if (!known.length) return;
  const top = Math.max(...known, 1e-9);
  const step = width / (POINTS - 1);
  const style = getComputedStyle(canvas);
  context.strokeStyle = style.getPropertyValue("--chart-line").trim() || "#1d4ed8";
  context.lineWidth = 1.5;
  context.beginPath();
  let started = false;
  points.forEach((point, i) => {
    if (point === null) return;
    const x = width - (points.length - 1 - i) * step;
    const y = height - 2 - (point / top) * (height - 4);
    if (started) context.lineTo(x, y);
    else context.moveTo(x, y);
    started = true;
  });
  context.stroke();
}
