"""Bad input at the proxy's HTTP side: each gets a precise status and JSON-RPC error, and the proxy serves on."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from mcp import Client

from tests.support import ProxyProcess

ACCEPT = "application/json, text/event-stream"
HEADERS = {"Content-Type": "application/json", "Accept": ACCEPT}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}


async def post(url: str, body: bytes | dict[str, Any] | list[Any], **headers: str) -> tuple[int, Any, Any]:
    data = body if isinstance(body, bytes) else __import__("orjson").dumps(body)
    async with aiohttp.ClientSession() as client, client.post(url, data=data, headers={**HEADERS, **headers}) as r:
        text = await r.read()
        payload = __import__("orjson").loads(text) if r.content_type == "application/json" and text else text
        return r.status, payload, r.headers


async def open_session(url: str, version: str = "2025-11-25") -> str:
    init = {**INIT, "params": {**INIT["params"], "protocolVersion": version}}
    status, _, headers = await post(url, init)
    assert status == 200
    session = headers["Mcp-Session-Id"]
    await post(url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, **{"Mcp-Session-Id": session})
    return session


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", -32700),
        (b"\xff\xfe\x00", -32700),
        (b'"just a string"', -32600),
        (b'{"jsonrpc": "1.0", "id": 1, "method": "ping"}', -32600),
        (b'{"jsonrpc": "2.0", "id": 1.5, "method": "ping"}', -32600),
        (b'{"jsonrpc": "2.0", "id": true, "method": "ping"}', -32600),
        (b'{"jsonrpc": "2.0", "id": 1, "method": 7}', -32600),
        (b'{"jsonrpc": "2.0", "id": 1}', -32600),
        (b"[]", -32600),
    ],
)
async def test_malformed_bodies(stdio_proxy: ProxyProcess, body: bytes, code: int) -> None:
    status, payload, _ = await post(stdio_proxy.url, body)
    assert status == 400
    assert payload["error"]["code"] == code
    assert payload["jsonrpc"] == "2.0"


async def test_session_rules(stdio_proxy: ProxyProcess) -> None:
    url = stdio_proxy.url
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    status, payload, _ = await post(url, ping)
    assert status == 400 and "Mcp-Session-Id" in payload["error"]["message"]
    status, payload, _ = await post(url, ping, **{"Mcp-Session-Id": "no-such-session"})
    assert status == 404 and payload["id"] == 2
    session = await open_session(url)
    status, payload, _ = await post(url, ping, **{"Mcp-Session-Id": session, "MCP-Protocol-Version": "1999-01-01"})
    assert status == 400 and "MCP-Protocol-Version" in payload["error"]["message"]
    status, payload, _ = await post(url, ping, **{"Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"})
    assert status == 200 and payload == {"jsonrpc": "2.0", "id": 2, "result": {}}
    # A second GET stream on the same session is refused; DELETE ends the session.
    async with aiohttp.ClientSession() as client:
        get_headers = {"Accept": "text/event-stream", "Mcp-Session-Id": session}
        async with client.get(url, headers=get_headers) as first:
            assert first.status == 200 and first.content_type == "text/event-stream"
            assert first.headers["X-Accel-Buffering"] == "no"
            async with client.get(url, headers=get_headers) as second:
                assert second.status == 409
        async with client.delete(url, headers={"Mcp-Session-Id": session}) as deleted:
            assert deleted.status == 204
        async with client.delete(url, headers={"Mcp-Session-Id": session}) as again:
            assert again.status == 404
        async with client.get(url, headers=get_headers) as gone:
            assert gone.status == 404
        async with client.put(url, data=b"{}", headers=HEADERS) as put:
            assert put.status == 405
    status, _, _ = await post(url, ping, **{"Mcp-Session-Id": session})
    assert status == 404


async def test_headers_and_sizes(stdio_proxy: ProxyProcess) -> None:
    url = stdio_proxy.url
    status, _, _ = await post(url, INIT, Accept="text/html")
    assert status == 406
    status, _, _ = await post(url, INIT, **{"Content-Type": "text/plain"})
    assert status == 415
    status, _, _ = await post(url, b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "pad": "' + b"x" * 5_000_000 + b'"}')
    assert status == 413
    status, _, _ = await post(url, INIT, Origin="https://evil.example")
    assert status == 403
    status, _, _ = await post(url, INIT, Host="evil.example:8765")
    assert status == 421
    status, _, headers = await post(url, INIT, Origin="http://localhost:3000")
    assert status == 200 and "Mcp-Session-Id" in headers
    # No redirect between /mcp and /mcp/.
    async with aiohttp.ClientSession() as client:
        async with client.post(url + "/", data=b"{}", headers=HEADERS, allow_redirects=False) as slash:
            assert slash.status == 404


async def test_allowed_origin_is_configurable(start_proxy, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.support import sdk_server_command

    proxy = await start_proxy(
        "--upstream", " ".join(sdk_server_command()), "--allowed-origin", "https://app.example", "--allowed-host", "*"
    )
    status, _, _ = await post(proxy.url, INIT, Origin="https://app.example", Host="proxy.internal")
    assert status == 200
    status, _, _ = await post(proxy.url, INIT, Origin="https://other.example")
    assert status == 403


async def test_batches_only_for_2025_03_26(stdio_proxy: ProxyProcess) -> None:
    url = stdio_proxy.url
    batch = [{"jsonrpc": "2.0", "id": 10, "method": "ping"}, {"jsonrpc": "2.0", "id": 11, "method": "tools/list"}]
    new = await open_session(url, "2025-06-18")
    status, payload, _ = await post(url, batch, **{"Mcp-Session-Id": new})
    assert status == 400 and "batches" in payload["error"]["message"]
    old = await open_session(url, "2025-03-26")
    status, payload, _ = await post(url, batch, **{"Mcp-Session-Id": old})
    assert status == 200
    assert [reply["id"] for reply in payload] == [10, 11]
    assert payload[1]["result"]["tools"]


async def test_bad_requests_do_not_disturb_other_sessions(stdio_proxy: ProxyProcess) -> None:
    async with Client(stdio_proxy.url, mode="legacy") as client:
        for body in (b"{", b"[]", b'{"jsonrpc":"2.0"}'):
            status, _, _ = await post(stdio_proxy.url, body)
            assert status == 400
        result = await client.call_tool("echo", {"text": "still here"})
        assert result.content[0].text == "still here"  # type: ignore[union-attr]


async def test_unknown_upstream_command_is_a_clear_error(start_proxy) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_proxy("--upstream", "/nonexistent/server --flag")
    status, payload, _ = await post(proxy.url, INIT)
    assert status == 502
    assert "cannot start upstream" in payload["error"]["message"]
    assert "cannot start upstream" in proxy.log()
