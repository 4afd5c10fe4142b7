"""Evaluation: judge one message against a rule set.

Rules run in order over the candidates the index returns. The first terminal
rule (allow, block, respond) decides; non-terminal ones accumulate. Changes to
the message are made on a copy-on-write draft and become ONE new message at
the end; a message nothing changed comes back as ``message=None`` so the proxy
forwards its original bytes. Conditions see the message as it arrived.

A ``tools/list`` result is filtered: each tool is judged as the argument-less
``tools/call`` a client could make, and a tool that every such call would be
blocked for is removed, so clients never offer what policy forbids.
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass, replace
from typing import Any

import orjson

from shadowproxy.core.chain import Direction
from shadowproxy.core.errors import POLICY_BLOCKED, JsonRpcError
from shadowproxy.core.jsonrpc import Kind, Message
from shadowproxy.core.protocol import MODERN_VERSION
from shadowproxy.core.vault import TokenVault
from shadowproxy.rules import jsonpath, metrics
from shadowproxy.rules.actions import Effect, RuleAction
from shadowproxy.rules.ratelimit import MemoryRateCounter, RateCounter
from shadowproxy.rules.ruleset import Rule, RuleSet
from shadowproxy.rules.subject import Subject, ToolCatalog

audit_log = logging.getLogger("shadowproxy.audit")

"""From this protocol version on, every result carries ``resultType``."""

PLUMBING = frozenset({"initialize", "ping", "server/discover"})
"""Requests a file's ``default: block`` never blocks: without them no session can start."""

_DEFAULT_COUNTER = metrics.DECISIONS.labels(metrics.DEFAULT_RULE, "block")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the rules decided. ``verdict`` is forward, block, respond or hold; ``rule`` is the deciding rule."""

    verdict: str
    rule: Rule | None = None
    message: Message | None = None
    error: JsonRpcError | None = None
    result: Any = None
    delay: float = 0.0
    matched: list[Rule] | None = None
    hidden_tools: tuple[str, ...] = ()


NOTHING = Outcome("forward")
"""The outcome of a message no rule touched: forward the original bytes."""


class Draft:
    """Copy-on-write edits of one message's params, result and error."""

    __slots__ = ("error", "message", "params", "result")

    def __init__(self, message: Message) -> None:
        self.message = message
        self.params = message.params
        self.result = message.result
        self.error = message.error

    def modify(self, action: RuleAction) -> None:
        """Apply a ``modify`` action's sets and removes."""
        kind = self.message.kind
        for root, steps, value in action.sets:
            value = copy.deepcopy(value) if isinstance(value, dict | list) else value
            if root == "params" and kind in (Kind.REQUEST, Kind.NOTIFICATION):
                self.params = jsonpath.set_value(self.params, steps, value)
            elif root == "result" and kind is Kind.RESPONSE:
                self.result = jsonpath.set_value(self.result, steps, value)
        for root, steps in action.removes:
            if root == "params" and self.params is not None:
                self.params = jsonpath.remove(self.params, steps)
            elif root == "result" and self.result is not None:
                self.result = jsonpath.remove(self.result, steps)

    def redact(self, action: RuleAction) -> None:
        """Apply a ``redact`` action to params, result and error."""
        redactor = action.redactor
        assert redactor is not None
        if self.params is not None:
            self.params = redactor.value(self.params)
        if self.result is not None:
            self.result = redactor.value(self.result)
        if self.error is not None:
            self.error = redactor.value(self.error)

    def tokenize(self, action: RuleAction, vault: TokenVault) -> None:
        """Apply a ``tokenize`` action: what its detectors find becomes the session's tokens."""
        redactor = action.redactor
        assert redactor is not None
        if self.params is not None:
            self.params = redactor.value(self.params, vault.token)
        if self.result is not None:
            self.result = redactor.value(self.result, vault.token)
        if self.error is not None:
            self.error = redactor.value(self.error, vault.token)

    def finish(self) -> Message | None:
        """The one new message, or None when every edit left the message as it was."""
        original = self.message
        changes: dict[str, Any] = {}
        if self.params is not original.params:
            changes["params"] = self.params
        if self.result is not original.result:
            changes["result"] = self.result
        if self.error is not original.error:
            changes["error"] = self.error
        return original.evolve(**changes) if changes else None


class Engine:
    """Evaluates rule sets. Holds what outlives a reload: rate counters and the tool catalog."""

    def __init__(self, counter: RateCounter | None = None, catalog: ToolCatalog | None = None) -> None:
        self.counter: RateCounter = counter if counter is not None else MemoryRateCounter()
        self.catalog = catalog if catalog is not None else ToolCatalog()

    def evaluate(self, rules: RuleSet, subject: Subject, *, trace: bool = False) -> Outcome:
        """Judge ``subject``. With ``trace``, ``Outcome.matched`` lists every rule that matched."""
        matched: list[Rule] | None = [] if trace else None
        draft: Draft | None = None
        delay = 0.0
        allowed_by: Rule | None = None
        for rule in rules.candidates(subject):
            test = rule.match.test
            if test is not None and not test(subject):
                continue
            action = rule.action
            effect = action.effect
            if matched is not None:
                matched.append(rule)
            if effect is Effect.RATE:
                retry = self.counter.hit(_rate_key(rule, subject), action.limit, action.per)
                if not retry:
                    continue
                _count(rule)
                return Outcome("block", rule, error=_rate_error(rule, retry), delay=delay, matched=matched)
            if effect is Effect.APPROVE and subject.kind is not Kind.REQUEST:
                continue  # only a request waits for a person: its reply, or a notification, has no one waiting
            _count(rule)
            if effect is Effect.ALLOW:
                allowed_by = rule
                break
            if effect is Effect.BLOCK:
                return Outcome("block", rule, error=_block_error(rule), delay=delay, matched=matched)
            if effect is Effect.RESPOND:
                return Outcome("respond", rule, result=_canned(action, subject), delay=delay, matched=matched)
            if effect is Effect.APPROVE:
                assert action.hold is not None
                spec = replace(action.hold, rule=rule.id)
                return Outcome("hold", rule, message=_finished(draft), result=spec, delay=delay, matched=matched)
            if effect is Effect.MODIFY or effect is Effect.REDACT:
                if draft is None:
                    draft = Draft(subject.message)
                if effect is Effect.MODIFY:
                    draft.modify(action)
                else:
                    draft.redact(action)
            elif effect is Effect.TOKENIZE:
                if subject.direction is Direction.SERVER_TO_CLIENT:
                    if draft is None:
                        draft = Draft(subject.message)
                    draft.tokenize(action, _vault(subject))
            elif effect is Effect.DELAY:
                delay += action.seconds
            elif effect is Effect.LOG:
                _audit(rule, subject)
            elif effect is Effect.TAG and subject.session is not None:
                for tag in action.tags:
                    subject.session.add_tag(tag)
            elif effect is Effect.RECORD and subject.session is not None:
                subject.session.recording = True
        else:
            if rules.default_block and _defaulted(subject):
                _DEFAULT_COUNTER.inc()
                return Outcome("block", None, error=_default_error(rules, subject), delay=delay, matched=matched)
        if draft is None and allowed_by is None and matched is None and not delay and subject.method != "tools/list":
            return NOTHING
        hidden: tuple[str, ...] = ()
        if subject.method == "tools/list" and subject.kind is Kind.RESPONSE:
            if draft is None:
                draft = Draft(subject.message)
            hidden = self._filter_tools(rules, subject, draft)
        message = draft.finish() if draft is not None else None
        return Outcome("forward", allowed_by, message=message, delay=delay, matched=matched, hidden_tools=hidden)

    def _filter_tools(self, rules: RuleSet, subject: Subject, draft: Draft) -> tuple[str, ...]:
        result = draft.result
        tools = result.get("tools") if isinstance(result, dict) else None
        if not isinstance(tools, list):
            return ()
        if subject.direction is Direction.SERVER_TO_CLIENT:
            self.catalog.record(subject.upstream, tools)
        kept: list[Any] = []
        hidden: list[str] = []
        for tool in tools:
            if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                if not self.could_pass(rules, subject.as_tool_call(tool)):
                    hidden.append(tool["name"])
                    continue
            kept.append(tool)
        if not hidden:
            return ()
        metrics.TOOLS_HIDDEN.inc(len(hidden))
        draft.result = {**result, "tools": kept}
        return tuple(hidden)

    def could_pass(self, rules: RuleSet, call: Subject) -> bool:
        """Whether some call to this tool could pass: only terminal rules count, with no side effects.

        A rule that reads the call's arguments cannot be decided from the name
        alone, so an allowing one keeps the tool and a blocking one is passed over.
        """
        for rule in rules.candidates(call):
            effect = rule.action.effect
            if not effect.terminal:
                continue
            if rule.match.reads_arguments:
                if effect is Effect.BLOCK:
                    continue
                return True
            if rule.matches_dynamic(call):
                return effect is not Effect.BLOCK
        return not rules.default_block


def _canned(action: RuleAction, subject: Subject) -> Any:
    """A fresh copy of a canned result, tagged ``resultType: complete`` where the protocol requires it."""
    result = copy.deepcopy(action.result)
    version = subject.protocol_version
    if isinstance(result, dict) and "resultType" not in result and version is not None and version >= MODERN_VERSION:
        result["resultType"] = "complete"
    return result


def _vault(subject: Subject) -> TokenVault:
    """The session's token vault, made on first use (a subject without a session gets one of its own)."""
    session = subject.session
    vault = session.tokens if session is not None else None
    if vault is None:
        vault = TokenVault()
        if session is not None:
            session.tokens = vault
    return vault


def _finished(draft: Draft | None) -> Message | None:
    return draft.finish() if draft is not None else None


def _count(rule: Rule) -> None:
    if rule.counter is not None:
        rule.counter.inc()


def _defaulted(subject: Subject) -> bool:
    return (
        subject.kind is Kind.REQUEST
        and subject.direction is Direction.CLIENT_TO_SERVER
        and subject.method not in PLUMBING
    )


def _block_error(rule: Rule) -> JsonRpcError:
    action = rule.action
    message = action.message or f"blocked by policy (rule {rule.id!r})"
    return JsonRpcError(action.code, message, action.data if action.data is not None else {"rule": rule.id})


def _default_error(rules: RuleSet, subject: Subject) -> JsonRpcError:
    what = f"{subject.method} of tool {subject.tool!r}" if subject.tool else str(subject.method)
    source = os.path.basename(rules.default_block_file or "")
    message = f"blocked by policy: no rule allows {what} (default: block in {source})"
    return JsonRpcError(POLICY_BLOCKED, message, {"rule": metrics.DEFAULT_RULE})


def _rate_key(rule: Rule, subject: Subject) -> str:
    parts = [rule.id]
    for by in rule.action.by:
        if by == "session":
            parts.append(subject.session.id if subject.session is not None else "-")
        elif by == "principal":
            parts.append(subject.principal or "-")
        elif by == "tool":
            parts.append(subject.tool or subject.method or "-")
    return "\x1f".join(parts)


def _rate_error(rule: Rule, retry: float) -> JsonRpcError:
    action = rule.action
    per = " and ".join(action.by)
    message = action.message or (
        f"rate limit exceeded: rule {rule.id!r} allows {action.limit} per {action.per:g}s per {per}; "
        f"retry in {retry:.1f}s"
    )
    data = {"rule": rule.id, "limit": action.limit, "per": action.per, "retry_after": round(retry, 3)}
    return JsonRpcError(action.code, message, data)


def _audit(rule: Rule, subject: Subject) -> None:
    level = rule.action.level
    if not audit_log.isEnabledFor(level):
        return
    event = {
        "event": "rule",
        "rule": rule.id,
        "direction": subject.direction.value,
        "kind": subject.kind.value,
        "method": subject.method,
        "tool": subject.tool,
        "id": subject.message.id,
        "session": subject.session.id if subject.session is not None else None,
        "principal": subject.principal,
        "upstream": subject.upstream,
    }
    if rule.action.message:
        event["message"] = rule.action.message
    audit_log.log(level, orjson.dumps(event).decode())
