"""A raw client for the fault tests: it records every message the proxy sends, JSON or SSE, as it arrives."""

from __future__ import annotations

import sys
from typing import Any

import aiohttp
import orjson

from shadowproxy.core.sse import SseParser
from tests.support import REPO, ProxyProcess

ROGUE = REPO / "tests" / "faults" / "rogue.py"
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def rogue(record: object = None) -> str:
    """The upstream command line for the rogue server, recording what it receives when ``record`` is a path."""
    prefix = f"env RECORD={record} " if record is not None else ""
    return f"{prefix}{sys.executable} {ROGUE}"


class RawClient:
    """One MCP session over plain HTTP; ``messages`` is everything the proxy sent for the last request."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http = http
        self.url = url
        self.headers = dict(HEADERS)
        self.ids = 100

    async def initialize(self) -> RawClient:
        params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}
        body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}
        async with self.http.post(self.url, json=body, headers=self.headers) as response:
            assert response.status == 200, await response.text()
            self.headers["Mcp-Session-Id"] = response.headers["Mcp-Session-Id"]
        await self.notify("notifications/initialized")
        return self

    @property
    def session_id(self) -> str:
        return self.headers["Mcp-Session-Id"]

    async def notify(self, method: str) -> None:
        body = {"jsonrpc": "2.0", "method": method}
        async with self.http.post(self.url, json=body, headers=self.headers) as response:
            assert response.status == 202

    async def request(self, method: str, params: dict[str, Any] | None = None) -> tuple[int, list[dict[str, Any]]]:
        """Send a request; return the HTTP status and every message that came back, the reply last."""
        self.ids += 1
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": self.ids, "method": method}
        if params is not None:
            body["params"] = params
        async with self.http.post(self.url, json=body, headers=self.headers) as response:
            if response.content_type == "text/event-stream":
                parser = SseParser()
                found: list[dict[str, Any]] = []
                async for chunk in response.content.iter_any():
                    found.extend(orjson.loads(event.data) for event in parser.feed(chunk) if event.data)
                return response.status, found
            raw = await response.read()
            return response.status, [orjson.loads(raw)] if raw else []

    async def call(self, tool: str, **arguments: Any) -> tuple[int, list[dict[str, Any]]]:
        return await self.request("tools/call", {"name": tool, "arguments": arguments})


def text_of(reply: dict[str, Any]) -> str:
    return reply["result"]["content"][0]["text"]  # type: ignore[no-any-return]


async def readyz(proxy: ProxyProcess) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{proxy.base}/readyz") as response:
        return await response.json()  # type: ignore[no-any-return]
