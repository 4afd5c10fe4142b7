"""tools/list results show only the tools policy lets a client call."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY

from shadowproxy.core.chain import FORWARD, Action, Chain

from .helpers import S2C, call, ctx, interceptor, reply, request, session

LISTING = {
    "tools": [
        {"name": "read_file", "inputSchema": {"type": "object"}},
        {"name": "delete_file", "inputSchema": {"type": "object"}},
        {"name": "run", "inputSchema": {"type": "object"}, "annotations": {"destructiveHint": True}},
        {"name": "shell", "inputSchema": {"type": "object"}},
    ],
    "nextCursor": "abc",
}


def names(result: dict) -> list[str]:  # type: ignore[type-arg]
    return [tool["name"] for tool in result["tools"]]


async def test_blocked_tools_disappear_from_the_list(tmp_path: Path) -> None:
    rules = interceptor(
        tmp_path,
        """
rules:
  - {id: no-delete, match: {direction: client_to_server, tool: "delete_*"}, action: block}
  - {id: no-destructive, match: {direction: client_to_server, annotations: {destructiveHint: true}}, action: block}
  - {id: shell-only-for-admins, match: {tool: shell, not: {principal: admin}}, action: block}
""",
    )
    hidden_before = REGISTRY.get_sample_value("shadowproxy_rules_tools_hidden_total") or 0.0
    verdict = await rules.on_message(ctx(reply(LISTING), S2C, request_message=request("tools/list")))
    assert verdict.action is Action.FORWARD and verdict.message is not None
    assert names(verdict.message.result) == ["read_file"]
    assert verdict.message.result["nextCursor"] == "abc"
    assert REGISTRY.get_sample_value("shadowproxy_rules_tools_hidden_total") == hidden_before + 3
    admin = await rules.on_message(ctx(reply(LISTING), S2C, request_message=request("tools/list"), principal="admin"))
    assert admin.message is not None and names(admin.message.result) == ["read_file", "shell"]
    # What the list hides, a call is refused.
    assert (await rules.on_message(ctx(call("delete_file")))).action is Action.BLOCK


async def test_nothing_hidden_means_original_bytes(tmp_path: Path) -> None:
    rules = interceptor(tmp_path, "rules:\n  - {id: r, match: {tool: nothing_listed}, action: block}\n")
    listing = reply(LISTING)
    assert (await rules.on_message(ctx(listing, S2C, request_message=request("tools/list")))) is FORWARD


async def test_argument_dependent_rules_do_not_hide_tools(tmp_path: Path) -> None:
    rules = interceptor(
        tmp_path,
        """
default: block
rules:
  - {id: list, match: {direction: client_to_server, method: tools/list}, action: allow}
  - id: no-etc
    match: {tool: read_file, params: {arguments.path: {regex: "^/etc"}}}
    action: block
  - id: tmp-delete
    match: {tool: delete_file, params: {arguments.path: {regex: "^/tmp/"}}}
    action: allow
  - {id: read, match: {tool: read_file}, action: allow}
""",
    )
    verdict = await rules.on_message(ctx(reply(LISTING), S2C, request_message=request("tools/list")))
    assert verdict.message is not None
    # read_file: blocked for some paths only; delete_file: allowed for some paths; run/shell: default block.
    assert names(verdict.message.result) == ["read_file", "delete_file"]
    assert (await rules.on_message(ctx(call("read_file", {"path": "/etc/passwd"})))).action is Action.BLOCK
    assert (await rules.on_message(ctx(call("delete_file", {"path": "/home/x"})))).action is Action.BLOCK
    assert (await rules.on_message(ctx(call("delete_file", {"path": "/tmp/x"})))) is FORWARD


async def test_listing_has_no_side_effects(tmp_path: Path) -> None:
    rules = interceptor(
        tmp_path,
        """
rules:
  - {id: tag-calls, match: {tool: "*"}, action: {tag: called}}
  - {id: rate, match: {tool: "*"}, action: {rate: {limit: 1, per: 60}}}
""",
    )
    record = session()
    for _ in range(3):
        listed = await rules.on_message(
            ctx(reply(LISTING), S2C, request_message=request("tools/list"), session_record=record)
        )
        assert listed is FORWARD
    assert record.tags == []
    assert (await rules.on_message(ctx(call("shell"), session_record=record))) is FORWARD


async def test_session_rules_apply_to_the_list(tmp_path: Path) -> None:
    rules = interceptor(
        tmp_path,
        "rules:\n  - {id: untrusted, match: {tool: shell, session: {tags: [untrusted]}}, action: block}\n",
    )
    chain = Chain([rules])
    trusted = await chain.run(ctx(reply(LISTING), S2C, request_message=request("tools/list"), session_record=session()))
    assert trusted is FORWARD
    record = session(tags=["untrusted"])
    untrusted = await chain.run(ctx(reply(LISTING), S2C, request_message=request("tools/list"), session_record=record))
    assert untrusted.message is not None and "shell" not in names(untrusted.message.result)


async def test_a_result_without_a_tool_list_is_left_alone(tmp_path: Path) -> None:
    rules = interceptor(tmp_path, "default: block\nrules: []\n")
    odd = reply({"tools": "not a list"})
    assert (await rules.on_message(ctx(odd, S2C, request_message=request("tools/list")))) is FORWARD
    weird = reply({"tools": [{"no": "name"}, {"name": "x"}]})
    verdict = await rules.on_message(ctx(weird, S2C, request_message=request("tools/list")))
    assert verdict.message is not None and verdict.message.result == {"tools": [{"no": "name"}]}
