"""Every match condition, in both directions, through the real interceptor."""

from __future__ import annotations

from pathlib import Path

import pytest

from shadowproxy.core.chain import Action, MessageContext

from .helpers import S2C, call, ctx, error_reply, interceptor, notification, reply, request, session, text_result

BLOCK_IF = """
rules:
  - id: r
    match: {match}
    action: block
"""


async def blocked(tmp_path: Path, match: str, context: MessageContext) -> bool:
    rules = interceptor(tmp_path, BLOCK_IF.format(match=match))
    verdict = await rules.on_message(context)
    assert verdict.action in (Action.FORWARD, Action.BLOCK)
    return verdict.action is Action.BLOCK


@pytest.mark.parametrize(
    ("match", "context", "expected"),
    [
        ("{direction: client_to_server}", ctx(call("x")), True),
        ("{direction: client_to_server}", ctx(reply({}), S2C, request_message=call("x")), False),
        ("{direction: server_to_client}", ctx(reply({}), S2C, request_message=call("x")), True),
        ("{direction: server_to_client}", ctx(notification("notifications/progress"), S2C), True),
        ("{kind: request}", ctx(call("x")), True),
        ("{kind: request}", ctx(notification("notifications/initialized")), False),
        ("{kind: notification}", ctx(notification("notifications/initialized")), True),
        ("{kind: response}", ctx(reply({}), S2C, request_message=call("x")), True),
        ("{kind: error}", ctx(error_reply(-32000, "no"), S2C, request_message=call("x")), True),
        ("{kind: [error, response]}", ctx(error_reply(-32000, "no"), S2C, request_message=call("x")), True),
        ("{kind: response}", ctx(error_reply(-32000, "no"), S2C, request_message=call("x")), False),
        ('{method: "tools/*"}', ctx(call("x")), True),
        ('{method: "tools/*"}', ctx(request("resources/read", {"uri": "a"})), False),
        ('{method: "tools/*"}', ctx(reply({}), S2C, request_message=request("tools/list")), True),
        ("{method: [ping, initialize]}", ctx(request("ping")), True),
        ("{method: {regex: '^resources/(read|subscribe)$'}}", ctx(request("resources/subscribe", {"uri": "a"})), True),
    ],
)
async def test_direction_kind_method(tmp_path: Path, match: str, context: MessageContext, expected: bool) -> None:
    assert await blocked(tmp_path, match, context) is expected


@pytest.mark.parametrize(
    ("match", "tool", "expected"),
    [
        ("{tool: delete_file}", "delete_file", True),
        ("{tool: delete_file}", "delete_files", False),
        ('{tool: "delete_*"}', "delete_repo", True),
        ('{tool: "delete_*"}', "undelete_repo", False),
        ("{tool: {regex: 'delete'}}", "undelete_repo", True),
        ("{tool: {regex: '^(rm|mv)$'}}", "rmdir", False),
        ('{tool: [read_file, "list_*"]}', "list_dir", True),
        ("{tool: {glob: 'x?'}}", "xy", True),
    ],
)
async def test_tool(tmp_path: Path, match: str, tool: str, expected: bool) -> None:
    assert await blocked(tmp_path, match, ctx(call(tool))) is expected


async def test_tool_matches_the_reply_through_its_request(tmp_path: Path) -> None:
    context = ctx(reply(text_result("ok")), S2C, request_message=call("delete_file"))
    assert await blocked(tmp_path, '{tool: "delete_*", direction: server_to_client}', context)
    other = ctx(reply(text_result("ok")), S2C, request_message=call("read_file"))
    assert not await blocked(tmp_path, '{tool: "delete_*", direction: server_to_client}', other)


async def test_tool_is_none_outside_tools_call(tmp_path: Path) -> None:
    assert not await blocked(tmp_path, '{tool: "*"}', ctx(request("prompts/get", {"name": "x"})))


async def test_resource_and_prompt(tmp_path: Path) -> None:
    read = ctx(request("resources/read", {"uri": "file:///etc/passwd"}))
    assert await blocked(tmp_path, '{resource: "file:///etc/*"}', read)
    assert not await blocked(tmp_path, '{resource: "file:///home/*"}', read)
    subscribe = ctx(request("resources/subscribe", {"uri": "file:///etc/passwd"}))
    assert await blocked(tmp_path, '{resource: "file:///etc/*"}', subscribe)
    prompt = ctx(request("prompts/get", {"name": "summarize"}))
    assert await blocked(tmp_path, "{prompt: summarize}", prompt)
    assert not await blocked(tmp_path, "{prompt: other}", prompt)
    result = ctx(reply({"contents": []}), S2C, request_message=request("resources/read", {"uri": "file:///etc/x"}))
    assert await blocked(tmp_path, '{resource: "file:///etc/*"}', result)


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ("{arguments.path: /etc/passwd}", True),
        ("{arguments.path: {equals: /etc/shadow}}", False),
        ("{arguments.path: {regex: '^/etc/'}}", True),
        ("{arguments.path: {in: [/a, /etc/passwd]}}", True),
        ("{arguments.mode: {exists: true}}", False),
        ("{arguments.mode: {exists: false}}", True),
        ("{arguments.count: {gt: 10}}", True),
        ("{arguments.count: {gte: 11, lt: 12}}", True),
        ("{arguments.count: {lte: 10}}", False),
        ("{arguments.flag: true}", True),
        ("{arguments.flag: 1}", False),
        ("{arguments.tags: {contains: secret}}", True),
        ("{arguments.path: {contains: passwd}}", True),
        ("{arguments.options: {contains: recursive}}", True),
        ("{'arguments.tags[0]': a}", True),
        ("{'arguments.tags[*]': secret}", True),
        ("{'arguments[\"odd.key\"]': 1}", True),
        ("{arguments.path: {regex: '^/etc/'}, arguments.count: {lt: 5}}", False),
    ],
)
async def test_params_conditions(tmp_path: Path, conditions: str, expected: bool) -> None:
    arguments = {
        "path": "/etc/passwd",
        "count": 11,
        "flag": True,
        "tags": ["a", "secret"],
        "options": {"recursive": True},
        "odd.key": 1,
    }
    context = ctx(call("read", arguments))
    assert await blocked(tmp_path, "{params: " + conditions + "}", context) is expected


async def test_params_of_a_reply_are_its_requests(tmp_path: Path) -> None:
    context = ctx(reply(text_result("x")), S2C, request_message=call("read", {"path": "/etc/passwd"}))
    assert await blocked(tmp_path, "{params: {arguments.path: /etc/passwd}}", context)


async def test_result_conditions(tmp_path: Path) -> None:
    context = ctx(reply(text_result("the secret is 42")), S2C, request_message=call("read"))
    assert await blocked(tmp_path, "{result: {'content[*].text': {contains: secret}}}", context)
    assert await blocked(tmp_path, "{result: {isError: false}}", context)
    assert not await blocked(tmp_path, "{result: {isError: true}}", context)
    assert not await blocked(tmp_path, "{result: {isError: false}}", ctx(call("read")))


async def test_session_attributes(tmp_path: Path) -> None:
    record = session(
        client_info={"name": "claude-code", "version": "1.2.0"}, protocol_version="2025-06-18", tags=["beta"]
    )
    context = ctx(call("x"), session_record=record)
    assert await blocked(tmp_path, '{session: {client_name: "claude-*"}}', context)
    assert await blocked(tmp_path, "{session: {client_version: {regex: '^1\\.'}}}", context)
    assert await blocked(tmp_path, "{session: {protocol_version: '2025-06-18'}}", context)
    assert await blocked(tmp_path, "{session: {tags: [beta]}}", context)
    assert not await blocked(tmp_path, "{session: {tags: [beta, vip]}}", context)
    assert not await blocked(tmp_path, "{session: {client_name: cursor}}", context)
    assert not await blocked(tmp_path, '{session: {client_name: "*"}}', ctx(call("x")))
    reply_context = ctx(reply({}), S2C, request_message=call("x"), session_record=record)
    assert await blocked(tmp_path, "{session: {tags: [beta]}, direction: server_to_client}", reply_context)


async def test_principal_and_upstream(tmp_path: Path) -> None:
    context = ctx(call("x"), principal="alice@corp", upstream="github")
    assert await blocked(tmp_path, '{principal: "*@corp"}', context)
    assert not await blocked(tmp_path, "{principal: bob}", context)
    assert await blocked(tmp_path, "{upstream: github}", context)
    assert not await blocked(tmp_path, "{upstream: jira}", context)
    anonymous = ctx(call("x"))
    assert await blocked(tmp_path, '{not: {principal: "*"}}', anonymous)
    from_session = ctx(call("x"), session_record=session(principal="carol"))
    assert await blocked(tmp_path, "{principal: carol}", from_session)


async def test_size(tmp_path: Path) -> None:
    small = ctx(call("x"))
    big = ctx(call("x", {"blob": "a" * 5000}))
    assert await blocked(tmp_path, "{size: {gt: 4096}}", big)
    assert not await blocked(tmp_path, "{size: {gt: 4096}}", small)
    assert await blocked(tmp_path, "{size: {lte: 4096}}", small)


async def test_not_any_all(tmp_path: Path) -> None:
    context = ctx(call("delete_file", {"path": "/tmp/x"}))
    assert not await blocked(tmp_path, "{not: {tool: delete_file}}", context)
    assert await blocked(tmp_path, "{any: [{tool: nope}, {tool: delete_file}]}", context)
    assert not await blocked(tmp_path, "{any: [{tool: nope}, {tool: other}]}", context)
    assert await blocked(tmp_path, "{all: [{tool: 'delete_*'}, {params: {arguments.path: {regex: '^/tmp'}}}]}", context)
    assert not await blocked(
        tmp_path, "{all: [{tool: 'delete_*'}, {not: {params: {arguments.path: {regex: '^/tmp'}}}}]}", context
    )
    assert await blocked(tmp_path, "{tool: delete_file, not: {direction: server_to_client}}", context)


async def test_annotations_come_from_the_last_tools_list(tmp_path: Path) -> None:
    rules = interceptor(
        tmp_path,
        """
rules:
  - id: destructive
    match: {direction: client_to_server, method: tools/call, annotations: {destructiveHint: true}}
    action: block
""",
    )
    # Before any tools/list the annotations are unknown: nothing matches.
    assert (await rules.on_message(ctx(call("wipe")))).action is Action.FORWARD
    listing = reply({"tools": [{"name": "wipe", "annotations": {"destructiveHint": True}}, {"name": "look"}]})
    await rules.on_message(ctx(listing, S2C, request_message=request("tools/list")))
    assert (await rules.on_message(ctx(call("wipe")))).action is Action.BLOCK
    assert (await rules.on_message(ctx(call("look")))).action is Action.FORWARD
    # Annotations are per upstream.
    assert (await rules.on_message(ctx(call("wipe"), upstream="other"))).action is Action.FORWARD


async def test_empty_match_matches_everything(tmp_path: Path) -> None:
    assert await blocked(tmp_path, "{}", ctx(notification("notifications/progress"), S2C))
