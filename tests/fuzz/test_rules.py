"""Properties of the rules engine: any message, against the shipped packs and a policy using every condition,
is judged without an exception, and whatever it modifies is still a valid JSON-RPC message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowproxy.core.chain import Direction
from shadowproxy.core.jsonrpc import Kind, Message, decode
from shadowproxy.core.record import SessionRecord

from .strategies import JSON, OBJECTS, messages

ruleset = pytest.importorskip("shadowproxy.rules.ruleset")
engine_module = pytest.importorskip("shadowproxy.rules.engine")
subject_module = pytest.importorskip("shadowproxy.rules.subject")

PACKS = Path(ruleset.__file__).parent / "packs"
POLICY = """
rules:
  - id: sql
    match:
      tool: "q*"
      params:
        arguments.sql: {regex: "(?i)drop"}
        arguments.limit: {gt: 10}
        arguments.mode: {in: [a, b]}
        arguments.tables: {contains: users}
        arguments.x: {exists: false}
    action: block
  - id: results
    match: {direction: server_to_client, result: {"content[*].text": {contains: "KEY"}}}
    action: {modify: {set: {result.flagged: true}, remove: [result.structuredContent]}}
  - id: big
    match: {size: {gt: 300}, not: {principal: "admin*"}}
    action: {tag: [big]}
  - id: session
    match: {any: [{session: {client_name: "c*", tags: [big]}}, {upstream: other}], resource: "file:///*"}
    action: {respond: {result: {ok: true}}}
  - id: everything
    match: {}
    action: redact
  - id: echo
    match: {tool: echo, kind: [request, response]}
    action: {modify: {set: {params.arguments.limit: 5}}}
"""


def rule_sets() -> list[Any]:
    sets = [ruleset.loads(POLICY, "fuzz-policy")]
    sets += [ruleset.load([str(pack)]) for pack in sorted(PACKS.glob("*.yaml"))]
    return sets


RULE_SETS = rule_sets()
TOOL_NAMES = st.sampled_from(["echo", "query", "read_file", "delete_file", "exec", "x"]) | st.text(max_size=10)


@st.composite
def tool_calls(draw: st.DrawFn) -> dict[str, Any]:
    arguments = draw(st.dictionaries(st.sampled_from(["sql", "limit", "mode", "tables", "x", "path"]), JSON))
    params = {"name": draw(TOOL_NAMES), "arguments": arguments, **draw(OBJECTS)}
    return {"jsonrpc": "2.0", "id": draw(st.integers(0, 1000)), "method": "tools/call", "params": params}


@st.composite
def replies(draw: st.DrawFn) -> dict[str, Any]:
    text = st.text(max_size=40) | st.sampled_from(["KEY", "mail a@b.example", "4111 1111 1111 1111"])
    content = draw(st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": text}), max_size=3))
    return {"jsonrpc": "2.0", "id": 1, "result": {"content": content, **draw(OBJECTS)}}


def as_message(data: dict[str, Any]) -> Message:
    decoded = decode(orjson.dumps(data))
    assert isinstance(decoded, Message)
    return decoded


@given(
    st.sampled_from(range(len(RULE_SETS))),
    messages() | tool_calls() | replies(),
    st.none() | tool_calls(),
    st.sampled_from(list(Direction)),
    st.none() | st.text(max_size=12),
)
def test_any_message_is_judged_without_error(
    which: int, data: dict[str, Any], request: dict[str, Any] | None, direction: Direction, principal: str | None
) -> None:
    message = as_message(data)
    related = as_message(request) if request is not None and message.is_reply else None
    session = SessionRecord(id="s", client_info={"name": "cli", "version": "1"}, principal=principal)
    subject = subject_module.Subject(message, direction, request=related, session=session, principal=principal)
    outcome = engine_module.Engine().evaluate(RULE_SETS[which], subject)
    assert outcome.verdict in ("forward", "block", "respond")
    if outcome.verdict == "block":
        assert outcome.error is not None and isinstance(outcome.error.code, int)
    if outcome.message is not None:
        again = decode(outcome.message.to_bytes())
        assert isinstance(again, Message) and again.kind is message.kind and again.id == message.id
        if message.kind is Kind.REQUEST:
            assert again.method == message.method
    assert message.data == data, "the original message is never changed in place"
