"""A POST whose request is held for a decision (:mod:`shadowproxy.control`): its answer kept open meanwhile.

Every ``keepalive`` seconds the client that takes an event stream gets one (opened at the first tick) with a
keep-alive comment, and, when its request carried a ``progressToken``, a ``notifications/progress`` saying
what it waits for; a client that takes only JSON waits for its one reply. The stream then carries the answer:
the upstream's, once the message is let go, or the proxy's refusal.
"""

from __future__ import annotations

from aiohttp import web

from shadowproxy.core import logs, sse
from shadowproxy.core.jsonrpc import Message, notification
from shadowproxy.core.sse import SSE_HEADERS
from shadowproxy.fronts.http.fast_request import PlainRequest, event_stream


class KeptOpen:
    """The client side of one held POST."""

    __slots__ = ("message", "request", "stream", "wants_sse")

    def __init__(self, request: web.Request | PlainRequest, message: Message, wants_sse: bool) -> None:
        self.request = request
        self.message = message
        self.wants_sse = wants_sse
        self.stream: web.StreamResponse | None = None

    async def tick(self, ticks: int) -> None:
        if not self.wants_sse:
            return
        stream = self.stream
        if stream is None:
            stream = self.stream = event_stream(self.request, SSE_HEADERS)
            logs.tag(stream.headers)
            await stream.prepare(self.request)  # type: ignore[arg-type]
        await stream.write(sse.KEEPALIVE)
        params = self.message.params
        meta = params.get("_meta") if isinstance(params, dict) else None
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        if token is not None:
            progress = {"progressToken": token, "progress": ticks, "message": "held: waiting for a decision"}
            await stream.write(sse.encode(notification("notifications/progress", progress).to_bytes()))

    async def finish(self, answer: Message | None) -> web.StreamResponse:
        """End the opened stream with the proxy's answer (a refusal or a canned result)."""
        assert self.stream is not None
        if answer is not None:
            await self.stream.write(sse.encode(answer.to_bytes()))
        await self.stream.write_eof()
        return self.stream
