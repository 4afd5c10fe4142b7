"""The relay's one timer per request: which wake-ups it claims, and which cancellations it leaves alone."""

from __future__ import annotations

import asyncio

import pytest

from shadowproxy.core.timer import RequestTimer


async def test_a_silent_wait_is_woken_and_the_task_goes_on() -> None:
    loop = asyncio.get_running_loop()
    timer = RequestTimer(loop.time() + 60, idle=0.01)
    timer.wait(0.01)
    with pytest.raises(asyncio.CancelledError):
        await loop.create_future()
    assert timer.expired()
    assert not timer.past_deadline()
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    # Claimed: the task goes on and can wait again.
    timer.wait(0.01)
    with pytest.raises(asyncio.CancelledError):
        await loop.create_future()
    assert timer.expired()
    timer.stop()


async def after(delay: float) -> None:
    """Resume once a loop timer set ``delay`` from now has run: every earlier timer has run by then."""
    later = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_later(delay, later.set_result, None)
    await later


async def test_outside_a_wait_the_silent_answer_limit_cancels_nothing() -> None:
    loop = asyncio.get_running_loop()
    timer = RequestTimer(loop.time() + 60, idle=0.001)
    # Not waiting when the idle limit passes: no cancellation, the deadline is armed instead.
    await after(0.005)
    assert not timer.fired
    assert not timer.past_deadline()
    timer.stop()


async def test_outside_a_wait_the_deadline_cancels() -> None:
    loop = asyncio.get_running_loop()
    timer = RequestTimer(loop.time() + 0.001, idle=60)
    with pytest.raises(asyncio.CancelledError):
        await loop.create_future()
    assert timer.expired()
    assert timer.past_deadline()


async def test_a_cancellation_from_elsewhere_is_not_claimed() -> None:
    loop = asyncio.get_running_loop()
    timer = RequestTimer(loop.time() + 60, idle=60)
    timer.wait(60)
    task = asyncio.current_task()
    assert task is not None
    loop.call_soon(task.cancel)
    with pytest.raises(asyncio.CancelledError):
        await loop.create_future()
    assert not timer.expired()
    assert task.uncancel() == 0
    timer.stop()


async def test_a_stopped_timer_never_fires() -> None:
    loop = asyncio.get_running_loop()
    timer = RequestTimer(loop.time() + 0.001, idle=0.001)
    timer.wait(0.001)
    timer.stop()
    timer.waiting = False
    await after(0.005)
    assert not timer.fired
