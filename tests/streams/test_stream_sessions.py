"""Stream sessions are recorded like any other, and cost a fixed number of tasks each."""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp
import orjson

from shadowproxy.core.record import SessionState
from shadowproxy.fronts.stream_session import StreamSession
from shadowproxy.proxy.proxy import Proxy
from tests.streams.test_backpressure import call, initialize
from tests.support import until

SESSIONS = 4


def tasks_by_name() -> Counter[str]:
    return Counter(task.get_name() for task in asyncio.all_tasks())


async def test_sessions_are_recorded_and_cost_one_writer_task_each(flood_proxy: tuple[Proxy, str]) -> None:
    live, address = flood_proxy
    async with aiohttp.ClientSession() as client:
        sockets = [await client.ws_connect(f"ws://{address}/ws", protocols=("mcp",)) for _ in range(SESSIONS)]
        for ws in sockets:
            await ws.send_str(initialize().decode())
            assert orjson.loads((await ws.receive(timeout=30)).data)["result"]["serverInfo"]["name"] == "flood"
            await ws.send_str(call(1, 3).decode())
            for _ in range(4):
                last = orjson.loads((await ws.receive(timeout=30)).data)
            assert last["id"] == 1
        sessions = list(live.sessions.live.values())
        assert len(sessions) == SESSIONS
        for session in sessions:
            assert isinstance(session, StreamSession) and session.transport == "websocket"
            assert session.record.state is SessionState.ACTIVE
            assert session.record.client_info == {"name": "raw", "version": "1"}
            assert session.record.protocol_version == "2025-06-18"
            assert session.record.messages == 7  # initialize and its reply, the call, three logs, the reply
        await until(lambda: tasks_by_name()["websocket-relay"] == 0, "the relays to finish")
        census = tasks_by_name()
        assert census["websocket-writer"] == SESSIONS
        assert census["websocket-listen"] == 0, "a stdio child needs no listener"
        for ws in sockets:
            await ws.close()
        await until(lambda: len(live.sessions) == 0, "the sessions to close with their sockets")
        assert sessions[0].record.state is SessionState.CLOSED
    await until(lambda: tasks_by_name()["websocket-writer"] == 0, "the writers to end")


async def test_an_answer_never_overtakes_what_was_queued_before_it(flood_proxy: tuple[Proxy, str]) -> None:
    """An answer with nothing queued ahead of it is written by its relay, the rest by the stream's writer. With
    calls pipelined, the server writes each call's notification and then its answer; the notifications are queued
    as they are read, so the answer to call n comes after at least n of them (it may come after more: unsolicited
    notifications read with it are queued before its relay runs)."""
    _, address = flood_proxy
    calls = 40
    async with aiohttp.ClientSession() as client, client.ws_connect(f"ws://{address}/ws", protocols=("mcp",)) as ws:
        await ws.send_str(initialize().decode())
        assert orjson.loads((await ws.receive(timeout=30)).data)["id"] == 0
        for request_id in range(1, calls + 1):
            await ws.send_str(call(request_id, 1).decode())
        received = [orjson.loads((await ws.receive(timeout=30)).data) for _ in range(2 * calls)]
    answers = [(position, message["id"]) for position, message in enumerate(received) if "id" in message]
    assert sorted(request_id for _, request_id in answers) == list(range(1, calls + 1))
    for position, request_id in answers:
        notifications_before = sum("method" in message for message in received[:position])
        assert notifications_before >= request_id, (request_id, [m.get("method", m.get("id")) for m in received])
