"""The stdio front's own cost per request: a read of echo calls from the client, then a read of their answers
from the child, each handled in its pipe callback (the path of an empty chain).

The pipes are left out: the child and our stdout are stand-ins that count writes, so the figure is the Python
between a read and its writes (decoding, the chain check, counts, the request in flight, the batching). On the
development machine about 4.4 us per request at 16 a read and 6.2 us at one a read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.recorder import TEXT, call_body
from shadowproxy import config
from shadowproxy.fronts.stdio.child import StdioChildFront
from shadowproxy.fronts.stdio.front import SERVER, LineReader
from shadowproxy.proxy.proxy import Proxy
from shadowproxy.upstreams.child import ChildProcess

ANSWER = b'{"jsonrpc":"2.0","id":%d,"result":{"content":[{"type":"text","text":"%s"}],"isError":false}}'


class Pipe:
    """Stands in for the child's stdin and for our stdout: counts what is written."""

    alive = True
    paused = None

    def __init__(self) -> None:
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1


@pytest.fixture
def front() -> Iterator[tuple[StdioChildFront, ChildProcess]]:
    with asyncio.Runner() as runner:

        async def build() -> tuple[StdioChildFront, ChildProcess]:
            front = StdioChildFront(Proxy(config.load(None, upstream="unused")).mounts[0])
            child = ChildProcess("bench")  # reads what the "child" writes; needs a loop to be made
            child.sink = lambda messages: front.receive(SERVER, messages)
            return front, child

        built = runner.run(build())
        built[0].child = Pipe()  # type: ignore[assignment]
        built[0].out = Pipe()  # type: ignore[assignment]
        built[0].idle = True
        # As after a handshake-era client's first request: its era is known and nothing waits for the bridge.
        built[0].era_route.pending = False
        yield built


@pytest.mark.parametrize("per_read", [1, 16])
def test_stdio_front_request(
    benchmark: BenchmarkFixture, front: tuple[StdioChildFront, ChildProcess], per_read: int
) -> None:
    stdio, child = front
    reader = LineReader(stdio.receive, stdio.reject, lambda: None)
    requests = b"".join(call_body(index) + b"\n" for index in range(per_read))
    answers = b"".join(ANSWER % (index, TEXT.encode()) + b"\n" for index in range(per_read))

    def round_trip() -> None:
        reader.data_received(requests)
        child.pipe_data_received(1, answers)

    benchmark(round_trip)
    assert not stdio.inflight and not stdio.inbox, "every request was answered in the callbacks"
    assert stdio.session.record.messages >= 2 * per_read
