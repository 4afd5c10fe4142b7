"""``tape diff A B``: where two tapes part, message by message.

The messages of each tape are lined up by direction, kind and method (an answer by its request's method,
a call by its tool) with :class:`difflib.SequenceMatcher`; a message only one tape has is reported as such,
and two lined-up messages are compared member by member by :mod:`shadowproxy.tapes.compare`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from shadowproxy.tapes.compare import Difference, Pattern, differences
from shadowproxy.tapes.format import C2S, Entry, Tape

ARROWS = {C2S: "->", "server_to_client": "<-"}


@dataclass(frozen=True, slots=True)
class Part:
    """One place the tapes part: ``a``/``b`` are tape lines (``None``: not on that tape)."""

    a: int | None
    b: int | None
    what: str
    differences: tuple[Difference, ...] = ()

    def to_json(self) -> dict[str, Any]:
        kind = "only_in_a" if self.b is None else "only_in_b" if self.a is None else "changed"
        return {
            "kind": kind,
            "a_line": self.a,
            "b_line": self.b,
            "what": self.what,
            "differences": [{"path": d.path, "a": d.recorded, "b": d.now} for d in self.differences],
        }

    def text(self) -> str:
        if self.b is None:
            return f"only in A (line {self.a}): {self.what}"
        if self.a is None:
            return f"only in B (line {self.b}): {self.what}"
        head = f"changed (A line {self.a}, B line {self.b}): {self.what}"
        return "\n".join([head, *(f"    {d.text()}" for d in self.differences)])


def labels(tape: Tape) -> list[str]:
    """Each entry as what it is: direction, kind, method and tool (an answer under its request's)."""
    asked: dict[tuple[str, Any], str] = {}
    found = []
    for entry in tape.entries:
        data = entry.data
        if entry.method is not None:
            label = entry.method + _named(data.get("params"))
            if "id" in data:
                asked[(entry.direction, data["id"])] = label
                label = f"request {label}"
            else:
                label = f"notification {label}"
        else:
            asker = "server_to_client" if entry.direction == C2S else C2S
            label = f"answer to {asked.get((asker, data.get('id')), '?')}"
        found.append(f"{ARROWS[entry.direction]} {label}")
    return found


def diff(a: Tape, b: Tape, ignore: tuple[Pattern, ...] = ()) -> list[Part]:
    """Where ``b`` parts from ``a``."""
    left, right = labels(a), labels(b)
    parts: list[Part] = []
    matcher = difflib.SequenceMatcher(None, left, right, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for offset in range(i2 - i1):
                first, second = a.entries[i1 + offset], b.entries[j1 + offset]
                found = differences(_compared(first), _compared(second), ignore)
                if found:
                    parts.append(Part(first.line, second.line, left[i1 + offset], tuple(found)))
            continue
        parts += [Part(a.entries[index].line, None, left[index]) for index in range(i1, i2)]
        parts += [Part(None, b.entries[index].line, right[index]) for index in range(j1, j2)]
    return parts


def _compared(entry: Entry) -> dict[str, Any]:
    """The message, and the chain's verdict on it, which is part of what happened."""
    return {**entry.data, "verdict": entry.verdict}


def _named(params: Any) -> str:
    name = params.get("name") if isinstance(params, dict) else None
    return f" {name}" if isinstance(name, str) else ""
