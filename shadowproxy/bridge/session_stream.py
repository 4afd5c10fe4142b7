"""The GET stream of a pooled handshake session on an HTTP upstream, and the requests it speaks for.

A handshake-era server over Streamable HTTP may send what it asks the client during a call (sampling,
elicitation, roots) on the session's GET stream rather than on the call's own response stream: the SDK's server
does. Over stdio the child's channel ties such a request to the call in flight; here the bridge does the same for
its pooled sessions: a server request heard on the GET stream goes to the newest request in flight on that
session that may be asked something (``tools/call``, ``prompts/get``, ``resources/read``), and reaches the
client through it as an ``InputRequiredResult``. A pooled session on a stdio upstream has no GET stream and pays
nothing of this.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from shadowproxy.core.errors import JsonRpcError
from shadowproxy.core.jsonrpc import Message
from shadowproxy.core.tasks import spawn
from shadowproxy.upstreams.base import Exchange, Wrapped


class Claimed(Wrapped):
    """An upstream request's exchange, joined by the server requests its session's GET stream attributes to it."""

    def __init__(self, inner: Exchange, release: Callable[[Claimed], None]) -> None:
        super().__init__(inner)
        self.release = release
        self.heard: asyncio.Queue[Message] = asyncio.Queue()
        # The read of the response stream under way, kept across calls: cancelling it could lose a message.
        self.reading: asyncio.Task[Message | Exception] | None = None

    async def next(self) -> Message:
        if not self.heard.empty():
            return self.heard.get_nowait()
        if self.reading is None:
            self.reading = spawn(_read(self.inner), name="bridge-read")
        getting = spawn(self.heard.get(), name="bridge-heard")
        await asyncio.wait((self.reading, getting), return_when=asyncio.FIRST_COMPLETED)
        if getting.done():
            return getting.result()
        getting.cancel()
        reading, self.reading = self.reading, None
        result = reading.result()
        if isinstance(result, Exception):
            raise result
        if result.is_reply:
            self.release(self)
        return result

    async def close(self, *, cancel: bool = False) -> None:
        self.release(self)
        if self.reading is not None:
            self.reading.cancel()
            self.reading = None
        await self.inner.close(cancel=cancel)


async def _read(inner: Exchange) -> Message | Exception:
    """One message of ``inner``, or what it raised: handed to the reader, not logged as a failed task."""
    try:
        return await inner.next()
    except Exception as exc:
        return exc


async def pump(stream: Exchange, heard: Callable[[Message], None]) -> None:
    """A pooled session's GET stream, each message to ``heard``, until it ends."""
    try:
        while True:
            heard(await stream.next())
    except JsonRpcError:
        pass  # the stream ended (the session closed, or the server let it go): requests still work without it
    finally:
        with contextlib.suppress(JsonRpcError):
            await stream.close(cancel=True)
