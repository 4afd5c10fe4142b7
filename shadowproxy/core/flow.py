"""Write flow control for an asyncio protocol: a writer waits while the transport's buffer is over its high mark.

The transport calls ``pause_writing`` and ``resume_writing``; :attr:`WriteFlow.paused` is the future a writer
awaits meanwhile (:meth:`WriteFlow.drain`), so a reader that does not read cannot grow our memory without bound.
"""

from __future__ import annotations

import asyncio


class WriteFlow(asyncio.BaseProtocol):
    """Mixed into a protocol: ``paused`` is set while the transport asks us to stop writing."""

    paused: asyncio.Future[None] | None = None

    def pause_writing(self) -> None:
        self.paused = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        paused = self.paused
        if paused is not None and not paused.done():
            paused.set_result(None)
        self.paused = None

    async def drain(self) -> None:
        """Return once the transport takes more (at once when it does now)."""
        if self.paused is not None:
            await self.paused
