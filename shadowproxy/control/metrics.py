"""Prometheus metrics of holds. Labels are bounded: rule ids come from config, deciders are kinds, not names."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

HELD = Counter("shadowproxy_holds_total", "Messages held for a decision, by kind and rule.", ["kind", "rule"])
DECIDED = Counter(
    "shadowproxy_hold_decisions_total",
    "Held messages settled, by kind, decision (approve, deny, answer) and who decided "
    "(operator, user, timeout, restart, shutdown, client: the client went away).",
    ["kind", "decision", "decider"],
)
PENDING = Gauge("shadowproxy_holds_pending", "Messages held on this instance, waiting for a decision.")
