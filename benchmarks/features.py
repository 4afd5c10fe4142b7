"""What each feature costs: the HTTP->stdio proxy with one feature configured, as a config file per row.

Each :class:`Feature` is one row of ``python -m benchmarks.e2e``, compared with the proxy as it comes (the
``shadowproxy HTTP->stdio`` row: memory store, no rules, pinning in its default ``warn`` mode). A feature is
*configured but not matching* when the load (echo ``tools/call``, after ``initialize``) never triggers it: the cost
of having it on. ``--strict`` fails when such a row costs more than :data:`NOT_MATCHING_BUDGET`. Rows where the
feature matches every call show what it costs when it works; an approval that matches waits for a person, so it has
no matching row, and pinning only reads ``tools/list``, which the load does not send.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from shadowproxy.config.tapes import TapesConfig

NOT_MATCHING_BUDGET = 0.03
"""The most a configured-but-not-matching feature may cost, as a fraction of the plain proxy's req/s."""
_WRITE_EVERY: float = TapesConfig.model_fields["write_every"].default
TOKEN = "bench-token-not-a-secret"
"""The bearer token of the auth and roles rows: the load client sends it, the proxy knows its digest."""


@dataclass(frozen=True)
class Feature:
    """One row: its label, whether the load matches it, and how to write its config section."""

    key: str
    label: str
    matching: bool
    needs: str | None = None  # a module the proxy needs for it (an extra), checked before the row starts

    @property
    def row(self) -> str:
        return f"{self.label} ({'matching' if self.matching else 'not matching'})"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"} if self.key in ("auth", "roles") else {}

    def missing(self) -> str | None:
        """Why this row cannot run here, or None."""
        if self.needs is None:
            return None
        try:
            found = importlib.util.find_spec(self.needs) is not None
        except ModuleNotFoundError:
            found = False
        return None if found else f"needs {self.needs} (pip install -e '.[otel]')"


FEATURES = (
    Feature("rules", "rules, 100", matching=False),
    Feature("rules-match", "rules, 100 + one allowing echo", matching=True),
    Feature("audit", "audit log to a file", matching=True),
    Feature("approvals", "approvals, a rule on pay_*", matching=False),
    Feature("pinning-off", "pinning off", matching=False),
    Feature("pinning-block", "pinning block", matching=False),
    Feature("tapes-none", "tapes, record: none", matching=False),
    Feature("tapes", "tapes, every session", matching=True),
    Feature("auth", "auth, one bearer token", matching=True),
    Feature("roles", "auth + roles, agent", matching=True),
    Feature("tracing-0", "tracing, sample_ratio 0", matching=False, needs="opentelemetry.sdk"),
    Feature("tracing-1", "tracing, sample_ratio 1", matching=True, needs="opentelemetry.sdk"),
)
BY_KEY = {feature.key: feature for feature in FEATURES}


def _rules(folder: Path, name: str, extra: list[dict[str, Any]]) -> str:
    """A rules file of 100 rules on tools the load never calls, and ``extra``."""
    rules = [{"id": f"rule-{i}", "match": {"tool": f"tool_{i}_*"}, "action": "block"} for i in range(100)]
    path = folder / f"bench-rules-{name}.yaml"
    path.write_text(yaml.safe_dump({"rules": [*rules, *extra]}))
    return str(path)


def section(key: str, folder: Path, sink: str | None = None, slowdown: float = 1.0) -> dict[str, Any]:
    """The config (as a dict) that turns on feature ``key``; files it needs are written in ``folder``.

    ``slowdown``: how many times slower than natively the proxy will run (under valgrind, about 50); what works
    by the clock rather than by the message is stretched as much.
    """
    if key == "rules":
        return {"rules": [_rules(folder, key, [])]}
    if key == "rules-match":
        return {"rules": [_rules(folder, key, [{"id": "echo-ok", "match": {"tool": "echo"}, "action": "allow"}])]}
    if key == "approvals":
        hold = {"approve": {"by": "operator", "timeout": 300, "on_timeout": "block"}}
        pay = {"id": "pay", "match": {"method": "tools/call", "tool": "pay_*"}, "action": hold}
        return {"rules": [_rules(folder, key, [pay])]}
    if key == "audit":
        return {"interceptors": [{"name": "audit", "options": {"file": str(folder / "bench-audit.jsonl")}}]}
    if key == "pinning-off":
        return {"pinning": {"mode": "off"}}
    if key == "pinning-block":
        return {"pinning": {"mode": "block"}}
    if key == "tapes-none":
        return {"tapes": {"dir": str(folder / "bench-tapes-none"), "record": "none"}}
    if key == "tapes":
        # Batches of the same size as natively: a tape's batch costs by the batch, its messages by the message.
        tapes = {"dir": str(folder / "bench-tapes-all"), "record": "all"}
        return {"tapes": tapes if slowdown == 1 else tapes | {"write_every": _WRITE_EVERY * slowdown}}
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    if key == "auth":
        return {"auth": {"tokens": [{"name": "bench", "sha256": digest}]}}
    if key == "roles":
        return {
            "auth": {"tokens": [{"name": "bench", "sha256": digest, "roles": ["agent"]}]},
            "roles": {"default": "viewer"},
        }
    if key in ("tracing-0", "tracing-1"):
        assert sink is not None, "tracing rows need the OTLP sink's URL"
        ratio = 0.0 if key == "tracing-0" else 1.0
        return {"tracing": {"exporter": "otlp", "endpoint": sink, "sample_ratio": ratio}}
    raise KeyError(key)


def write_config(key: str, folder: Path, sink: str | None = None, slowdown: float = 1.0) -> Path:
    path = folder / f"bench-feature-{key}.yaml"
    path.write_text(yaml.safe_dump(section(key, folder, sink, slowdown)))
    return path
