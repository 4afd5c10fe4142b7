"""Tool pins: what each upstream's tools looked like when first seen, and what has changed since.

Trust on first use: the first ``tools/list`` result of a *scope* (an upstream, or an upstream and a principal
group) pins every tool in it, as a digest of what a model reads of it (name, description, input and output
schemas, annotations). From then on a tool whose digest differs is *changed* (a "rug pull"), one not pinned is
*new*, and one missing from a complete list is *removed*; each is a pending change until an operator approves
it (:meth:`PinBook.approve`) or the server goes back to what was pinned. A change is logged, counted
(``shadowproxy_tool_pin_changes_total``) and audited once, when it is first seen.

Only list results are digested; a call asks one dict for its tool's pending change (the verdict is cached per
tool name). Pins live in this process's memory and in the store (:mod:`~shadowproxy.interceptors.pinning`); in a
cluster an approval or a reset is also told to the other instances (``announce``), which apply it at once
(:meth:`PinBook.apply`).
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from prometheus_client import Counter

from shadowproxy.config.pinning import PinningConfig

log = logging.getLogger(__name__)
audit_log = logging.getLogger("shadowproxy.audit")

PINNED_KEYS = ("name", "description", "inputSchema", "outputSchema", "annotations")
"""What a digest covers: what a model reads of a tool."""
MAX_TOOLS = 10_000
"""Tools pinned per scope; beyond it new names are neither pinned nor reported."""
MAX_PRINCIPALS = 10_000
SHARED = ""
"""The group of a principal in no configured group (and of every client without auth)."""

CHANGES = Counter(
    "shadowproxy_tool_pin_changes_total",
    "Tools that changed, appeared or disappeared since their upstream's tools were pinned, when first seen.",
    ["upstream", "change"],
)
REFUSALS = Counter(
    "shadowproxy_tool_pin_refusals_total",
    "Changed or new tools hidden from a tools/list result (what=hidden) or whose call was refused (what=call).",
    ["upstream", "what"],
)
APPROVALS = Counter("shadowproxy_tool_pin_approvals_total", "Pending tool changes an operator approved.", ["upstream"])


def pinned_part(tool: dict[str, Any]) -> dict[str, Any]:
    """The members of a tool that its pin covers."""
    return {key: tool[key] for key in PINNED_KEYS if key in tool}


def digest_of(definition: dict[str, Any]) -> str:
    """A stable digest of a tool's pinned part (keys sorted, so member order does not count)."""
    return hashlib.sha256(orjson.dumps(definition, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True, slots=True)
class Change:
    """A pending change of one tool: ``changed``, ``new`` or ``removed``; ``old`` is the pinned definition."""

    kind: str
    tool: str
    old: dict[str, Any] | None
    new: dict[str, Any] | None
    digest: str | None
    seen: float

    @property
    def fields(self) -> list[str]:
        """Which pinned members differ (for a changed tool)."""
        old, new = self.old or {}, self.new or {}
        return [key for key in PINNED_KEYS if old.get(key) != new.get(key)]

    @property
    def blocks(self) -> bool:
        """Whether block mode hides the tool and refuses its calls (a removed tool has nothing to hide)."""
        return self.kind != "removed"

    def describe(self) -> str:
        if self.kind == "changed":
            return f"tool {self.tool!r} changed since it was pinned ({', '.join(self.fields)})"
        if self.kind == "new":
            return f"tool {self.tool!r} is new since the tools were pinned"
        return f"tool {self.tool!r} was removed since the tools were pinned"


@dataclass(slots=True)
class Scope:
    """The pins of one upstream (and group): ``settled`` once a complete list was pinned."""

    pins: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    changes: dict[str, Change] = field(default_factory=dict)
    settled: bool = False
    pinned_at: float = field(default_factory=time.time)
    seen: tuple[bytes, frozenset[str]] | None = None
    """The fingerprint of the last list reviewed, and what it hid: the same list again, with the scope unchanged
    since, is the same review (a 200-tool list costs 0.7 ms to digest tool by tool)."""


class PinBook:
    """Every scope's pins and pending changes, and the config that says what a change leads to."""

    def __init__(self, config: PinningConfig) -> None:
        self.mode = config.mode
        self.blocking = config.mode == "block"
        self._groups = [
            (name, re.compile("|".join(fnmatch.translate(pattern) for pattern in patterns)))
            for name, patterns in config.groups.items()
        ]
        self._group_of: dict[str | None, str] = {}
        self.scopes: dict[tuple[str, str], Scope] = {}
        self.dirty: set[tuple[str, str]] = set()
        """Scopes changed since they were last written to the store (see :func:`save`)."""
        self._noted = False
        self.announce: Callable[[dict[str, Any]], None] | None = None
        """Set in a cluster: tells the other instances of an approval or a reset (what :meth:`apply` takes)."""

    def group_of(self, principal: str | None) -> str:
        """The first configured group whose patterns match ``principal``, else :data:`SHARED` (cached)."""
        group = self._group_of.get(principal)
        if group is None:
            group = SHARED
            if principal is not None:
                group = next((name for name, pattern in self._groups if pattern.match(principal)), SHARED)
            if len(self._group_of) >= MAX_PRINCIPALS:
                self._group_of.clear()
            self._group_of[principal] = group
        return group

    def review(
        self,
        upstream: str,
        principal: str | None,
        tools: list[Any],
        complete: bool,
        session: str | None = None,
        fingerprint: bytes | None = None,
    ) -> frozenset[str]:
        """Compare one ``tools/list`` result with the pins; the names block mode hides from it.

        ``complete``: the result is the whole list (no cursor asked for, none given), so a pinned tool missing
        from it was removed. Until a complete list was seen, a scope pins what it is shown (pages included).
        ``fingerprint`` stands for the result's bytes: a review of the list the scope last reviewed, with nothing
        changed since, is not done again (a review leaves a scope as a second one of the same list finds it).
        """
        group = self.group_of(principal)
        key = (upstream, group)
        scope = self.scopes.get(key)
        if scope is None:
            scope = self.scopes[key] = Scope()
        if fingerprint is not None:
            fingerprint += b"1" if complete else b"0"
            if scope.seen is not None and scope.seen[0] == fingerprint:
                return self._hiding(upstream, scope.seen[1])
        hidden = self._review(scope, key, tools, complete, session)
        scope.seen = (fingerprint, hidden) if fingerprint is not None else None
        return self._hiding(upstream, hidden)

    def _hiding(self, upstream: str, hidden: frozenset[str]) -> frozenset[str]:
        if hidden:
            REFUSALS.labels(upstream, "hidden").inc(len(hidden))
        return hidden

    def _review(
        self, scope: Scope, key: tuple[str, str], tools: list[Any], complete: bool, session: str | None
    ) -> frozenset[str]:
        upstream, group = key
        before = (len(scope.pins), len(scope.changes), scope.settled)
        listed: set[str] = set()
        for tool in tools:
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                continue
            name = tool["name"]
            listed.add(name)
            definition = pinned_part(tool)
            digest = digest_of(definition)
            pin = scope.pins.get(name)
            if pin is None:
                if not scope.settled:
                    if len(scope.pins) < MAX_TOOLS:
                        scope.pins[name] = (digest, definition)
                elif len(scope.changes) < MAX_TOOLS:
                    self._note(
                        scope, Change("new", name, None, definition, digest, time.time()), upstream, group, session
                    )
            elif pin[0] != digest:
                self._note(
                    scope, Change("changed", name, pin[1], definition, digest, time.time()), upstream, group, session
                )
            elif name in scope.changes:
                del scope.changes[name]  # back to what was pinned
        if complete:
            if scope.settled:
                for name in scope.pins.keys() - listed:
                    self._note(
                        scope,
                        Change("removed", name, scope.pins[name][1], None, None, time.time()),
                        upstream,
                        group,
                        session,
                    )
                for name in [
                    name for name, change in scope.changes.items() if change.kind == "new" and name not in listed
                ]:
                    del scope.changes[name]
            scope.settled = True
        if before != (len(scope.pins), len(scope.changes), scope.settled) or self._noted:
            self.dirty.add(key)
            self._noted = False
        if not self.blocking:
            return frozenset()
        return frozenset(name for name in listed if (change := scope.changes.get(name)) is not None and change.blocks)

    def may_refuse(self, tool: str) -> bool:
        """Whether a call to ``tool`` could be refused in some scope: one lookup per upstream and group, so that a
        call to a tool with no pending change is declined before it is judged."""
        for scope in self.scopes.values():
            change = scope.changes.get(tool)
            if change is not None and change.blocks:
                return True
        return False

    def refusal(self, upstream: str, principal: str | None, tool: str) -> Change | None:
        """The pending change that refuses a call to ``tool`` in block mode, or None."""
        scope = self.scopes.get((upstream, self.group_of(principal)))
        change = scope.changes.get(tool) if scope is not None else None
        if change is None or not change.blocks:
            return None
        REFUSALS.labels(upstream, "call").inc()
        return change

    def _note(self, scope: Scope, change: Change, upstream: str, group: str, session: str | None) -> None:
        known = scope.changes.get(change.tool)
        if known is not None and known.kind == change.kind and known.digest == change.digest:
            return
        scope.changes[change.tool] = change
        self._noted = True
        CHANGES.labels(upstream, change.kind).inc()
        where = f"upstream {upstream!r}" + (f" (group {group!r})" if group else "")
        log.warning("tool pinning: %s of %s; mode %s", change.describe(), where, self.mode)
        event = {
            "event": "pin",
            "change": change.kind,
            "tool": change.tool,
            "upstream": upstream,
            "group": group or None,
            "mode": self.mode,
            "session": session,
            "fields": change.fields if change.kind == "changed" else None,
        }
        audit_log.warning(orjson.dumps(event).decode())

    def approve(self, upstream: str, group: str, tool: str, by: str = "admin") -> Change | None:
        """Accept a pending change: the new definition becomes the pin (a removed tool is unpinned)."""
        scope = self.scopes.get((upstream, group))
        change = scope.changes.pop(tool, None) if scope is not None else None
        if scope is None or change is None:
            return None
        scope.seen = None
        if change.kind == "removed":
            scope.pins.pop(tool, None)
        else:
            assert change.digest is not None and change.new is not None
            scope.pins[tool] = (change.digest, change.new)
        self.dirty.add((upstream, group))
        APPROVALS.labels(upstream).inc()
        log.info("tool pinning: %s of upstream %r approved by %s", change.describe(), upstream, by)
        event = {"event": "pin", "change": "approved", "was": change.kind, "tool": tool, "upstream": upstream,
                 "group": group or None, "by": by}  # fmt: skip
        audit_log.warning(orjson.dumps(event).decode())
        if self.announce is not None:
            definition = None if change.kind == "removed" else change.new
            self.announce({"u": upstream, "g": group, "n": tool, "k": change.kind, "d": change.digest, "v": definition})
        return change

    def apply(self, told: dict[str, Any]) -> None:
        """What another instance approved or reset (its :attr:`announce`), made true here at once.

        An approval pins the definition it accepted, whether or not this instance has seen the change yet, and
        ends the pending change that is the same one; a different change seen here stays pending. Not written
        to the store: the instance that decided writes it.
        """
        key = (told["u"], told["g"])
        if told.get("reset"):
            for doomed in [k for k in self.scopes if k[0] == key[0] and (key[1] is None or k[1] == key[1])]:
                del self.scopes[doomed]
            return
        scope = self.scopes.get(key)
        if scope is None:
            return  # never listed here: its first list will be trusted, the approved definition with it
        tool, digest = told["n"], told["d"]
        scope.seen = None
        if told["k"] == "removed":
            scope.pins.pop(tool, None)
        else:
            scope.pins[tool] = (digest, told["v"])
        pending = scope.changes.get(tool)
        if pending is not None and pending.digest == digest:
            del scope.changes[tool]
        log.info("tool pinning: tool %r of upstream %r approved on another instance", tool, key[0])

    def reset(self, upstream: str, group: str | None = None) -> int:
        """Forget the pins of ``upstream`` (one group, or all): its next list is trusted anew. How many scopes."""
        doomed = [key for key in self.scopes if key[0] == upstream and (group is None or key[1] == group)]
        for key in doomed:
            del self.scopes[key]
            self.dirty.add(key)
        if doomed:
            event = {"event": "pin", "change": "reset", "upstream": upstream, "group": group or None}
            audit_log.warning(orjson.dumps(event).decode())
        if self.announce is not None:
            self.announce({"u": upstream, "g": group, "reset": True})
        return len(doomed)


def dump_scope(scope: Scope) -> bytes:
    """A scope as the store keeps it (space :data:`SPACE`, key :func:`scope_key`)."""
    changes = [[c.kind, c.tool, c.old, c.new, c.digest, c.seen] for c in scope.changes.values()]
    pins = {name: [digest, definition] for name, (digest, definition) in scope.pins.items()}
    return orjson.dumps({"pins": pins, "changes": changes, "settled": scope.settled, "pinned_at": scope.pinned_at})


def load_scope(raw: bytes) -> Scope:
    """The inverse of :func:`dump_scope`; :class:`ValueError` for what it did not write."""
    try:
        data = orjson.loads(raw)
        pins = {name: (digest, definition) for name, (digest, definition) in data["pins"].items()}
        changes = {
            tool: Change(kind, tool, old, new, digest, seen) for kind, tool, old, new, digest, seen in data["changes"]
        }
        return Scope(pins, changes, bool(data["settled"]), float(data["pinned_at"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"stored pins are corrupt: {exc}") from None


SPACE = "pins"
"""The store's space for pins: one entry per scope."""


def scope_key(key: tuple[str, str]) -> str:
    return f"{key[0]}\x1f{key[1]}"


def split_key(text: str) -> tuple[str, str]:
    upstream, _, group = text.partition("\x1f")
    return upstream, group
