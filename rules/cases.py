"""Policy unit tests: a folder of cases, each a message and the verdict the rules must give it.

A case file holds ``cases:``, a list of::

    name: blocks delete_file                 # required
    direction: client_to_server              # default
    message: {jsonrpc: "2.0", id: 1, method: tools/call, params: {name: delete_file}}
    request: {...}                           # for a response: the request it answers
    session: {client_name: claude, client_version: "1.0", protocol_version: "2025-06-18", tags: [x], id: s1}
    principal: alice
    upstream: default
    repeat: 1                                # judge it N times (rate limits); expectations apply to the last
    expect:
      verdict: block                         # forward | block | respond | delay
      rule: no-delete                        # the deciding rule ("(default)" for a file's default)
      code: -32010
      matched: [log-all, no-delete]          # these rules matched, in this order (others may too)
      message: {...}                         # the resulting message, exactly
      contains: ["[REDACTED:email]"]         # strings the resulting message must hold
      absent: ["bob@example.com"]            # strings it must not hold
      hidden_tools: [delete_file]            # tools removed from a tools/list result
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from shadowproxy.core.chain import Direction
from shadowproxy.core.errors import JsonRpcError
from shadowproxy.core.jsonrpc import Message, classify
from shadowproxy.core.record import SessionRecord
from shadowproxy.rules import metrics
from shadowproxy.rules.engine import Engine, Outcome
from shadowproxy.rules.ruleset import RuleSet
from shadowproxy.rules.source import RULE_SUFFIXES, Document, Problem, RulesError, read
from shadowproxy.rules.subject import Subject

_CASE_KEYS = {"name", "description", "direction", "message", "request", "session", "principal", "upstream", "repeat"}
_EXPECT_KEYS = {"verdict", "rule", "code", "matched", "message", "contains", "absent", "hidden_tools"}
_SESSION_KEYS = {"id", "client_name", "client_version", "protocol_version", "tags", "principal"}
_VERDICTS = {"forward", "block", "respond", "delay"}


@dataclass(slots=True)
class Case:
    """One parsed case: ``where`` is its file:line."""

    name: str
    where: str
    spec: dict[str, Any]


@dataclass(slots=True)
class CaseResult:
    """How a case went: no failures means it passed."""

    case: Case
    failures: list[str] = field(default_factory=list)
    outcome: Outcome | None = None

    @property
    def passed(self) -> bool:
        """Whether every expectation held."""
        return not self.failures


def load_cases(directory: Path) -> list[Case]:
    """Every case in the directory's files, in name order; raise RulesError listing every malformed one."""
    if not directory.is_dir():
        raise RulesError([Problem(str(directory), None, "cases must be a directory of .yaml/.json files")])
    cases: list[Case] = []
    problems: list[Problem] = []
    for file in sorted(p for p in directory.iterdir() if p.suffix in RULE_SUFFIXES):
        document, found = read(file)
        problems.extend(found)
        if document is not None:
            cases.extend(_cases_of(document, problems))
    if problems:
        raise RulesError(problems)
    if not cases:
        raise RulesError([Problem(str(directory), None, "no cases found")])
    return cases


def _cases_of(document: Document, problems: list[Problem]) -> list[Case]:
    data = document.data
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        problems.append(Problem(document.file, document.line_of(()), "a cases file needs a 'cases:' list"))
        return []
    cases = []
    for index, spec in enumerate(data["cases"]):
        path = ("cases", index)
        before = len(problems)
        if not isinstance(spec, dict):
            problems.append(Problem(document.file, document.line_of(path), "a case must be a mapping"))
            continue
        _check_keys(document, path, spec, _CASE_KEYS, problems)
        for key in ("name", "message", "expect"):
            if key not in spec:
                problems.append(Problem(document.file, document.line_of(path), f"case is missing {key!r}"))
        expect = spec.get("expect")
        if isinstance(expect, dict):
            _check_keys(document, (*path, "expect"), expect, _EXPECT_KEYS, problems)
            if "verdict" in expect and expect["verdict"] not in _VERDICTS:
                line = document.line_of((*path, "expect", "verdict"))
                problems.append(Problem(document.file, line, f"verdict must be one of {sorted(_VERDICTS)}"))
        if isinstance(spec.get("session"), dict):
            _check_keys(document, (*path, "session"), spec["session"], _SESSION_KEYS, problems)
        if len(problems) == before:
            where = f"{document.file}:{document.line_of(path)}"
            cases.append(Case(str(spec["name"]), where, spec))
    return cases


def _check_keys(
    document: Document, path: tuple[Any, ...], spec: dict[str, Any], known: set[str], problems: list[Problem]
) -> None:
    for key in spec:
        if key not in known and key != "expect":
            line = document.line_of((*path, key))
            problems.append(Problem(document.file, line, f"unknown key {key!r} (known: {', '.join(sorted(known))})"))


def subject_for(
    message: Message,
    direction: Direction,
    *,
    request: Message | None = None,
    session: dict[str, Any] | None = None,
    principal: str | None = None,
    upstream: str = "default",
    engine: Engine,
) -> Subject:
    """A subject built from plain data, for cases and ``rules test``."""
    record = None
    if session is not None:
        client_info = {k: session[f"client_{k}"] for k in ("name", "version") if f"client_{k}" in session}
        record = SessionRecord(
            id=str(session.get("id", "test-session")),
            upstream=upstream,
            protocol_version=session.get("protocol_version"),
            client_info=client_info or None,
            principal=session.get("principal"),
            tags=list(session.get("tags", [])),
        )
    return Subject(
        message,
        direction,
        request=request,
        session=record,
        principal=principal,
        upstream=upstream,
        catalog=engine.catalog,
    )


def message_of(data: Any, what: str) -> Message:
    """A Message from decoded JSON; a JsonRpcError names ``what`` when it is not JSON-RPC."""
    try:
        return classify(data, None)
    except JsonRpcError as exc:
        raise JsonRpcError(exc.code, f"{what}: {exc.message}") from None


def run_case(rules: RuleSet, case: Case) -> CaseResult:
    """Judge one case with a fresh engine and compare with what it expects."""
    spec = case.spec
    result = CaseResult(case)
    try:
        message = message_of(spec["message"], "message")
        request = message_of(spec["request"], "request") if "request" in spec else None
        direction = Direction(spec.get("direction", "client_to_server"))
    except (JsonRpcError, ValueError) as exc:
        result.failures.append(f"bad case: {exc}")
        return result
    engine = Engine()
    upstream = spec.get("upstream", "default")
    session, principal = spec.get("session"), spec.get("principal")
    outcome = None
    for _ in range(int(spec.get("repeat", 1))):
        subject = subject_for(
            message, direction, request=request, session=session, principal=principal, upstream=upstream, engine=engine
        )
        outcome = engine.evaluate(rules, subject, trace=True)
    assert outcome is not None
    result.outcome = outcome
    result.failures = compare(spec.get("expect") or {}, outcome, message)
    return result


def verdict_name(outcome: Outcome) -> str:
    """The verdict as a case names it (a plain delay reads ``delay``)."""
    if outcome.verdict == "forward" and outcome.delay > 0 and outcome.message is None:
        return "delay"
    return outcome.verdict


def compare(expect: dict[str, Any], outcome: Outcome, original: Message) -> list[str]:
    """What differs between ``expect`` and ``outcome``, one sentence each."""
    failures = []
    verdict = verdict_name(outcome)
    if "verdict" in expect and expect["verdict"] != verdict:
        reason = f" ({outcome.error.message})" if outcome.error is not None else ""
        failures.append(f"expected verdict {expect['verdict']}, got {verdict}{reason}")
    deciding = outcome.rule.id if outcome.rule is not None else (metrics.DEFAULT_RULE if outcome.error else None)
    if "rule" in expect and expect["rule"] != deciding:
        failures.append(f"expected rule {expect['rule']!r} to decide, got {deciding!r}")
    if "code" in expect and (outcome.error is None or outcome.error.code != expect["code"]):
        got = outcome.error.code if outcome.error is not None else None
        failures.append(f"expected error code {expect['code']}, got {got}")
    matched = [rule.id for rule in outcome.matched or ()]
    if "matched" in expect and not _in_order(list(expect["matched"]), matched):
        failures.append(f"expected rules {expect['matched']} to match in order, matched {matched}")
    final = resulting(outcome, original)
    if "message" in expect and final != expect["message"]:
        failures.append(f"resulting message differs: {orjson.dumps(final).decode()}")
    text = orjson.dumps(final).decode()
    failures.extend(f"resulting message lacks {s!r}" for s in expect.get("contains", ()) if s not in text)
    failures.extend(f"resulting message still holds {s!r}" for s in expect.get("absent", ()) if s in text)
    if "hidden_tools" in expect and list(expect["hidden_tools"]) != list(outcome.hidden_tools):
        failures.append(f"expected hidden tools {expect['hidden_tools']}, got {list(outcome.hidden_tools)}")
    return failures


def resulting(outcome: Outcome, original: Message) -> Any:
    """What would go on: the (modified) message, the error, or the canned result."""
    if outcome.verdict == "block" and outcome.error is not None:
        return {"jsonrpc": "2.0", "id": original.id, "error": outcome.error.to_error()}
    if outcome.verdict == "respond":
        return {"jsonrpc": "2.0", "id": original.id, "result": outcome.result}
    return (outcome.message or original).data


def _in_order(wanted: list[str], matched: list[str]) -> bool:
    remaining = iter(matched)
    return all(any(rule == want for rule in remaining) for want in wanted)
