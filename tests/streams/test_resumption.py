"""The proxy's own event ids for a stdio upstream: priming, polling, Last-Event-ID after a cut and a restart.

A raw aiohttp client speaks Streamable HTTP to the proxy so that the test can
cut a stream at a chosen event; the official SDK client shows that a real
client resumes a polled stream by itself.
"""

from __future__ import annotations

import asyncio
import shlex
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from mcp import Client

from shadowproxy.core.sse import SseEvent, SseParser
from tests.support import child_env, free_port, sdk_server_command, until

VERSION = "2025-11-25"
LIMIT = 30.0
"""Seconds a stream read may take before the test fails instead of hanging (a bound, not a timing)."""
ACCEPT = "application/json, text/event-stream"


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sessions.db'}"
    return request.getfixturevalue("redis_url")  # type: ignore[no-any-return]


class RawClient:
    """A Streamable HTTP client with its hands on every SSE event."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http = http
        self.url = url
        self.session_id = ""

    def headers(self, **extra: str) -> dict[str, str]:
        headers = {"Accept": ACCEPT, "Content-Type": "application/json", "MCP-Protocol-Version": VERSION}
        if self.session_id:
            headers["Mcp-Session-Id"] = self.session_id
        return {**headers, **extra}

    async def initialize(self, version: str = VERSION) -> None:
        params = {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}
        body = orjson.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params})
        headers = {"Accept": ACCEPT, "Content-Type": "application/json"}
        async with self.http.post(self.url, data=body, headers=headers) as response:
            assert response.status == 200, await response.text()
            self.session_id = response.headers["Mcp-Session-Id"]
            await response.read()
        note = b'{"jsonrpc":"2.0","method":"notifications/initialized"}'
        async with self.http.post(self.url, data=note, headers=self.headers()) as response:
            assert response.status == 202

    def call(self, request_id: int, tool: str, arguments: dict[str, object]) -> bytes:
        params = {"name": tool, "arguments": arguments, "_meta": {"progressToken": request_id}}
        return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params})


async def read_events(response: aiohttp.ClientResponse, *, stop_after: int | None = None) -> list[SseEvent]:
    """The events of an SSE response until it ends (or until ``stop_after`` events, leaving it open)."""
    parser = SseParser()
    events: list[SseEvent] = []
    async with asyncio.timeout(LIMIT):
        async for chunk in response.content.iter_any():
            events.extend(parser.feed(chunk))
            if stop_after is not None and len(events) >= stop_after:
                return events
    return events


def messages(events: list[SseEvent]) -> list[dict[str, object]]:
    return [orjson.loads(event.data) for event in events if event.data]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_post_stream_opens_with_a_priming_event_and_every_event_has_an_id(start_proxy, http) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_proxy("--upstream", shlex.join(sdk_server_command()))
    client = RawClient(http, proxy.url)
    await client.initialize()
    async with http.post(proxy.url, data=client.call(1, "progress", {"steps": 2}), headers=client.headers()) as reply:
        assert reply.status == 200
        assert reply.content_type == "text/event-stream"
        events = await read_events(reply)
    priming, *rest = events
    assert priming.data == b"" and priming.id and priming.retry == 1000
    assert all(event.id for event in rest)
    assert len({event.id for event in events}) == len(events)
    assert messages(rest)[-1]["result"]["content"][0]["text"] == "done 2"  # type: ignore[index]


async def test_older_sessions_get_no_priming_event(start_proxy, http) -> None:  # type: ignore[no-untyped-def]
    """A 2025-06-18 client cannot parse an event without data, so it gets none (as from the SDK's own server)."""
    proxy = await start_proxy("--upstream", shlex.join(sdk_server_command()))
    client = RawClient(http, proxy.url)
    await client.initialize("2025-06-18")
    async with http.post(proxy.url, data=client.call(1, "echo", {"text": "hi"}), headers=client.headers()) as reply:
        if reply.content_type == "application/json":
            answer = await reply.json()
        else:
            # An answer slower than stream_after (a loaded machine) comes as a stream: one with no priming event.
            events = await read_events(reply)
            assert all(event.data for event in events), events
            answer = messages(events)[-1]
    assert answer["result"]["content"][0]["text"] == "hi"  # type: ignore[index]


async def test_a_cut_post_stream_resumes_from_the_event_log_exactly_once(start_proxy, http, store: str) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_proxy("--upstream", shlex.join(sdk_server_command()), "--store", store)
    client = RawClient(http, proxy.url)
    await client.initialize()
    body = client.call(7, "progress", {"steps": 6, "pause": 0.05})
    async with http.post(proxy.url, data=body, headers=client.headers()) as reply:
        first = await read_events(reply, stop_after=2)
        reply.connection.transport.abort()  # type: ignore[union-attr]
    last_seen = first[-1].id
    assert last_seen
    headers = client.headers(**{"Last-Event-ID": last_seen})
    async with http.get(proxy.url, headers=headers) as resumed:
        assert resumed.status == 200
        rest = await read_events(resumed)
    got = messages(first) + messages(rest)
    progress = [m["params"]["progress"] for m in got if m.get("method") == "notifications/progress"]  # type: ignore[index]
    assert progress == [1, 2, 3, 4, 5, 6]
    logs = [m["params"]["data"] for m in got if m.get("method") == "notifications/message"]  # type: ignore[index]
    assert logs == [f"log {step}" for step in range(1, 7)]
    assert [m["result"]["content"][0]["text"] for m in got if "result" in m] == ["done 6"]  # type: ignore[index]
    assert len({event.id for event in first + rest if event.data}) == len(got)


async def test_polling_closes_a_quiet_stream_and_the_sdk_client_resumes_it(start_proxy, http) -> None:  # type: ignore[no-untyped-def]
    env = child_env(SHADOWPROXY_POLL_AFTER="0.2", SHADOWPROXY_SSE_RETRY="0.05")
    proxy = await start_proxy("--upstream", shlex.join(sdk_server_command()), env=env)
    client = RawClient(http, proxy.url)
    await client.initialize()
    async with http.post(proxy.url, data=client.call(3, "slow", {"seconds": 1}), headers=client.headers()) as reply:
        events = await read_events(reply)
    assert [event.data for event in events] == [b""], "the quiet stream ends after its priming event"
    assert events[0].retry == 50
    async with http.get(proxy.url, headers=client.headers(**{"Last-Event-ID": events[0].id or ""})) as resumed:
        rest = await read_events(resumed)
    for _ in range(50):
        if any("result" in message for message in messages(rest)):
            break
        # Polled again while the tool still sleeps: come back with the last id seen, as a client does.
        async with http.get(proxy.url, headers=client.headers(**{"Last-Event-ID": events[0].id or ""})) as resumed:
            rest = await read_events(resumed)
    assert messages(rest)[-1]["result"]["content"][0]["text"] == "slept 1.0"  # type: ignore[index]

    async with Client(proxy.url, mode="legacy") as sdk:
        result = await sdk.call_tool("slow", {"seconds": 0.6})
        assert result.content[0].text == "slept 0.6"  # type: ignore[union-attr]


async def test_the_get_stream_resumes_after_a_cut(start_proxy, http, store: str) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_proxy("--upstream", shlex.join(sdk_server_command()), "--store", store)
    client = RawClient(http, proxy.url)
    await client.initialize()
    async with http.get(proxy.url, headers=client.headers()) as listening:
        priming = (await read_events(listening, stop_after=1))[0]
        assert priming.id and priming.data == b""
        for request_id in (2, 3):
            # Each call sends a list-changed notification tied to no request: it goes on the GET stream.
            call = client.call(request_id, "changed", {})
            async with http.post(proxy.url, data=call, headers=client.headers()) as reply:
                await reply.read()
        first = (await read_events(listening, stop_after=1))[0]
        listening.connection.transport.abort()  # type: ignore[union-attr]
    assert first.id and orjson.loads(first.data)["method"] == "notifications/tools/list_changed"
    async with http.get(proxy.url, headers=client.headers(**{"Last-Event-ID": first.id})) as resumed:
        assert resumed.status == 200
        parser, seen = SseParser(), []
        async with asyncio.timeout(LIMIT):
            async for chunk in resumed.content.iter_any():
                seen.extend(parser.feed(chunk))
                if any(not event.data for event in seen) and any(event.data for event in seen):
                    break
    # The second notification exactly once: replayed from the log, or (if the cut came first) live.
    assert [orjson.loads(event.data)["method"] for event in seen if event.data] == ["notifications/tools/list_changed"]
    assert all(event.id and event.id != first.id for event in seen)


async def test_events_logged_before_a_restart_are_replayed_after_it(start_proxy, http, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = f"sqlite:///{tmp_path / 'sessions.db'}"
    args = ("--port", str(free_port()), "--upstream", shlex.join(sdk_server_command()), "--store", store)
    proxy = await start_proxy(*args)
    client = RawClient(http, proxy.url)
    await client.initialize()
    async with http.post(
        proxy.url, data=client.call(5, "progress", {"steps": 3, "pause": 0.05}), headers=client.headers()
    ) as reply:
        first = await read_events(reply, stop_after=1)
        reply.connection.transport.abort()  # type: ignore[union-attr]

    def logged() -> int:
        with sqlite3.connect(tmp_path / "sessions.db") as db:
            return int(db.execute("SELECT count(*) FROM events WHERE CAST(data AS TEXT) LIKE '%done 3%'").fetchone()[0])

    await until(logged, "the detached answer to reach the event log")
    await proxy.stop()
    proxy = await start_proxy(*args)
    async with http.get(proxy.url, headers=client.headers(**{"Last-Event-ID": first[0].id or ""})) as resumed:
        assert resumed.status == 200
        rest = messages(await read_events(resumed))
    assert [m["params"]["progress"] for m in rest if m.get("method") == "notifications/progress"] == [1, 2, 3]  # type: ignore[index]
    assert rest[-1]["result"]["content"][0]["text"] == "done 3"  # type: ignore[index]
