"""Micro benchmark of SSE event fan-out: one server notification to N idle GET streams.

Each stream is what :mod:`shadowproxy.fronts.http.get_stream` runs per GET stream, minus the socket: a task
waiting on its
session's :class:`~shadowproxy.core.inbox.Inbox`, which encodes what arrives as an SSE event. One round puts the
notification into every inbox and runs the loop until every stream has its event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from shadowproxy.core import sse
from shadowproxy.core.inbox import Inbox
from shadowproxy.core.jsonrpc import Message, notification

NOTIFICATION = notification("notifications/resources/updated", {"uri": "file:///project/README.md"})


class Streams:
    """N waiting streams on one event loop, and the events they have written."""

    def __init__(self, count: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.inboxes: list[Inbox[Message]] = [Inbox() for _ in range(count)]
        self.written: list[bytes] = []
        self.tasks = [self.loop.create_task(self.pump(inbox)) for inbox in self.inboxes]
        self.loop.run_until_complete(asyncio.sleep(0))

    async def pump(self, inbox: Inbox[Message]) -> None:
        while True:
            message = await inbox.next()
            self.written.append(sse.encode(message.to_bytes()))

    def fan_out(self, message: Message) -> int:
        self.written.clear()
        for inbox in self.inboxes:
            inbox.put(message)
        # Every put woke its stream before this sleep was scheduled: one turn of the loop runs them all.
        self.loop.run_until_complete(asyncio.sleep(0))
        return len(self.written)

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*self.tasks, return_exceptions=True))
        self.loop.close()


@pytest.fixture
def streams(request: pytest.FixtureRequest) -> Iterator[Streams]:
    made = Streams(request.param)
    yield made
    made.close()


@pytest.mark.parametrize("streams", [1, 100, 1000], indirect=True, ids=lambda count: f"{count}-streams")
def test_fan_out(benchmark: BenchmarkFixture, streams: Streams) -> None:
    delivered = benchmark(streams.fan_out, NOTIFICATION)
    assert delivered == len(streams.inboxes)
    assert streams.written[0].startswith(b"event: message\ndata: ") and b"resources/updated" in streams.written[0]
