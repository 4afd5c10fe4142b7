"""Raw HTTP against the proxy, with or without credentials."""

from __future__ import annotations

import shlex
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.support import sdk_server_command

HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}
PING = {"jsonrpc": "2.0", "id": 2, "method": "ping"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def write_config(path: Path, auth: dict[str, Any], **extra: Any) -> Path:
    path.write_text(yaml.safe_dump({"auth": auth, **extra}))
    return path


async def start_with_auth(start_proxy, config: Path, *args: str):  # type: ignore[no-untyped-def]
    return await start_proxy("--config", str(config), "--upstream", shlex.join(sdk_server_command()), *args)


async def post(url: str, body: Any, **headers: str) -> tuple[int, Any, Any]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with aiohttp.ClientSession() as client, client.post(url, data=data, headers={**HEADERS, **headers}) as r:
        raw = await r.read()
        payload = orjson.loads(raw) if r.content_type == "application/json" and raw else raw
        return r.status, payload, r.headers


async def open_session(url: str, **headers: str) -> str:
    status, payload, reply_headers = await post(url, INIT, **headers)
    assert status == 200 and "Mcp-Session-Id" in reply_headers, (status, payload)
    session = reply_headers["Mcp-Session-Id"]
    status, _, _ = await post(
        url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, **{"Mcp-Session-Id": session, **headers}
    )
    assert status == 202
    return session


@asynccontextmanager
async def client(url: str, token: str, mode: str = "legacy") -> AsyncIterator[Client]:
    """The SDK client with a bearer token on every request."""
    async with (
        create_mcp_http_client(headers=bearer(token)) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as connected,  # type: ignore[arg-type]
    ):
        yield connected
