"""Integers beyond 64 bits come out as they came, also when the proxy rewrites the message they are in."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import aiohttp
import orjson
import pytest

from shadowproxy.core.errors import JsonRpcError
from shadowproxy.core.jsonrpc import Message, decode
from tests.security.helpers import HEADERS, open_session
from tests.support import REPO

BIG = 1180591620717411303424
CALL = (
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x",'
    b'"arguments":{"n":1180591620717411303424,"low":-9223372036854775809,"f":1.5}}}'
)


def decoded(raw: bytes) -> Message:
    message = decode(raw)
    assert isinstance(message, Message)
    return message


def test_a_rewritten_copy_keeps_its_long_integers() -> None:
    original = decoded(CALL)
    params = copy.deepcopy(original.params)
    assert params is not None
    params["arguments"]["added"] = True
    rewritten = original.evolve(params=params).evolve(id=7)
    assert rewritten.to_bytes() == (
        b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x",'
        b'"arguments":{"n":1180591620717411303424,"low":-9223372036854775809,"f":1.5,"added":true}}}'
    )
    assert original.to_bytes() == CALL


def test_a_rewrite_that_lost_a_long_integer_is_refused() -> None:
    original = decoded(CALL)
    reparsed = orjson.loads(orjson.dumps(original.params))
    with pytest.raises(JsonRpcError, match="beyond 64 bits"):
        original.evolve(params=reparsed).to_bytes()


def test_a_long_integer_an_interceptor_puts_in_is_written_exactly() -> None:
    assert decoded(b'{"jsonrpc":"2.0","id":1,"method":"m"}').evolve(params={"n": BIG}).to_bytes() == (
        b'{"jsonrpc":"2.0","id":1,"method":"m","params":{"n":1180591620717411303424}}'
    )


async def test_rules_rewrite_both_ways_without_changing_a_number(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "rules:\n"
        "  - id: mark\n    match: {direction: client_to_server, tool: x}\n"
        "    action: {modify: {set: {params.arguments.marked: true}}}\n"
        "  - id: note\n    match: {direction: server_to_client}\n"
        "    action: {modify: {set: {result.noted: true}}}\n"
    )
    config = tmp_path / "sp.yaml"
    server = f"{sys.executable} {REPO / 'tests' / 'servers' / 'raw_echo.py'}"
    config.write_text(
        f"upstreams:\n  raw:\n    command: {server}\n"
        f"interceptors:\n  - name: rules\n    options: {{paths: [{policy}], watch: false}}\n"
    )
    proxy = await start_proxy("--config", str(config))
    session = {"Mcp-Session-Id": await open_session(proxy.url), "MCP-Protocol-Version": "2025-11-25"}
    headers = {**HEADERS, **session, "Accept": "application/json"}
    async with aiohttp.ClientSession() as client, client.post(proxy.url, data=CALL, headers=headers) as response:
        assert response.status == 200
        raw = await response.read()
    received = json.loads(raw)["result"]["content"][0]["text"]
    assert '"n":1180591620717411303424' in received and '"marked":true' in received
    assert '"low":-9223372036854775809' in received
    assert b'"noted":true' in raw and b'"n":1180591620717411303425' in raw
