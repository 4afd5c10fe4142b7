"""The stateless child opens with ``server/discover``; a server that never answers it costs no one a wait."""

from __future__ import annotations

import asyncio
import sys

import pytest

from shadowproxy.config import UpstreamConfig
from shadowproxy.core.jsonrpc import Kind, Message
from shadowproxy.upstreams import stdio
from shadowproxy.upstreams.stdio import StdioUpstream

# Answers every request but server/discover, and says what came first, so the test sees the order it was sent in.
SILENT_ON_DISCOVER = """
import json, sys
first = None
for line in sys.stdin:
    message = json.loads(line)
    first = first or message["method"]
    if message["method"] != "server/discover" and "id" in message:
        print(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": {"first": first}}), flush=True)
"""


async def test_a_server_silent_on_discover_answers_the_next_request_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Were anyone to wait for the answer to server/discover, they would wait an hour.
    monkeypatch.setattr(stdio, "PRIME_TIMEOUT", 3600.0)
    upstream = StdioUpstream(UpstreamConfig(name="silent", command=(sys.executable, "-c", SILENT_ON_DISCOVER)))
    call = Message(Kind.REQUEST, {"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {}})

    async def first_request() -> Message:
        channel = await upstream.open(lambda message: None, shared=True)
        exchange = await channel.request(call, {})
        try:
            return await exchange.next()
        finally:
            await exchange.close()

    try:
        reply = await asyncio.wait_for(first_request(), 60)
        assert reply.id == 7 and reply.result == {"first": "server/discover"}
    finally:
        await upstream.close()
