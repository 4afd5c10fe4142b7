"""Tasks per connection: N sessions, each on its own connection and with its own stdio child.

A client connection is served by one task (``Connection.serve``), its request in flight included; the proxy
adds no task per request, session, child or message. A connection handed to aiohttp (here only the census's
own GET) is served by ``RequestHandler.start`` and one more task per request, ``RequestHandler._handle_request``.
"""

from __future__ import annotations

import asyncio
import sys

import aiohttp

from tests.support import REPO, until

SESSIONS = 60
SLACK = 10
HOLDER = REPO / "tests" / "servers" / "holder.py"
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


async def census(base: str) -> dict[str, int]:
    async with aiohttp.ClientSession() as client, client.get(f"{base}/readyz") as response:
        return (await response.json())["tasks"]  # type: ignore[no-any-return]


def others(tasks: dict[str, int]) -> int:
    """Tasks that are not a connection's own."""
    connections = tasks.get("Connection.serve", 0) + tasks.get("RequestHandler.start", 0)
    return tasks["total"] - connections - tasks.get("RequestHandler._handle_request", 0)


class RawSession:
    """A client session on a connection of its own."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
        self.headers = dict(HEADERS)

    async def post(self, body: dict[str, object]) -> aiohttp.ClientResponse:
        response = await self.client.post(self.url, json=body, headers=self.headers)
        await response.read()
        return response

    async def initialize(self) -> None:
        init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "n", "version": "1"}}
        response = await self.post({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init})
        self.headers["Mcp-Session-Id"] = response.headers["Mcp-Session-Id"]
        await self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})


async def test_live_tasks_grow_by_one_per_connection(start_proxy, tmp_path) -> None:  # type: ignore[no-untyped-def]
    record = tmp_path / "received.jsonl"
    proxy = await start_proxy("--upstream", f"env RECORD={record} {sys.executable} {HOLDER}")
    before = await census(proxy.base)
    sessions = [RawSession(proxy.url) for _ in range(SESSIONS)]
    try:
        await asyncio.gather(*(session.initialize() for session in sessions))
        idle = await census(proxy.base)
        assert idle["total"] - before["total"] <= SESSIONS + SLACK, idle
        assert idle["Connection.serve"] >= SESSIONS
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "hold", "arguments": {}}}
        held = [asyncio.ensure_future(session.post(call)) for session in sessions]  # noqa: TID251
        await until(lambda: record.read_text().count('"hold"') == SESSIONS, "every call to reach its server")
        during = await census(proxy.base)
        assert during["Connection.serve"] <= SESSIONS + SLACK, during
        # The census's own GET is the only request with a task of its own.
        assert during.get("RequestHandler._handle_request", 0) <= 1, during
        assert others(during) - others(before) <= SLACK, during
        releaser = RawSession(proxy.url)
        for session in sessions:
            releaser.headers["Mcp-Session-Id"] = session.headers["Mcp-Session-Id"]
            await releaser.post({"jsonrpc": "2.0", "method": "notifications/release"})
        await releaser.client.close()
        answers = await asyncio.gather(*held)
        assert all(answer.status == 200 for answer in answers)
    finally:
        await asyncio.gather(*(session.client.close() for session in sessions))
