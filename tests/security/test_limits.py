"""Limits at the proxy's client side: nesting, sessions, requests and streams per session, slow and large input.

Each limit is set low in a config file, hit by a real client against a real proxy process, and must answer with
an error that names it and count ``shadowproxy_limit_hits_total``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from shadowproxy.core.limit_hits import LIMIT_EXCEEDED
from shadowproxy.core.sse import SseParser
from tests.ops.helpers import Samples, value
from tests.support import ProxyProcess, until

from .helpers import HEADERS, INIT, bearer, open_session
from .helpers import post as post_raw
from .keys import sha256

SERVER = Path(__file__).with_name("limits_server.py")
HITS = "shadowproxy_limit_hits_total"
ALICE, BOB = "alice-secret-token", "bob-secret-token"
TOKENS = {"tokens": [{"name": "alice", "sha256": sha256(ALICE)}, {"name": "bob", "sha256": sha256(BOB)}]}


async def scrape(base: str, headers: dict[str, str] | None = None) -> Samples:
    """Every sample on ``/metrics`` (which needs a token when auth is on)."""
    async with aiohttp.ClientSession() as http, http.get(f"{base}/metrics", headers=headers) as response:
        assert response.status == 200
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def write_config(tmp_path: Path, limits: dict[str, Any] | None = None, **extra: Any) -> Path:
    data: dict[str, Any] = {"upstreams": {"default": {"command": [sys.executable, str(SERVER)]}}, **extra}
    if limits is not None:
        data["limits"] = limits
    path = tmp_path / "shadowproxy.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


async def start(start_proxy, tmp_path: Path, limits: dict[str, Any] | None = None, **extra: Any) -> ProxyProcess:  # type: ignore[no-untyped-def]
    return await start_proxy("--config", str(write_config(tmp_path, limits, **extra)))  # type: ignore[no-any-return]


def call(request_id: int, tool: str, **arguments: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }


def nested(depth: int) -> bytes:
    """A tools/call whose message nests ``depth`` levels: the message, params, arguments, then lists."""
    lists = depth - 3
    return (
        b'{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"echo","arguments":{"text":"deep","x":%s}}}'
        % (b"[" * lists + b"]" * lists)
    )


async def post(url: str, body: Any, **headers: str) -> tuple[int, Any, Any]:
    """Like the security helpers' ``post``, but an event-stream answer gives its last message."""
    status, payload, reply_headers = await post_raw(url, body, **headers)
    if reply_headers.get("Content-Type") == "text/event-stream":
        events = SseParser().feed(payload)
        payload = orjson.loads([event.data for event in events if event.data][-1])
    return status, payload, reply_headers


def assert_limit(payload: dict[str, Any], limit: str, code: int = LIMIT_EXCEEDED) -> None:
    error = payload["error"]
    assert error["code"] == code, error
    assert error["data"] == {"limit": limit}
    assert f"limits.max_{limit}" in error["message"] or f"limits.{limit}" in error["message"]


async def test_an_upstream_answer_nested_too_deep_fails_its_request_at_once(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Not a wait for the request timeout: the refused answer's id fails its request, and the child serves on."""
    proxy = await start(start_proxy, tmp_path, {"max_json_depth": 16})
    session = {"Mcp-Session-Id": await open_session(proxy.url)}
    status, payload, _ = await post(proxy.url, call(5, "deep", depth=40), **session)
    assert status == 502, "the upstream's answer was bad, not the client's request"
    assert payload["id"] == 5 and payload["error"]["code"] == -32603, payload
    assert "nested deeper than 16 levels" in payload["error"]["message"]
    _, payload, _ = await post(proxy.url, call(6, "echo", text="still here"), **session)
    assert payload["result"]["content"][0]["text"] == "still here", payload


async def test_json_nested_too_deep_is_refused_naming_the_limit(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = await start(start_proxy, tmp_path, {"max_json_depth": 16})
    session = {"Mcp-Session-Id": await open_session(proxy.url)}
    status, payload, _ = await post(proxy.url, nested(16), **session)
    assert status == 200, payload
    assert payload["result"]["content"][0]["text"] == "deep", payload
    for depth in (17, 2000):  # orjson's own bound (1024) answers the same way
        status, payload, _ = await post(proxy.url, nested(depth), **session)
        assert status == 400
        assert payload["error"]["code"] == -32600
        assert "nested deeper than 16 levels (limits.max_json_depth)" in payload["error"]["message"]
    assert value(await scrape(proxy.base), HITS, limit="json_depth") == 2


async def test_json_nested_too_deep_on_a_websocket_is_answered_on_the_socket(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = await start(start_proxy, tmp_path, {"max_json_depth": 16})
    async with aiohttp.ClientSession() as http, http.ws_connect(proxy.base + "/ws", protocols=("mcp",)) as ws:
        await ws.send_str(nested(17).decode())
        reply = orjson.loads((await ws.receive(timeout=30)).data)
        assert reply["id"] == 9 and reply["error"]["code"] == -32600
    assert value(await scrape(proxy.base), HITS, limit="json_depth") == 1


async def test_sessions_are_bounded_per_principal_and_in_total(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    limits = {"max_sessions": 3, "max_sessions_per_principal": 2}
    proxy = await start(start_proxy, tmp_path, limits, auth=TOKENS)
    alice = [await open_session(proxy.url, **bearer(ALICE)) for _ in range(2)]
    status, payload, headers = await post(proxy.url, INIT, **bearer(ALICE))
    assert status == 429 and headers["Retry-After"] == "1"
    assert "Mcp-Session-Id" not in headers
    assert payload["id"] == 1
    assert_limit(payload, "sessions_per_principal")
    await open_session(proxy.url, **bearer(BOB))
    status, payload, _ = await post(proxy.url, INIT, **bearer(BOB))
    assert status == 503
    assert_limit(payload, "sessions")
    # The other transports start sessions too, and are refused before the upgrade or the stream.
    async with aiohttp.ClientSession(headers=bearer(BOB)) as http:
        async with http.get(proxy.base + "/sse", headers={"Accept": "text/event-stream"}) as response:
            assert response.status == 503
            assert_limit(await response.json(), "sessions")
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(proxy.base + "/ws", protocols=("mcp",))
        assert refused.value.status == 503
    # A session that ends makes room.
    async with aiohttp.ClientSession() as http:
        headers = {"Mcp-Session-Id": alice[0], **bearer(ALICE)}
        async with http.delete(proxy.url, headers=headers) as response:
            assert response.status == 204
    await open_session(proxy.url, **bearer(BOB))
    samples = await scrape(proxy.base, bearer(ALICE))
    assert value(samples, HITS, limit="sessions_per_principal") == 1
    assert value(samples, HITS, limit="sessions") == 3


async def test_requests_in_flight_per_session_are_bounded(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = await start(start_proxy, tmp_path, {"max_requests_per_session": 2})
    session = {"Mcp-Session-Id": await open_session(proxy.url)}
    other = {"Mcp-Session-Id": await open_session(proxy.url)}

    async def in_flight(count: int) -> None:
        async def reached() -> bool:
            async with aiohttp.ClientSession() as http, http.get(proxy.base + "/readyz") as response:
                return (await response.json())["in_flight"] == count  # type: ignore[no-any-return]

        await until(reached, f"{count} requests in flight")

    async with aiohttp.ClientSession() as hanging:
        calls = [
            asyncio.ensure_future(  # noqa: TID251
                hanging.post(proxy.url, data=orjson.dumps(call(n, "hang")), headers={**HEADERS, **session})
            )
            for n in (1, 2)
        ]
        await in_flight(2)
        status, payload, headers = await post(proxy.url, call(3, "echo", text="one too many"), **session)
        assert status == 429 and headers["Retry-After"] == "1"
        assert payload["id"] == 3
        assert_limit(payload, "requests_per_session")
        # Notifications are not requests, and other sessions have their own count.
        status, _, _ = await post(proxy.url, {"jsonrpc": "2.0", "method": "notifications/ping"}, **session)
        assert status == 202
        status, payload, _ = await post(proxy.url, call(4, "echo", text="other"), **other)
        assert status == 200 and payload["result"]["content"][0]["text"] == "other"
        for pending in calls:
            pending.cancel()
    await in_flight(0)
    status, payload, _ = await post(proxy.url, call(5, "echo", text="room again"), **session)
    assert status == 200 and payload["result"]["content"][0]["text"] == "room again"
    assert value(await scrape(proxy.base), HITS, limit="requests_per_session") == 1


async def test_stream_sessions_answer_excess_requests_on_their_stream(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = await start(start_proxy, tmp_path, {"max_requests_per_session": 1})
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(proxy.base + "/ws", protocols=("mcp",)) as ws:
            await ws.send_str(orjson.dumps(call(1, "hang")).decode())
            await ws.send_str(orjson.dumps(call(2, "echo", text="too many")).decode())
            reply = orjson.loads((await ws.receive(timeout=30)).data)
            assert reply["id"] == 2
            assert_limit(reply, "requests_per_session")
        async with http.get(proxy.base + "/sse", headers={"Accept": "text/event-stream"}) as stream:
            parser, events = SseParser(), []
            chunks = stream.content.iter_any()
            while not events:
                events = [event for event in parser.feed(await anext(chunks)) if event.event == "endpoint"]
            messages = proxy.base + events[0].data.decode()
            for request in (call(1, "hang"), call(2, "echo", text="too many")):
                async with http.post(messages, data=orjson.dumps(request), headers=HEADERS) as response:
                    assert response.status == 202
            replies: list[dict[str, Any]] = []
            while not replies:
                replies = [
                    orjson.loads(event.data)
                    for event in parser.feed(await anext(chunks))
                    if event.data and event.event in (None, "message")
                ]
            assert replies[0]["id"] == 2
            assert_limit(replies[0], "requests_per_session")
    assert value(await scrape(proxy.base), HITS, limit="requests_per_session") == 2


async def test_get_streams_per_session_are_bounded(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = await start(start_proxy, tmp_path, {"max_streams_per_session": 1})
    session = {"Mcp-Session-Id": await open_session(proxy.url), "Accept": "text/event-stream"}
    async with aiohttp.ClientSession() as http:
        async with http.get(proxy.url, headers=session) as first:
            assert first.status == 200
            async with http.get(proxy.url, headers=session) as second:
                assert second.status == 429
                assert_limit(await second.json(), "streams_per_session")

        async def reopened() -> bool:
            async with aiohttp.ClientSession() as fresh, fresh.get(proxy.url, headers=session) as again:
                return again.status == 200

        # The first stream's slot is given back when its handler ends, after the client left.
        await until(reopened, "a GET stream after the first one closed")


async def test_slow_headers_are_cut_at_the_idle_timeout(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = await start(start_proxy, tmp_path, {"idle_timeout": 1})
    host, port = proxy.base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")

    async def trickle() -> None:
        while True:
            writer.write(b"a")
            await asyncio.sleep(0.1)

    dripping = asyncio.ensure_future(trickle())  # noqa: TID251
    try:
        # The header never ends; the proxy closes the connection rather than wait for it forever.
        assert await asyncio.wait_for(reader.read(), 30) == b""
    finally:
        dripping.cancel()
        writer.close()


async def test_a_body_sent_too_slowly_gets_408_and_the_connection_closes(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = await start(start_proxy, tmp_path, {"body_timeout": 1})
    host, port = proxy.base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = (
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Accept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n"
    )
    writer.write(head.encode() + b'{"jsonrpc":')
    try:
        answer = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 408")
    error = orjson.loads(body)["error"]
    assert error["code"] == -32600 and "limits.body_timeout" in error["message"]
    assert value(await scrape(proxy.base), HITS, limit="body_timeout") == 1


async def test_oversized_headers_are_refused(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = await start(start_proxy, tmp_path, {"max_header_size": 1024})
    status, _, _ = await post(proxy.url, INIT, **{"X-Padding": "p" * 900})
    assert status == 200
    status, _, _ = await post(proxy.url, INIT, **{"X-Padding": "p" * 2000})
    assert status in (400, 431)
