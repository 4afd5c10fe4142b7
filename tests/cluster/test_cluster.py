"""Three instances behind one Redis and a round-robin balancer act as one proxy (issue 7)."""

from __future__ import annotations

import asyncio
import shlex
import signal
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis
from mcp import Client

from tests.cluster.balancer import Balancer
from tests.cluster.conftest import notifier_command
from tests.redis_server import RedisServer
from tests.support import HttpServerProcess, ProxyProcess, sdk_server_command, until

HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
INIT = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}}


def text_of(result) -> str:  # type: ignore[no-untyped-def]
    return result.content[0].text  # type: ignore[no-any-return]


@pytest.fixture
async def balancer() -> AsyncIterator[list[Balancer]]:
    made: list[Balancer] = []
    yield made
    for each in made:
        await each.stop()


async def balance(made: list[Balancer], instances: list[ProxyProcess]) -> Balancer:
    lb = await Balancer([proxy.base for proxy in instances]).start()
    made.append(lb)
    return lb


async def post(http: aiohttp.ClientSession, url: str, body: dict, session: str | None = None) -> tuple[int, dict]:  # type: ignore[type-arg]
    headers = dict(HEADERS, **({"Mcp-Session-Id": session} if session else {}))
    async with http.post(url, data=orjson.dumps(body), headers=headers) as response:
        raw = await response.read()
        if response.content_type == "text/event-stream":
            raw = [line[6:] for line in raw.splitlines() if line.startswith(b"data: ") and line[6:]][-1]
        return response.status, (orjson.loads(raw) if raw else {}) | {
            "_session": response.headers.get("Mcp-Session-Id")
        }


async def first_event(stream: aiohttp.ClientResponse) -> dict:  # type: ignore[type-arg]
    """The first message event on an SSE stream (priming events carry no data)."""
    async with asyncio.timeout(10):
        async for line in stream.content:
            if line.startswith(b"data: ") and len(line) > 8:
                return orjson.loads(line[6:])  # type: ignore[no-any-return]
    raise AssertionError("the stream ended without a message")


async def open_session(http: aiohttp.ClientSession, url: str) -> str:
    status, reply = await post(http, url, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT})
    assert status == 200, reply
    session = reply["_session"]
    status, _ = await post(http, url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
    assert status == 202
    return session


async def stored(server: RedisServer, session: str) -> bool:
    """Whether the session (``*``: the only one) is in Redis, active."""
    store = aioredis.Redis.from_url(server.url)
    try:
        keys = [key async for key in store.scan_iter(f"shadowproxy:session:{session}")]
        return len(keys) == 1 and await store.hget(keys[0], "state") == b"active"
    finally:
        await store.aclose()


def call(request_id: int, tool: str) -> dict:  # type: ignore[type-arg]
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": tool, "arguments": {}}}


@pytest.mark.parametrize("upstream_kind", ["stdio", "http"])
async def test_a_session_rotates_over_three_instances(  # type: ignore[no-untyped-def]
    start_instances, balancer, http_server: HttpServerProcess, upstream_kind: str
) -> None:
    upstream = shlex.join(sdk_server_command()) if upstream_kind == "stdio" else http_server.url
    instances = await start_instances(upstream)
    lb = await balance(balancer, instances)
    async with Client(lb.url, mode="legacy") as client:
        pids = {text_of(await client.call_tool("pid", {})) for _ in range(6)}
        for index in range(3):
            assert text_of(await client.call_tool("echo", {"text": f"hop {index}"})) == f"hop {index}"
    assert {index for method, index in lb.served if method == "POST"} == {0, 1, 2}
    # One upstream session served everything: for stdio, one child at the owner, reached by forwarding.
    assert len(pids) == 1
    if upstream_kind == "stdio":
        logs = "".join(proxy.log() for proxy in instances[1:])
        assert "its upstream at instance a" in logs
        assert "took over" not in logs


async def test_notifications_reach_a_get_stream_held_on_another_instance(start_instances) -> None:  # type: ignore[no-untyped-def]
    """The child lives at a; the client's GET stream is held by c; the call that causes the notification goes to b."""
    a, b, c = await start_instances(notifier_command())
    async with aiohttp.ClientSession() as http:
        session = await open_session(http, a.url)
        headers = {"Accept": "text/event-stream", "Mcp-Session-Id": session}
        async with http.get(c.url, headers=headers) as stream:
            assert stream.status == 200
            status, reply = await post(http, b.url, call(2, "later"), session)
            assert status == 200 and reply["result"]["content"][0]["text"] == "soon"
            event = await first_event(stream)
    assert event == {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}


async def test_exactly_one_instance_takes_over_when_the_owner_is_killed(  # type: ignore[no-untyped-def]
    start_instances, redis_server: RedisServer
) -> None:
    a, b, c = await start_instances(notifier_command())
    async with aiohttp.ClientSession() as http:
        session = await open_session(http, a.url)
        _, first = await post(http, a.url, call(2, "pid"), session)
        old_pid = first["result"]["content"][0]["text"]
        # A session lives through its owner's loss once the persistence worker has written it.
        await until(lambda: stored(redis_server, session), "the session to reach Redis")
        a.signal(signal.SIGKILL)
        await a.wait()
        # Both survivors race for the session with the first request each gets after the loss.
        (status_b, at_b), (status_c, at_c) = await asyncio.gather(
            post(http, b.url, call(3, "pid"), session), post(http, c.url, call(4, "pid"), session)
        )
        assert status_b == status_c == 200, (at_b, at_c)
        pids = {at_b["result"]["content"][0]["text"], at_c["result"]["content"][0]["text"]}
        # One new child, started by the winner; the loser forwards to it.
        assert len(pids) == 1 and old_pid not in pids
        winners = [proxy for proxy in (b, c) if "took over session" in proxy.log()]
        assert len(winners) == 1
        loser, name = (c, "b") if winners[0] is b else (b, "c")
        assert f"its upstream at instance {name}" in loser.log()
    store = aioredis.Redis.from_url(redis_server.url)
    try:
        owner = await store.get(f"shadowproxy:owner:{session}")
    finally:
        await store.aclose()
    assert owner == (b"b" if winners[0] is b else b"c")


async def test_a_killed_instance_costs_its_clients_nothing_but_a_new_child(  # type: ignore[no-untyped-def]
    start_instances, balancer, redis_server: RedisServer
) -> None:
    """SIGKILL the owner mid-session: the SDK client's next calls through the balancer all succeed."""
    instances = await start_instances(shlex.join(sdk_server_command()))
    lb = await balance(balancer, instances)
    lb.route = lambda request: 0 if request.method == "POST" and not lb.served else None
    async with Client(lb.url, mode="legacy") as client:
        assert text_of(await client.call_tool("echo", {"text": "before"})) == "before"
        await until(lambda: stored(redis_server, "*"), "the session to reach Redis")
        instances[0].signal(signal.SIGKILL)
        await instances[0].wait()
        lb.backends = lb.backends[1:]
        lb.route = lambda request: len(lb.served) % 2
        for index in range(4):
            assert text_of(await client.call_tool("echo", {"text": f"after {index}"})) == f"after {index}"
    assert sum("took over session" in proxy.log() for proxy in instances[1:]) == 1


async def test_rate_limit_counts_across_instances(  # type: ignore[no-untyped-def]
    start_instances, balancer, redis_server: RedisServer, tmp_path
) -> None:
    policy = tmp_path / "policy.yaml"
    rule = "{id: few, match: {tool: pid, direction: client_to_server}, action: {rate: {limit: 3, per: 3600}}}"
    policy.write_text(f"rules:\n  - {rule}\n")
    instances = await start_instances(notifier_command(), extra=f"rules: [{policy}]\n")
    lb = await balance(balancer, instances)
    store = aioredis.Redis.from_url(redis_server.url)

    async def counted() -> int:
        keys = [key async for key in store.scan_iter("shadowproxy:rate:*")]
        return sum(int(value) for value in await store.mget(keys)) if keys else 0

    try:
        async with aiohttp.ClientSession() as http:
            session = await open_session(http, lb.url)
            outcomes = []
            for request_id in range(10, 16):
                _, reply = await post(http, lb.url, call(request_id, "pid"), session)
                outcomes.append(reply.get("error", {}).get("code", "ok"))
                if "error" not in reply:
                    allowed = outcomes.count("ok")
                    # The hit is shared once Redis holds it (the same script tells every instance).
                    await until(lambda allowed=allowed: _equals(counted(), allowed), "the hit to be counted")
    finally:
        await store.aclose()
    # Six calls over three instances, each of which alone would allow three.
    assert outcomes == ["ok", "ok", "ok", -32010, -32010, -32010]
    assert {index for method, index in lb.served if method == "POST"} == {0, 1, 2}


async def _equals(count, expected: int) -> bool:  # type: ignore[no-untyped-def]
    return await count == expected


async def test_a_new_session_is_found_before_it_reaches_the_store(  # type: ignore[no-untyped-def]
    start_instances, redis_server: RedisServer
) -> None:
    """The store is written in the background; the next request may land elsewhere first: the others are asked."""
    a, b, _ = await start_instances(notifier_command(), extra="flush_interval: 60\n")
    async with aiohttp.ClientSession() as http:
        session = await open_session(http, a.url)
        assert not await stored(redis_server, session)
        status, reply = await post(http, b.url, call(2, "pid"), session)
        assert status == 200 and reply["result"]["content"][0]["text"].isdigit()
        status, reply = await post(http, b.url, call(3, "pid"), "not-a-session")
        assert status == 404 and reply["error"]["code"] == -32003


async def test_a_session_ended_at_one_instance_is_over_at_all(start_instances) -> None:  # type: ignore[no-untyped-def]
    a, b, c = await start_instances(notifier_command())
    async with aiohttp.ClientSession() as http:
        session = await open_session(http, a.url)
        assert (await post(http, c.url, call(2, "pid"), session))[0] == 200
        async with http.delete(b.url, headers={"Mcp-Session-Id": session}) as response:
            assert response.status == 204
        for proxy in (a, b, c):

            async def gone(proxy: ProxyProcess = proxy) -> bool:
                return (await post(http, proxy.url, call(3, "pid"), session))[0] == 404

            await until(gone, f"the session to be over at {proxy.url}")
    assert "closing the upstream channel" not in a.log() + b.log() + c.log()


async def test_a_get_stream_follows_its_session_to_a_new_owner(  # type: ignore[no-untyped-def]
    start_instances, redis_server: RedisServer
) -> None:
    """The stream is held by b; a (the owner) is killed; c takes over; c's child's notifications reach b."""
    a, b, c = await start_instances(notifier_command())
    async with aiohttp.ClientSession() as http:
        session = await open_session(http, a.url)
        await until(lambda: stored(redis_server, session), "the session to reach Redis")
        async with http.get(b.url, headers={"Accept": "text/event-stream", "Mcp-Session-Id": session}) as stream:
            assert stream.status == 200
            a.signal(signal.SIGKILL)
            await a.wait()
            status, reply = await post(http, c.url, call(2, "later"), session)
            assert status == 200 and reply["result"]["content"][0]["text"] == "soon", reply
            assert "took over session" in c.log()
            event = await first_event(stream)
    assert event == {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}
