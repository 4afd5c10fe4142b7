"""Rule actions, compiled once from their YAML form.

Terminal actions (allow, block, respond, approve) end the evaluation; the others
accumulate: modify and redact change the message, delay adds up, rate blocks
only when over its limit, log and tag note and continue, record puts the session on tape.
"""

from __future__ import annotations

import enum
import logging
import re
from dataclasses import dataclass
from typing import Any

from shadowproxy.core.errors import POLICY_BLOCKED
from shadowproxy.core.hold import APPROVAL, BLOCK, OPERATOR, HoldSpec
from shadowproxy.core.redact import DEFAULT_MASK, DETECTORS, Redactor
from shadowproxy.rules import jsonpath
from shadowproxy.rules.source import Document, JsonPath, Problem


class Effect(enum.Enum):
    """What an action does."""

    ALLOW = "allow"
    BLOCK = "block"
    RESPOND = "respond"
    MODIFY = "modify"
    REDACT = "redact"
    TOKENIZE = "tokenize"
    DELAY = "delay"
    RATE = "rate"
    LOG = "log"
    TAG = "tag"
    APPROVE = "approve"
    RECORD = "record"

    @property
    def terminal(self) -> bool:
        """Whether the action ends the evaluation."""
        return self in _TERMINAL


_TERMINAL = frozenset({Effect.ALLOW, Effect.BLOCK, Effect.RESPOND, Effect.APPROVE})
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


@dataclass(frozen=True, slots=True)
class RuleAction:
    """A compiled action. Only the members its ``effect`` uses are set."""

    effect: Effect
    code: int = POLICY_BLOCKED
    message: str | None = None
    data: Any = None
    result: Any = None
    sets: tuple[tuple[str, jsonpath.Path, Any], ...] = ()
    removes: tuple[tuple[str, jsonpath.Path], ...] = ()
    redactor: Redactor | None = None
    seconds: float = 0.0
    limit: int = 0
    per: float = 0.0
    by: tuple[str, ...] = ()
    level: int = logging.INFO
    tags: tuple[str, ...] = ()
    hold: HoldSpec | None = None


def compile_action(spec: Any, document: Document, path: JsonPath, problems: list[Problem]) -> RuleAction:
    """Compile a schema-valid action spec; semantic problems (bad regex, bad path) go to ``problems``."""
    if isinstance(spec, str):
        name, settings = spec, None
    else:
        ((name, settings),) = spec.items()
    effect = Effect(name)
    settings = settings if settings is not None else {}
    where = (*path, name) if not isinstance(spec, str) else path
    if effect is Effect.BLOCK:
        code = settings.get("code", POLICY_BLOCKED)
        return RuleAction(effect, code=code, message=settings.get("message"), data=settings.get("data"))
    if effect is Effect.RESPOND:
        if "text" in settings:
            result = {"content": [{"type": "text", "text": settings["text"]}], "isError": False}
        else:
            result = settings["result"]
        return RuleAction(effect, result=result)
    if effect is Effect.MODIFY:
        sets = tuple(
            (root, steps, value)
            for text, value in settings.get("set", {}).items()
            if (parsed := _rooted(text, document, (*where, "set", text), problems)) is not None
            for root, steps in (parsed,)
        )
        removes = tuple(
            parsed
            for index, text in enumerate(settings.get("remove", ()))
            if (parsed := _rooted(text, document, (*where, "remove", index), problems)) is not None
        )
        return RuleAction(effect, sets=sets, removes=removes)
    if effect is Effect.REDACT or effect is Effect.TOKENIZE:
        patterns = [
            pattern
            for index, pattern in enumerate(settings.get("patterns", ()))
            if _regex_ok(pattern, document, (*where, "patterns", index), problems)
        ]
        detectors = settings.get("detectors", DETECTORS)
        return RuleAction(effect, redactor=Redactor(detectors, patterns, settings.get("mask", DEFAULT_MASK)))
    if effect is Effect.DELAY:
        seconds = settings if isinstance(settings, int | float) else settings["seconds"]
        return RuleAction(effect, seconds=float(seconds))
    if effect is Effect.RATE:
        by = settings.get("by", "session")
        return RuleAction(
            effect,
            limit=settings["limit"],
            per=float(settings["per"]),
            by=tuple(by) if isinstance(by, list) else (by,),
            code=settings.get("code", POLICY_BLOCKED),
            message=settings.get("message"),
        )
    if effect is Effect.LOG:
        return RuleAction(effect, message=settings.get("message"), level=_LEVELS[settings.get("level", "info")])
    if effect is Effect.APPROVE:
        spec = HoldSpec(
            APPROVAL,
            by=settings.get("by", OPERATOR),
            timeout=float(settings.get("timeout", 300)),
            on_timeout=settings.get("on_timeout", BLOCK),
            fallback=settings.get("fallback", OPERATOR),
        )
        return RuleAction(effect, hold=spec)
    if effect is Effect.TAG:
        return RuleAction(effect, tags=tuple(settings) if isinstance(settings, list) else (settings,))
    return RuleAction(effect)


def _rooted(text: str, document: Document, path: JsonPath, problems: list[Problem]) -> tuple[str, jsonpath.Path] | None:
    try:
        steps = jsonpath.parse(text)
    except jsonpath.PathError as exc:
        problems.append(document.problem(path, str(exc)))
        return None
    root, rest = steps[0], steps[1:]
    if root not in ("params", "result") or not rest:
        problems.append(document.problem(path, f"path {text!r} must name a member inside 'params' or 'result'"))
        return None
    if jsonpath.ANY in rest:
        problems.append(document.problem(path, f"path {text!r}: '*' can be read in a match but not written"))
        return None
    if root == "params" and rest[0] == "_meta" and len(rest) == 1:
        problems.append(document.problem(path, "params._meta is protocol metadata; it can be changed but not replaced"))
        return None
    return str(root), rest


def _regex_ok(pattern: str, document: Document, path: JsonPath, problems: list[Problem]) -> bool:
    try:
        re.compile(pattern)
    except re.error as exc:
        problems.append(document.problem(path, f"bad regex {pattern!r}: {exc}"))
        return False
    return True
