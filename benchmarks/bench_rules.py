"""Per-message cost of the rules interceptor with 10, 100 and 1,000 rules (target: < 20 us at 100).

Run: pytest benchmarks/bench_rules.py --benchmark-only -p no:cacheprovider

The rule sets are a typical mix: rules on named tools (block, allow, rate, log),
rules on globs, rules reading arguments, rules on other methods and on replies,
and a few that constrain no method at all (session tags, principals, size), so
the index cannot skip them. The message is a typical ``tools/call``; the whole
``on_message`` coroutine is driven, so the figure is what the chain pays.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from shadowproxy.core.chain import Direction, MessageContext, Verdict
from shadowproxy.core.jsonrpc import Message, decode
from shadowproxy.core.record import SessionRecord
from shadowproxy.interceptors.rules import RulesInterceptor, create
from shadowproxy.rules.subject import Subject


def rule_file(count: int) -> str:
    rules: list[dict[str, Any]] = []
    for index in range(count):
        kind = index % 10
        base: dict[str, Any] = {"id": f"r{index}", "priority": index % 7}
        if kind in (0, 1):
            base |= {"match": {"direction": "client_to_server", "tool": f"tool_{index}"}, "action": "block"}
        elif kind == 2:
            base |= {"match": {"method": "tools/call", "tool": f"ns{index}_*"}, "action": "allow"}
        elif kind == 3:
            match = {"tool": f"fs_{index}", "params": {"arguments.path": {"regex": "^/etc/"}}}
            base |= {"match": match, "action": {"block": {"message": "no /etc"}}}
        elif kind == 4:
            base |= {"match": {"method": "resources/read", "resource": f"file:///srv/{index}/*"}, "action": "block"}
        elif kind == 5:
            base |= {"match": {"direction": "server_to_client", "tool": f"tool_{index}"}, "action": "redact"}
        elif kind == 6:
            base |= {"match": {"tool": f"api_{index}"}, "action": {"rate": {"limit": 100, "per": 60}}}
        elif kind == 7:
            base |= {"match": {"method": "prompts/get", "prompt": f"p{index}"}, "action": "log"}
        elif kind == 8:
            base |= {"match": {"tool": {"regex": f"^admin_{index}"}}, "action": {"tag": "admin"}}
        else:
            # Constrains no method or tool: the index cannot skip it, every message evaluates it.
            match = {"any": [{"session": {"tags": [f"t{index}"]}}, {"principal": f"u{index}"}], "size": {"gt": 65536}}
            base |= {"match": match, "action": "block"}
        rules.append(base)
    return orjson.dumps({"rules": rules}).decode()


CALL = {
    "jsonrpc": "2.0",
    "id": 42,
    "method": "tools/call",
    "params": {
        "name": "search_docs",
        "arguments": {"query": "how do I rotate credentials", "limit": 10, "path": "/srv/docs"},
        "_meta": {"progressToken": "p-42"},
    },
}


def make_interceptor(tmp_path: Path, count: int) -> RulesInterceptor:
    file = tmp_path / f"rules-{count}.json"
    file.write_text(rule_file(count))
    interceptor = create({"paths": [str(file)], "watch": False})
    assert len(interceptor.rules.rules) == count
    return interceptor


def drive(interceptor: RulesInterceptor, ctx: MessageContext) -> Callable[[], Verdict]:
    """Run on_message to completion without an event loop (it never suspends unless it delays)."""

    def once() -> Verdict:
        coroutine = interceptor.on_message(ctx)
        try:
            coroutine.send(None)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        raise AssertionError("on_message suspended")

    return once


def context(message: Message, direction: Direction = Direction.CLIENT_TO_SERVER, **kw: Any) -> MessageContext:
    record = SessionRecord(id="bench", client_info={"name": "bench", "version": "1"}, tags=["a"])
    return MessageContext(message, direction, session=record, principal="alice", **kw)


@pytest.mark.parametrize("count", [10, 100, 1000])
def test_tools_call(benchmark, tmp_path: Path, count: int) -> None:  # type: ignore[no-untyped-def]
    interceptor = make_interceptor(tmp_path, count)
    message = decode(orjson.dumps(CALL))
    assert isinstance(message, Message)
    verdict = benchmark(drive(interceptor, context(message)))
    assert verdict.is_forward and verdict.message is None


@pytest.mark.parametrize("count", [100, 1000])
def test_tools_call_without_index(benchmark, tmp_path: Path, count: int) -> None:  # type: ignore[no-untyped-def]
    """The same judgement, checking every rule in order: what the method/tool index saves."""
    interceptor = make_interceptor(tmp_path, count)
    message = decode(orjson.dumps(CALL))
    assert isinstance(message, Message)
    rules = interceptor.rules.rules

    def linear() -> int:
        subject = Subject.from_context(context(message))
        return sum(1 for rule in rules if rule.matches(subject))

    assert benchmark(linear) == 0


def test_tool_result_redacted(benchmark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A 2 KB tool result with one email in it, under the no-secrets and pii packs plus 100 rules."""
    file = tmp_path / "rules.json"
    file.write_text(rule_file(100))
    interceptor = create({"paths": [str(file), "builtin:no-secrets", "builtin:pii"], "watch": False})
    text = ("lorem ipsum dolor sit amet " * 75) + " contact: jane@example.com"
    reply = decode(orjson.dumps({"jsonrpc": "2.0", "id": 42, "result": {"content": [{"type": "text", "text": text}]}}))
    request = decode(orjson.dumps(CALL))
    assert isinstance(reply, Message) and isinstance(request, Message)
    verdict = benchmark(drive(interceptor, context(reply, Direction.SERVER_TO_CLIENT, request=request)))
    assert verdict.message is not None and "[PII:email]" in verdict.message.result["content"][0]["text"]
