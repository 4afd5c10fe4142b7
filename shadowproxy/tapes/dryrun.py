"""``rules test POLICY --tape TAPE|DIR``: a rules set judged against recorded traffic, per rule.

Each message on the tapes (as it went on when it was recorded; the proxy's own answers, and the answers to
requests the rules would stop, left out) is judged by the rules with the session it was in (client, protocol
version and upstream from the tape's header) and, for an answer, its request. Each rule that matched reports
what it would have done (blocked, answered, modified, redacted, held, logged, tagged, recorded) and the
messages it would have touched. A message the policy would block that passed when it was recorded is counted
in ``newly_blocked``: the command exits 1 when there is one.

With ``--cases`` the cases say what must keep working: a recorded message the policy would block is compared
with the cases about the same call (same direction, method, and tool, prompt or resource; an answer by its
request) that expect a verdict; when the closest of them (the most params equal) expects ``forward``, the
message is listed in ``contradicted``. The command then exits 1 for those (and for a failing case), not for
every newly blocked message: "a huge sum is blocked" beside "a small sum passes" keeps a recorded huge sum
from counting against the policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shadowproxy.core.chain import Direction
from shadowproxy.core.jsonrpc import Message
from shadowproxy.rules.actions import Effect
from shadowproxy.rules.cases import Case, message_of, subject_for
from shadowproxy.rules.engine import Engine, Outcome
from shadowproxy.rules.ruleset import Rule, RuleSet
from shadowproxy.tapes.diff import labels
from shadowproxy.tapes.format import C2S, Tape

DEFAULT = "(default)"
TERMINAL_DONE = {"block": "blocked", "respond": "answered", "hold": "held for approval"}
DONE = {
    Effect.MODIFY: "modified",
    Effect.REDACT: "redacted",
    Effect.DELAY: "held",
    Effect.LOG: "logged",
    Effect.TAG: "tagged",
    Effect.RECORD: "recorded",
}


@dataclass(slots=True)
class RuleReport:
    rule: str
    action: str
    where: str
    counts: dict[str, int] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)

    def add(self, did: str, tape: Tape, line: int, what: str, limit: int) -> None:
        self.counts[did] = self.counts.get(did, 0) + 1
        if len(self.messages) < limit:
            self.messages.append({"tape": tape.name, "line": line, "what": what, "did": did})


@dataclass(slots=True)
class DryRun:
    tapes: int = 0
    judged: int = 0
    newly_blocked: int = 0
    rules: dict[str, RuleReport] = field(default_factory=dict)
    contradicted: list[dict[str, Any]] = field(default_factory=list)
    """Messages the policy would block that a ``forward`` case expects to pass."""

    def to_json(self) -> dict[str, Any]:
        return {
            "tapes": self.tapes,
            "messages": self.judged,
            "newly_blocked": self.newly_blocked,
            "contradicted": self.contradicted,
            "rules": [
                {"rule": r.rule, "action": r.action, "where": r.where, "would_have": r.counts, "messages": r.messages}
                for r in self.rules.values()
            ],
        }

    def text(self) -> str:
        lines = [f"{self.tapes} tape(s), {self.judged} messages judged"]
        for report in self.rules.values():
            done = ", ".join(f"{did} {count}" for did, count in report.counts.items())
            lines.append(f"rule {report.rule} ({report.action}, {report.where}): {done}")
            lines += [f"    {m['tape']}:{m['line']} {m['what']}: {m['did']}" for m in report.messages]
        if not self.rules:
            lines.append("no rule matched any message")
        lines.append(f"would block {self.newly_blocked} message(s) that passed when recorded")
        lines += [f"{c['tape']}:{c['line']} {c['what']}: blocked by {c['rule']}, but case {c['case']!r} ({c['where']})"
                  " expects it to pass" for c in self.contradicted]  # fmt: skip
        return "\n".join(lines) + "\n"


Call = tuple[str, str | None, Any]
"""Direction, method (an answer's: its request's), and the tool or prompt name or resource uri it is about."""


def call_of(direction: str, message: Message, request: Message | None) -> Call:
    asking = message if request is None else request
    params = asking.params if isinstance(asking.params, dict) else {}
    return direction, asking.method, params.get("name", params.get("uri"))


@dataclass(frozen=True, slots=True)
class Expected:
    """A case that expects a verdict, by what it is about."""

    case: Case
    verdict: str
    params: frozenset[tuple[str, Any]]


def expectations(cases: list[Case]) -> dict[Call, list[Expected]]:
    """The cases that expect a verdict, by the call they are about."""
    found: dict[Call, list[Expected]] = {}
    for case in cases:
        spec = case.spec
        verdict = (spec.get("expect") or {}).get("verdict")
        if verdict is None:
            continue
        message = message_of(spec["message"], "message")
        request = message_of(spec["request"], "request") if "request" in spec else None
        call = call_of(str(spec.get("direction", C2S)), message, request)
        found.setdefault(call, []).append(Expected(case, verdict, _leaves(message, request)))
    return found


def expected_to_pass(
    expected: dict[Call, list[Expected]], call: Call, message: Message, request: Message | None
) -> Case | None:
    """The case that expects this message to pass: the closest case about its call, when that one says forward."""
    candidates = expected.get(call)
    if not candidates:
        return None
    leaves = _leaves(message, request)
    closest = max(candidates, key=lambda candidate: len(candidate.params & leaves))  # the first of equals
    return closest.case if closest.verdict == "forward" else None


def _leaves(message: Message, request: Message | None) -> frozenset[tuple[str, Any]]:
    """The request's params as (path, value) pairs of hashable leaves."""
    found: set[tuple[str, Any]] = set()

    def walk(path: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key != "_meta":
                    walk(f"{path}.{key}", item)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(f"{path}[{index}]", item)
        else:
            found.add((path, value))

    walk("params", (request or message).params)
    return frozenset(found)


def dry_run(
    rules: RuleSet, tapes: list[Tape], *, limit: int = 20, expected: dict[Call, list[Expected]] | None = None
) -> DryRun:
    """Judge every recorded message; ``limit`` messages listed per rule; ``expected``: see :func:`expectations`."""
    result = DryRun(tapes=len(tapes))
    for tape in tapes:
        header = tape.header
        client = header.get("client") or {}
        session = {
            "id": header.get("session") or tape.name,
            "client_name": client.get("name"),
            "client_version": client.get("version"),
            "protocol_version": header.get("protocol_version"),
        }
        session = {key: value for key, value in session.items() if value is not None}
        engine = Engine()
        asked: dict[tuple[str, Any], Message] = {}
        stopped: set[tuple[str, Any]] = set()
        for entry, what in zip(tape.entries, labels(tape), strict=True):
            if entry.from_proxy:
                continue
            message = entry.message
            request = None
            if message.is_request:
                asked[(entry.direction, message.id)] = message
            elif message.is_reply:
                asker = "server_to_client" if entry.direction == C2S else C2S
                if (asker, message.id) in stopped:
                    continue  # the policy stops its request: this answer would never come
                request = asked.get((asker, message.id))
            subject = subject_for(message, Direction(entry.direction), request=request, session=session,
                                  upstream=str(header.get("upstream") or "default"), engine=engine)  # fmt: skip
            outcome = engine.evaluate(rules, subject, trace=True)
            result.judged += 1
            _note(result, outcome, message, tape, entry.line, what, limit)
            if outcome.verdict != "forward" and message.is_request:
                stopped.add((entry.direction, message.id))
            if outcome.verdict == "block" and entry.went_on:
                result.newly_blocked += 1
            if outcome.verdict == "block" and expected:
                case = expected_to_pass(expected, call_of(entry.direction, message, request), message, request)
                if case is not None:
                    rule = outcome.rule.id if outcome.rule is not None else DEFAULT
                    where = {"tape": tape.name, "line": entry.line, "what": what, "rule": rule}
                    result.contradicted.append({**where, "case": case.name, "where": case.where})
    return result


def _note(result: DryRun, outcome: Outcome, message: Message, tape: Tape, line: int, what: str, limit: int) -> None:
    deciding = outcome.rule
    for rule in outcome.matched or ():
        effect = rule.action.effect
        if effect.terminal or effect is Effect.RATE:
            if rule is not deciding:
                continue
            did = TERMINAL_DONE.get(outcome.verdict, "allowed")
        elif effect is Effect.REDACT and not _masks(rule, message):
            did = "matched, nothing to redact"
        else:
            did = DONE.get(effect, effect.value)
        _report(result, rule).add(did, tape, line, what, limit)
    if outcome.verdict == "block" and deciding is None:
        _report(result, None).add("blocked", tape, line, what, limit)
    if outcome.hidden_tools:
        text = f"{what} (hid {', '.join(outcome.hidden_tools)})"
        _report(result, None).add("modified", tape, line, text, limit)


def _masks(rule: Rule, message: Message) -> bool:
    redactor = rule.action.redactor
    data = message.data
    return redactor is not None and any(
        redactor.value(data[part]) is not data[part] for part in ("params", "result", "error") if part in data
    )


def _report(result: DryRun, rule: Rule | None) -> RuleReport:
    key = rule.id if rule is not None else DEFAULT
    report = result.rules.get(key)
    if report is None:
        where = f"{rule.file}:{rule.line}" if rule is not None else "default and tool filtering"
        action = rule.action.effect.value if rule is not None else "block"
        report = result.rules[key] = RuleReport(key, action, where)
    return report
