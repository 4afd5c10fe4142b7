"""The legacy HTTP+SSE transport (2024-11-05) through the proxy, on either side, with the SDK at both ends."""

from __future__ import annotations

import aiohttp
import pytest
from mcp import Client
from mcp.client.sse import sse_client

from shadowproxy.core.sse import SseParser
from tests.streams.conftest import ServerProcess
from tests.support import ProxyProcess, free_port, until
from tests.test_proxy_http import exercise_client, text_of
from tests.test_proxy_stdio import proxy_params

INIT = {"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}


async def live_sessions(proxy: ProxyProcess) -> int:
    async with aiohttp.ClientSession() as client, client.get(f"{proxy.base}/readyz") as response:
        return (await response.json())["sessions"]  # type: ignore[no-any-return]


async def test_sse_client_to_streamable_http_upstream(http_proxy: ProxyProcess) -> None:
    """Tools, progress, logs and a sampling request, all on the one event stream."""
    await exercise_client(sse_client(f"{http_proxy.base}/sse"), "legacy")


async def test_sse_client_to_stdio_upstream_at_the_mount_path(stdio_proxy: ProxyProcess) -> None:
    await exercise_client(sse_client(f"{stdio_proxy.url}/sse"), "legacy")


async def test_streamable_http_client_to_sse_upstream(start_proxy, sse_server: ServerProcess) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_proxy("--upstream", sse_server.url)
    await exercise_client(proxy.url, "legacy")


async def test_sse_client_to_sse_upstream_from_a_config_file(start_proxy, sse_server: ServerProcess, tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "sse.yaml"
    config.write_text(f"upstreams:\n  old:\n    url: {sse_server.url}\n    transport: sse\n")
    proxy = await start_proxy("--config", str(config))
    await exercise_client(sse_client(f"{proxy.base}/mcp/old/sse"), "legacy")


async def test_sessions_live_as_long_as_the_stream(stdio_proxy: ProxyProcess) -> None:
    async with Client(sse_client(f"{stdio_proxy.base}/sse"), mode="legacy") as client:
        assert text_of(await client.call_tool("echo", {"text": "hi"})) == "hi"
        assert await live_sessions(stdio_proxy) == 1

    async def gone() -> bool:
        return await live_sessions(stdio_proxy) == 0

    await until(gone, "the session to close with its stream")


async def open_stream(client: aiohttp.ClientSession, base: str) -> tuple[aiohttp.ClientResponse, str]:
    """A raw ``GET /sse``: the response and the endpoint it names."""
    response = await client.get(f"{base}/sse", headers={"Accept": "text/event-stream"})
    assert response.status == 200
    parser = SseParser()
    while True:
        events = parser.feed(await response.content.readany())
        if events:
            assert events[0].event == "endpoint"
            return response, events[0].data.decode()


async def test_bad_posts_get_precise_errors(stdio_proxy: ProxyProcess) -> None:
    base = stdio_proxy.base
    async with aiohttp.ClientSession() as client:
        response, endpoint = await open_stream(client, base)
        assert endpoint.startswith("/messages?session_id=")
        message = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT}
        async with client.post(f"{base}/messages", json=message) as answer:
            assert answer.status == 400
            assert "session_id" in (await answer.json())["error"]["message"]
        async with client.post(f"{base}/messages?session_id=nope", json=message) as answer:
            assert answer.status == 404
            assert (await answer.json())["error"]["code"] == -32003
        json_type = {"Content-Type": "application/json"}
        async with client.post(f"{base}{endpoint}", data=b"{not json", headers=json_type) as answer:
            assert answer.status == 400
            assert (await answer.json())["error"]["code"] == -32700
        async with client.post(f"{base}{endpoint}", data=b"{}", headers={"Content-Type": "text/plain"}) as answer:
            assert answer.status == 415
        async with client.post(f"{base}{endpoint}", json={"jsonrpc": "1.0", "id": 3, "method": "x"}) as answer:
            assert answer.status == 400
            body = await answer.json()
            assert body["error"]["code"] == -32600 and body["id"] == 3
        async with client.post(f"{base}{endpoint}", json=message) as answer:
            assert answer.status == 202
        parser = SseParser()
        replies = []
        while not replies:
            replies = [event for event in parser.feed(await response.content.readany()) if event.event == "message"]
        assert b'"serverInfo"' in replies[0].data
        response.close()
        async with client.get(f"{base}/sse", headers={"Accept": "application/json"}) as refused:
            assert refused.status == 406


async def test_a_dead_sse_upstream_fails_the_session(start_proxy, sse_server: ServerProcess) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_proxy("--upstream", sse_server.url)
    async with Client(proxy.url, mode="legacy") as client:
        assert text_of(await client.call_tool("echo", {"text": "before"})) == "before"
        await sse_server.stop()
        with pytest.raises(Exception, match="session"):
            await client.call_tool("echo", {"text": "after"})


async def test_an_unreachable_sse_upstream_is_a_502(start_proxy) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_proxy("--upstream", f"http://127.0.0.1:{free_port()}/sse")
    async with aiohttp.ClientSession() as client, client.get(f"{proxy.base}/sse") as response:
        assert response.status == 502
        assert "unreachable" in (await response.json())["error"]["message"]


async def test_stdio_client_to_sse_upstream(sse_server: ServerProcess) -> None:
    """``shadowproxy stdio`` bridged to a legacy SSE server."""
    await exercise_client(proxy_params("--upstream", sse_server.url), "legacy")
