"""A POST whose request is held for a decision (:mod:`shadowproxy.control`): its answer kept open meanwhile.

Every ``keepalive`` seconds the client that takes an event stream gets one (opened at the first tick) with a
keep-alive comment, and, when its request carried a ``progressToken``, a ``notifications/progress`` saying
what it waits for; a client that takes only JSON waits for its one reply. A held call its client's user is to
decide (``by: user``) has the proxy's ``elicitation/create`` on that stream, opened for it. The stream then
carries the answer: the upstream's, once the message is let go, or the proxy's refusal.
"""

from __future__ import annotations

from aiohttp import web

from shadowproxy.core import logs, sse
from shadowproxy.core.jsonrpc import Message
from shadowproxy.core.sse import SSE_HEADERS
from shadowproxy.fronts.http.fast_request import PlainRequest, event_stream
from shadowproxy.fronts.session_front import held_progress


class KeptOpen:
    """The client side of one held POST."""

    __slots__ = ("message", "request", "stream", "wants_sse")

    def __init__(self, request: web.Request | PlainRequest, message: Message, wants_sse: bool) -> None:
        self.request = request
        self.message = message
        self.wants_sse = wants_sse
        self.stream: web.StreamResponse | None = None

    async def opened(self) -> web.StreamResponse:
        stream = self.stream
        if stream is None:
            stream = self.stream = event_stream(self.request, SSE_HEADERS)
            logs.tag(stream.headers)
            await stream.prepare(self.request)  # type: ignore[arg-type]
        return stream

    async def ask(self, question: Message) -> bool:
        """The proxy's own request to the client, on this POST's stream (a client that takes only JSON cannot
        be asked)."""
        if not self.wants_sse:
            return False
        try:
            await (await self.opened()).write(sse.encode(question.to_bytes()))
        except ConnectionResetError:
            return False
        return True

    async def tick(self, ticks: int) -> None:
        if not self.wants_sse:
            return
        stream = await self.opened()
        await stream.write(sse.KEEPALIVE)
        progress = held_progress(self.message, ticks)
        if progress is not None:
            await stream.write(sse.encode(progress.to_bytes()))

    async def finish(self, answer: Message | None) -> web.StreamResponse:
        """End the opened stream with the proxy's answer (a refusal or a canned result)."""
        assert self.stream is not None
        if answer is not None:
            await self.stream.write(sse.encode(answer.to_bytes()))
        await self.stream.write_eof()
        return self.stream
