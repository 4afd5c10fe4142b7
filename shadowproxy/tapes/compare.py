"""Comparing recorded messages: what legitimately differs between two runs is left out, the rest is compared
member by member.

Left out always: the JSON-RPC ``id`` and ``jsonrpc``, every ``_meta`` (progress tokens, related ids),
members named like a session id, and strings that are timestamps (ISO 8601). Left out on request: the paths
given as ``--ignore`` (``result.content[*].text``, ``result.structuredContent.now``; ``*`` is any member or
item). A list of objects with distinct names (tools, prompts) or URIs (resources) is compared by them, so one
tool added does not shift the rest: ``result.tools[name=echo].description``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SESSION_KEYS = frozenset({"sessionId", "session_id", "mcp-session-id"})
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
_PATH = re.compile(r"[^.\[\]]+(?:\.[^.\[\]]+|\[(?:\d+|\*|[^\]=]+=[^\]]+)\])*")
_STEP = re.compile(r"([^.\[\]]+)|\[(\d+|\*|[^\]=]+=[^\]]+)\]")

Pattern = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Difference:
    """One place two messages differ; ``path`` is where (``result.content[0].text``), ``None`` a missing side."""

    path: str
    recorded: Any
    now: Any

    def text(self) -> str:
        return f"{self.path or '(whole message)'}: {_shown(self.recorded)} != {_shown(self.now)}"


def parse_ignore(text: str) -> Pattern:
    """``a.b[0].c`` or ``result.*.x`` as steps; :class:`ValueError` when it is not a path."""
    if not _PATH.fullmatch(text):
        raise ValueError(f"not a path: {text!r} (like result.content[0].text, * for any)")
    return tuple(match.group(1) or match.group(2) for match in _STEP.finditer(text))


def differences(recorded: Any, now: Any, ignore: Sequence[Pattern] = ()) -> list[Difference]:
    """Where ``now`` differs from ``recorded``, in the members that count."""
    found: list[Difference] = []
    _walk(_top(recorded), _top(now), (), ignore, found)
    return found


def _top(message: Any) -> Any:
    if isinstance(message, dict):
        return {key: value for key, value in message.items() if key not in ("id", "jsonrpc")}
    return message


def _ignored(path: tuple[str, ...], ignore: Sequence[Pattern]) -> bool:
    if path and (path[-1] == "_meta" or path[-1] in SESSION_KEYS):
        return True
    return any(len(pattern) == len(path) and all(p in ("*", s) for p, s in zip(pattern, path, strict=True))
               for pattern in ignore)  # fmt: skip


def _walk(old: Any, new: Any, path: tuple[str, ...], ignore: Sequence[Pattern], found: list[Difference]) -> None:
    if _ignored(path, ignore):
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [key for key in new if key not in old]:
            _walk(old.get(key, _MISSING), new.get(key, _MISSING), (*path, str(key)), ignore, found)
        return
    if isinstance(old, list) and isinstance(new, list):
        key = _named_items(old, new)
        if key is not None:
            before = {item[key]: item for item in old}
            after = {item[key]: item for item in new}
            for name in list(before) + [name for name in after if name not in before]:
                step = f"{key}={name}"
                _walk(before.get(name, _MISSING), after.get(name, _MISSING), (*path, step), ignore, found)
            return
        for index in range(max(len(old), len(new))):
            _walk(old[index] if index < len(old) else _MISSING, new[index] if index < len(new) else _MISSING,
                  (*path, str(index)), ignore, found)  # fmt: skip
        return
    if isinstance(old, str) and isinstance(new, str) and TIMESTAMP.match(old) and TIMESTAMP.match(new):
        return
    if old != new or type(old) is not type(new):
        found.append(Difference(render(path), None if old is _MISSING else old, None if new is _MISSING else new))


def _named_items(old: list[Any], new: list[Any]) -> str | None:
    """``name`` or ``uri`` when every item of both lists is an object with a distinct one (tools, resources):
    such a list is compared by name, so one tool added does not make every later one differ."""
    for key in ("name", "uri"):
        names = [item.get(key) if isinstance(item, dict) else None for item in (*old, *new)]
        if names and all(isinstance(name, str) for name in names):
            if len(set(names[: len(old)])) == len(old) and len(set(names[len(old) :])) == len(new):
                return key
    return None


def render(path: Sequence[str]) -> str:
    text = ""
    for step in path:
        text += f"[{step}]" if step.isdigit() or "=" in step else (f".{step}" if text else step)
    return text


def _shown(value: Any) -> str:
    text = repr(value) if value is not None else "(absent)"
    return text if len(text) <= 120 else text[:117] + "..."


class _Missing:
    def __repr__(self) -> str:
        return "(absent)"


_MISSING: Any = _Missing()
