"""Micro benchmarks of the interceptor chain with 0 and 5 trivial interceptors, and of one message's hot path.

The trivial hooks never suspend, so a chain run is driven to completion with one
``send`` and no event loop: the figures are the chain's own cost.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.recorder import call_body
from shadowproxy.core.chain import Chain, Direction, MessageContext, Verdict, forward
from shadowproxy.core.jsonrpc import Message, decode

REQUEST = call_body(7)


class Pass:
    """An interceptor that looks at the method and forwards."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen = 0

    async def on_message(self, ctx: MessageContext) -> Verdict:
        if ctx.method == "tools/call":
            self.seen += 1
        return forward()


def finish(coro: Coroutine[Any, Any, Verdict]) -> Verdict:
    """Run a coroutine that never suspends, without an event loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise AssertionError("an interceptor suspended")


@pytest.mark.parametrize("size", [0, 5])
def test_chain_run(benchmark: BenchmarkFixture, size: int) -> None:
    hooks = [Pass(f"pass{i}") for i in range(size)]
    chain = Chain(hooks)
    message = decode(REQUEST)
    assert isinstance(message, Message)

    def run() -> Verdict:
        return finish(chain.run(MessageContext(message, Direction.CLIENT_TO_SERVER)))

    verdict = benchmark(run)
    assert verdict.is_forward and verdict.message is None
    assert all(hook.seen > 0 for hook in hooks)


@pytest.mark.parametrize("size", [0, 5])
def test_hot_path_decode_chain_encode(benchmark: BenchmarkFixture, size: int) -> None:
    chain = Chain([Pass(f"pass{i}") for i in range(size)])

    def one_message() -> bytes:
        message = decode(REQUEST)
        assert isinstance(message, Message)
        ctx = MessageContext(message, Direction.CLIENT_TO_SERVER)
        verdict = finish(chain.run(ctx))
        return (verdict.message or ctx.message).to_bytes()

    assert benchmark(one_message) is not None
    assert one_message() == REQUEST
