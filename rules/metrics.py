"""Prometheus metrics of the rules engine. Rule ids come from config, so they are bounded and fine as labels."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

DEFAULT_RULE = "(default)"
"""The ``rule`` label of a decision made by a file's ``default:``; no rule id can look like it."""

DECISIONS = Counter(
    "shadowproxy_rule_decisions_total",
    "Rules that matched a message, by rule id and action.",
    ["rule", "action"],
)
RELOADS = Counter(
    "shadowproxy_rules_reloads_total",
    "Rules reloads, by outcome: success (new set taken) or failure (invalid; the last good set kept).",
    ["outcome"],
)
RULES_LOADED = Gauge("shadowproxy_rules_loaded", "Enabled rules in the set in force.")
TOOLS_HIDDEN = Counter(
    "shadowproxy_rules_tools_hidden_total",
    "Tools removed from tools/list results because policy blocks every call to them.",
)
