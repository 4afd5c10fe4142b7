"""Every action, in both directions, through the real interceptor (and the real chain where it matters)."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest
from prometheus_client import REGISTRY

from shadowproxy.core.chain import FORWARD, Action, Chain
from shadowproxy.core.errors import POLICY_BLOCKED
from shadowproxy.interceptors.rules import RulesInterceptor, RulesOptions
from shadowproxy.rules.engine import Engine
from shadowproxy.rules.ratelimit import MemoryRateCounter
from shadowproxy.rules.ruleset import load

from .helpers import (
    C2S,
    S2C,
    call,
    ctx,
    error_reply,
    interceptor,
    notification,
    reply,
    request,
    session,
    text_result,
    write,
)


def decisions(rule: str, action: str) -> float:
    return REGISTRY.get_sample_value("shadowproxy_rule_decisions_total", {"rule": rule, "action": action}) or 0.0


async def test_unmatched_message_is_forwarded_untouched(tmp_path: Path) -> None:
    rules = interceptor(tmp_path, "rules:\n  - {id: r, match: {tool: nope}, action: block}\n")
    message = call("read", {"a": 1})
    raw = message.to_bytes()
    verdict = await rules.on_message(ctx(message))
    assert verdict is FORWARD
    assert message.to_bytes() is raw


@pytest.mark.parametrize("direction", ["client_to_server", "server_to_client"])
async def test_allow_stops_evaluation(tmp_path: Path, direction: str) -> None:
    rules = interceptor(
        tmp_path,
        f"""
rules:
  - {{id: first, match: {{direction: {direction}}}, action: allow}}
  - {{id: later, match: {{}}, action: block}}
""",
    )
    context = ctx(call("x")) if direction == "client_to_server" else ctx(reply({}), S2C, request_message=call("x"))
    before = decisions("first", "allow")
    assert (await rules.on_message(context)) is FORWARD
    assert decisions("first", "allow") == before + 1


async def test_block_request_with_default_and_custom_errors(tmp_path: Path) -> None:
    rules = interceptor(
        tmp_path,
        """
rules:
  - {id: plain, match: {tool: rm}, action: block}
  - id: custom
    match: {tool: dd}
    action: {block: {code: -32602, message: "dd is not allowed here", data: {hint: use cp}}}
""",
    )
    plain = await rules.on_message(ctx(call("rm")))
    assert plain.action is Action.BLOCK
    assert plain.error is not None
    assert (plain.error.code, plain.error.data) == (POLICY_BLOCKED, {"rule": "plain"})
    assert "plain" in plain.error.message
    custom = await rules.on_message(ctx(call("dd")))
    assert custom.error is not None
    assert custom.error.to_error() == {"code": -32602, "message": "dd is not allowed here", "data": {"hint": "use cp"}}


async def test_block_server_to_client(tmp_path: Path) -> None:
    rules = interceptor(
        tmp_path,
        """
rules:
  - id: no-errors-leak
    match: {direction: server_to_client, kind: error}
    action: {block: {message: "upstream failed"}}
  - id: no-progress
    match: {direction: server_to_client, method: notifications/progress}
    action: block
""",
    )
    failed = await rules.on_message(ctx(error_reply(-32000, "stack trace here"), S2C, request_message=call("x")))
    assert failed.action is Action.BLOCK
    assert failed.error is not None and failed.error.message == "upstream failed"
    progress = await rules.on_message(ctx(notification("notifications/progress", {"progress": 1}), S2C))
    assert progress.action is Action.BLOCK


async def test_respond_request_and_reply(tmp_path: Path) -> None:
    rules = interceptor(
        tmp_path,
        """
rules:
  - id: mock-weather
    match: {direction: client_to_server, tool: get_weather}
    action: {respond: {text: "sunny"}}
  - id: flag
    match: {direction: client_to_server, method: feature/flags}
    action: {respond: {result: {beta: true}}}
  - id: replace-result
    match: {direction: server_to_client, tool: legacy}
    action: {respond: {result: {content: [], isError: false}}}
""",
    )
    mocked = await rules.on_message(ctx(call("get_weather")))
    assert mocked.action is Action.RESPOND
    assert mocked.result == text_result("sunny")
    mocked.result["content"].append("mutated")
    again = await rules.on_message(ctx(call("get_weather")))
    assert again.result == text_result("sunny"), "a canned result is copied, never shared"
    flag = await rules.on_message(ctx(request("feature/flags")))
    assert flag.result == {"beta": True}
    # On a reply, the chain turns respond into a replaced result.
    chain = Chain([rules])
    context = ctx(reply(text_result("old")), S2C, request_message=call("legacy"))
    verdict = await chain.run(context)
    assert verdict.action is Action.FORWARD
    assert verdict.message is not None and verdict.message.result == {"content": [], "isError": False}


async def test_modify_sets_and_removes_keeping_meta(tmp_path: Path) -> None:
    rules = interceptor(
        tmp_path,
        """
rules:
  - id: cap-limit
    match: {direction: client_to_server, tool: search}
    action:
      modify:
        set: {params.arguments.limit: 10, params.arguments.filters.safe: true}
        remove: [params.arguments.debug]
  - id: strip-structured
    match: {direction: server_to_client, tool: search}
    action: {modify: {remove: [result.structuredContent], set: {result.annotated: true}}}
""",
    )
    original = call("search", {"q": "x", "limit": 1000, "debug": True}, _meta={"progressToken": "t1"})
    raw = original.to_bytes()
    verdict = await rules.on_message(ctx(original))
    assert verdict.action is Action.FORWARD and verdict.message is not None
    params = verdict.message.params
    assert params is not None
    assert params["arguments"] == {"q": "x", "limit": 10, "filters": {"safe": True}}
    assert params["_meta"] == {"progressToken": "t1"}
    assert original.params is not None and original.params["arguments"]["limit"] == 1000, "the original is untouched"
    assert original.to_bytes() is raw
    assert orjson.loads(verdict.message.to_bytes())["params"]["arguments"]["limit"] == 10
    result = {"content": [], "structuredContent": {"a": 1}}
    back = await rules.on_message(ctx(reply(result), S2C, request_message=call("search")))
    assert back.message is not None and back.message.result == {"content": [], "annotated": True}


async def test_modify_of_nothing_there_forwards_original(tmp_path: Path) -> None:
    rules = interceptor(
        tmp_path,
        "rules:\n  - {id: m, match: {}, action: {modify: {remove: [params.arguments.debug]}}}\n",
    )
    assert (await rules.on_message(ctx(call("x", {"a": 1})))) is FORWARD


async def test_redact_both_directions_and_errors(tmp_path: Path) -> None:
    rules = interceptor(
        tmp_path,
        """
rules:
  - id: redact-all
    match: {}
    action: redact
  - id: custom
    match: {direction: client_to_server}
    action: {redact: {detectors: [], patterns: ["ticket-[0-9]+"], mask: "<{name}>"}}
""",
    )
    sent = await rules.on_message(ctx(call("send", {"to": "bob@example.com", "ref": "ticket-42"})))
    assert sent.message is not None and sent.message.params is not None
    assert sent.message.params["arguments"] == {"to": "[REDACTED:email]", "ref": "<pattern>"}
    secret = "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWXYZ123456"
    result = text_result(f"your key is {secret}")
    back = await rules.on_message(ctx(reply(result), S2C, request_message=call("get_key")))
    assert back.message is not None
    assert secret not in back.message.to_bytes().decode()
    assert back.message.result["content"][0]["text"] == "your key is [REDACTED:api_key]"
    failed = await rules.on_message(ctx(error_reply(-32000, "login failed for carol@example.org"), S2C))
    assert failed.message is not None and failed.message.error is not None
    assert failed.message.error["message"] == "login failed for [REDACTED:email]"


async def test_delay_accumulates(tmp_path: Path) -> None:
    rules = interceptor(
        tmp_path,
        """
rules:
  - {id: slow, match: {tool: x}, action: {delay: 0.25}}
  - {id: slower, match: {direction: server_to_client}, action: {delay: {seconds: 0.5}}}
  - {id: slowest, match: {tool: x}, action: {delay: 0.5}}
""",
    )
    verdict = await rules.on_message(ctx(call("x")))
    assert verdict.action is Action.DELAY and verdict.seconds == pytest.approx(0.75)
    back = await rules.on_message(ctx(reply({}), S2C, request_message=call("y")))
    assert back.action is Action.DELAY and back.seconds == pytest.approx(0.5)


async def test_delay_with_a_modification_keeps_the_modification(tmp_path: Path) -> None:
    rules = interceptor(
        tmp_path,
        """
rules:
  - {id: wait, match: {}, action: {delay: 0.01}}
  - {id: mark, match: {}, action: {modify: {set: {params.marked: true}}}}
""",
    )
    verdict = await rules.on_message(ctx(call("x")))
    assert verdict.action is Action.FORWARD
    assert verdict.message is not None and verdict.message.params is not None and verdict.message.params["marked"]


async def test_rate_per_session_tool_and_principal(tmp_path: Path) -> None:
    file = write(
        tmp_path / "rate.yaml",
        """
rules:
  - id: per-session
    match: {direction: client_to_server, tool: search}
    action: {rate: {limit: 2, per: 60}}
  - id: per-principal-tool
    match: {direction: server_to_client, kind: response}
    action: {rate: {limit: 1, per: 10, by: [principal, tool]}}
""",
    )
    now = [1000.0]
    engine = Engine(MemoryRateCounter(clock=lambda: now[0]))
    rules = RulesInterceptor(RulesOptions(paths=(str(file),), watch=False), load([str(file)]), engine)
    one, two = session(id="one"), session(id="two")
    assert (await rules.on_message(ctx(call("search"), session_record=one))) is FORWARD
    assert (await rules.on_message(ctx(call("search"), session_record=one))) is FORWARD
    over = await rules.on_message(ctx(call("search"), session_record=one))
    assert over.action is Action.BLOCK and over.error is not None
    assert "rate limit exceeded" in over.error.message and "2 per 60s per session" in over.error.message
    assert over.error.data["retry_after"] == pytest.approx(30.0)
    assert (await rules.on_message(ctx(call("search"), session_record=two))) is FORWARD
    now[0] += 30.0
    assert (await rules.on_message(ctx(call("search"), session_record=one))) is FORWARD
    # Server-to-client: one reply per principal and tool per 10 s.
    answer = ctx(reply({}), S2C, request_message=call("a"), principal="alice")
    assert (await rules.on_message(answer)) is FORWARD
    assert (await rules.on_message(ctx(reply({}), S2C, request_message=call("b"), principal="alice"))) is FORWARD
    assert (await rules.on_message(ctx(reply({}), S2C, request_message=call("a"), principal="bob"))) is FORWARD
    blocked = await rules.on_message(ctx(reply({}), S2C, request_message=call("a"), principal="alice"))
    assert blocked.action is Action.BLOCK


async def test_log_writes_one_json_line_and_continues(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rules = interceptor(
        tmp_path,
        """
rules:
  - {id: audit-calls, match: {tool: "*"}, action: {log: {message: tool used}}}
  - {id: audit-replies, match: {direction: server_to_client}, action: log}
""",
    )
    caplog.set_level(logging.INFO, logger="shadowproxy.audit")
    record = session(id="s-9")
    assert (await rules.on_message(ctx(call("read"), session_record=record, principal="alice"))) is FORWARD
    assert (await rules.on_message(ctx(reply({}), S2C, request_message=request("ping")))) is FORWARD
    lines = [orjson.loads(r.getMessage()) for r in caplog.records if r.name == "shadowproxy.audit"]
    assert len(lines) == 2
    assert lines[0] == {
        "event": "rule",
        "rule": "audit-calls",
        "direction": "client_to_server",
        "kind": "request",
        "method": "tools/call",
        "tool": "read",
        "id": 1,
        "session": "s-9",
        "principal": "alice",
        "upstream": "default",
        "message": "tool used",
    }
    assert lines[1]["rule"] == "audit-replies" and lines[1]["direction"] == "server_to_client"
    assert lines[1]["method"] == "ping"


async def test_tag_adds_to_the_session_and_later_rules_see_it(tmp_path: Path) -> None:
    rules = interceptor(
        tmp_path,
        """
rules:
  - {id: mark-shell, priority: 10, match: {tool: "exec*"}, action: {tag: [used-shell, risky]}}
  - {id: mark-reply, match: {direction: server_to_client}, action: {tag: got-reply}}
  - {id: no-net-after-shell, match: {tool: fetch, session: {tags: [used-shell]}}, action: block}
""",
    )
    record = session()
    assert (await rules.on_message(ctx(call("fetch"), session_record=record))) is FORWARD
    assert (await rules.on_message(ctx(call("exec_cmd"), session_record=record))) is FORWARD
    assert record.tags == ["used-shell", "risky"]
    await rules.on_message(ctx(reply({}), S2C, request_message=call("exec_cmd"), session_record=record))
    assert "got-reply" in record.tags
    assert (await rules.on_message(ctx(call("fetch"), session_record=record))).action is Action.BLOCK
    assert (await rules.on_message(ctx(call("exec_cmd")))) is FORWARD, "no session: nothing to tag, no error"


async def test_priority_then_file_order(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "rules:\n  - {id: a-block, match: {tool: x}, action: block}\n")
    write(
        tmp_path / "b.yaml",
        """
rules:
  - {id: b-allow, priority: 5, match: {tool: x}, action: allow}
  - {id: b-block-y, match: {tool: y}, action: block}
  - {id: b-allow-y, match: {tool: y}, action: allow}
  - {id: b-off, priority: 99, enabled: false, match: {}, action: block}
""",
    )
    rules = load([str(tmp_path)])
    assert [rule.id for rule in rules.rules] == ["b-allow", "a-block", "b-block-y", "b-allow-y"]
    chain_rules = RulesInterceptor(RulesOptions(paths=(str(tmp_path),), watch=False), rules)
    assert (await chain_rules.on_message(ctx(call("x")))) is FORWARD
    assert (await chain_rules.on_message(ctx(call("y")))).action is Action.BLOCK
    assert rules.summary()["disabled"] == 1


async def test_default_block_is_for_client_requests_only(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "rules:\n  - {id: ok, match: {direction: client_to_server, tool: ok}, action: allow}\n")
    write(tmp_path / "b.yaml", "default: block\nrules: []\n")
    rules = RulesInterceptor(RulesOptions(paths=(str(tmp_path),), watch=False), load([str(tmp_path)]))
    assert (await rules.on_message(ctx(call("ok")))) is FORWARD
    denied = await rules.on_message(ctx(call("other")))
    assert denied.action is Action.BLOCK and denied.error is not None
    assert (
        denied.error.message
        == "blocked by policy: no rule allows tools/call of tool 'other' (default: block in b.yaml)"
    )
    for plumbing in ("initialize", "ping", "server/discover"):
        assert (await rules.on_message(ctx(request(plumbing)))) is FORWARD
    assert (await rules.on_message(ctx(notification("notifications/initialized")))) is FORWARD
    assert (await rules.on_message(ctx(reply({}), S2C, request_message=call("other")))) is FORWARD
    assert (await rules.on_message(ctx(request("sampling/createMessage"), S2C))) is FORWARD
    assert (await rules.on_message(ctx(request("resources/list"), C2S))).action is Action.BLOCK


async def test_respond_follows_the_protocol_era(tmp_path: Path) -> None:
    rules = interceptor(
        tmp_path,
        """
rules:
  - {id: mock, match: {tool: x}, action: {respond: {text: hi}}}
  - {id: modern-only, match: {tool: y, session: {protocol_version: "2026-*"}}, action: block}
""",
    )
    modern_meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}
    modern = await rules.on_message(ctx(call("x", _meta=modern_meta)))
    assert modern.result == {**text_result("hi"), "resultType": "complete"}
    legacy = await rules.on_message(ctx(call("x"), session_record=session(protocol_version="2025-11-25")))
    assert legacy.result == text_result("hi")
    assert (await rules.on_message(ctx(call("y", _meta=modern_meta)))).action is Action.BLOCK
    assert (await rules.on_message(ctx(call("y"), session_record=session(protocol_version="2025-11-25")))) is FORWARD
