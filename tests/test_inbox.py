"""The inbox: one reader at a time, but a reader that takes over from one being cancelled still wakes."""

from __future__ import annotations

import asyncio

from shadowproxy.core.inbox import Inbox


async def test_a_reader_that_takes_over_is_woken_by_the_next_item() -> None:
    inbox: Inbox[str] = Inbox()
    loop = asyncio.get_running_loop()
    old = loop.create_task(inbox.next())
    await asyncio.sleep(0)
    # As a resumed GET stream does: the new reader waits before the old one's cancellation has landed.
    new = loop.create_task(inbox.next())
    await asyncio.sleep(0)
    old.cancel()
    await asyncio.wait({old})
    inbox.put("after")
    done, _ = await asyncio.wait({new}, timeout=5)
    assert new in done and new.result() == "after"


async def test_items_put_before_the_reader_waits_are_not_waited_for() -> None:
    inbox: Inbox[int] = Inbox(bound=2)
    for item in (1, 2, 3):
        inbox.put(item)
    assert inbox.dropped == 1
    assert [await inbox.next(), await inbox.next()] == [2, 3]
