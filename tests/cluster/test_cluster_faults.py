"""Two instances through a Redis restart and a drain: each session keeps exactly one owner and one child."""

from __future__ import annotations

import asyncio
import signal
import time

import aiohttp
import redis.asyncio as aioredis

from shadowproxy.core.tasks import spawn
from tests.cluster.conftest import notifier_command
from tests.cluster.test_cluster import call, open_session, post, stored
from tests.redis_server import RedisServer
from tests.support import until

WATCH = 7.0
"""Seconds of calls after Redis is back: more than twice the instances' heartbeat_ttl (3 s)."""


async def pid_of(http: aiohttp.ClientSession, url: str, session: str, request_id: int) -> str | None:
    try:
        status, reply = await post(http, url, call(request_id, "pid"), session)
    except aiohttp.ClientError:
        return None
    if status != 200 or "result" not in reply:
        return None
    return str(reply["result"]["content"][0]["text"])


async def test_a_redis_restart_moves_no_session_while_its_owner_lives(  # type: ignore[no-untyped-def]
    start_instances, redis_server: RedisServer
) -> None:
    """Redis comes back empty: both owners say so again before anyone judges the other lost."""
    a, b = await start_instances(notifier_command(), count=2)
    async with aiohttp.ClientSession() as http:
        at_a, at_b = await open_session(http, a.url), await open_session(http, b.url)
        for session in (at_a, at_b):
            await until(lambda s=session: stored(redis_server, s), "the session to reach Redis")
        # Each session served at the other instance too, so each holds a forwarding copy of the other's.
        children = {at_a: await pid_of(http, b.url, at_a, 2), at_b: await pid_of(http, a.url, at_b, 2)}
        assert None not in children.values()
        redis_server.kill()
        redis_server.start()
        answers: dict[str, list[str | None]] = {at_a: [], at_b: []}
        request_id = 3
        deadline = time.monotonic() + WATCH
        while time.monotonic() < deadline:
            request_id += 1
            for session, url in ((at_a, b.url), (at_b, a.url), (at_a, a.url), (at_b, b.url)):
                answers[session].append(await pid_of(http, url, session, request_id))
            await asyncio.sleep(0.1)
    for session, pids in answers.items():
        # Calls may fail while Redis is away; every answer comes from the session's first child.
        assert {pid for pid in pids if pid is not None} == {children[session]}, (session[:8], pids)
        assert pids[-4:] == [children[session]] * 4, pids
    assert "took over" not in a.log() + b.log()
    store = aioredis.Redis.from_url(redis_server.url)
    try:
        owners = [await store.get(f"shadowproxy:owner:{session}") for session in (at_a, at_b)]
    finally:
        await store.aclose()
    assert owners == [b"a", b"b"]


async def test_an_instance_that_was_taken_over_lets_go(  # type: ignore[no-untyped-def]
    start_instances, redis_server: RedisServer
) -> None:
    """As if a stalled past its heartbeat and b took its session: a forwards to b from then on, one child left."""
    a, b = await start_instances(notifier_command(), count=2)
    async with aiohttp.ClientSession() as http:
        session = await open_session(http, a.url)
        await until(lambda: stored(redis_server, session), "the session to reach Redis")
        first = await pid_of(http, a.url, session, 2)
        store = aioredis.Redis.from_url(redis_server.url)
        try:
            await store.set(f"shadowproxy:owner:{session}", b"b")
            await store.delete("shadowproxy:instance:a")
        finally:
            await store.aclose()
        await until(lambda: "is owned by instance b now" in a.log(), "a to let go of the session")
        at_a, at_b = await pid_of(http, a.url, session, 3), await pid_of(http, b.url, session, 4)
    assert at_a == at_b and at_a not in (None, first)


async def test_a_stopping_owner_hands_its_sessions_over_without_a_failed_request(  # type: ignore[no-untyped-def]
    start_instances, redis_server: RedisServer
) -> None:
    """SIGTERM the owner while calls keep coming through the other instance: every call is answered."""
    a, b = await start_instances(notifier_command(), count=2, extra="shutdown_timeout: 5\n")
    async with aiohttp.ClientSession() as http:
        session = await open_session(http, b.url)
        await until(lambda: stored(redis_server, session), "the session to reach Redis")
        first = await pid_of(http, a.url, session, 2)
        answers: list[str | None] = []
        stopped = asyncio.Event()

        async def keep_calling(worker: int) -> None:
            request_id = 1000 * worker
            while not stopped.is_set() or len(answers) < 60:
                request_id += 1
                answers.append(await pid_of(http, a.url, session, request_id))

        callers = [spawn(keep_calling(worker), name=f"caller-{worker}") for worker in (1, 2, 3)]
        await until(lambda: len(answers) >= 30, "calls before the stop")
        b.signal(signal.SIGTERM)
        assert await b.wait() == 0
        stopped.set()
        await asyncio.gather(*callers)
    assert None not in answers, f"{answers.count(None)} of {len(answers)} calls failed"
    assert first in answers and answers[-1] != first
    assert "took over session" in a.log() and "handed its sessions over" in b.log()
