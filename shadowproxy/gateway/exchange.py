"""The exchanges an aggregate channel hands the fronts: its own answer, or a member's, translated."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shadowproxy.bridge.shapes import modern_result
from shadowproxy.core.errors import UpstreamError
from shadowproxy.core.jsonrpc import Message, error_response
from shadowproxy.gateway.merge import modern
from shadowproxy.upstreams.base import Exchange


class Reply:
    """An answer the gateway made itself (a merged list, the merged ``initialize``, an error)."""

    status = None
    streaming = False
    controls = ()
    event_id = None

    def __init__(self, message: Message) -> None:
        self._message: Message | None = message

    async def next(self) -> Message:
        message, self._message = self._message, None
        if message is None:
            raise UpstreamError("the gateway's answer was already read")
        return message

    async def close(self, *, cancel: bool = False) -> None:
        self._message = None


class MemberExchange:
    """One member's answer to a routed request, each message translated on its way to the client.

    Event ids and priming frames are the member's own and are not passed on: a client resumes an aggregate's
    stream at the gateway, not at one member.
    """

    status = None
    streaming = False
    controls = ()
    event_id = None

    def __init__(
        self,
        member: str,
        inner: Exchange,
        request: Message,
        translate: Callable[[str, Message], Message | None],
        lost: Callable[[str, UpstreamError], UpstreamError],
        keep: Callable[[Any], None] | None = None,
    ) -> None:
        self.member = member
        self.inner = inner
        self.request = request
        self.translate = translate
        self.lost = lost
        self.keep = keep
        self.streaming = inner.streaming

    async def next(self) -> Message:
        while True:
            try:
                message = await self.inner.next()
            except UpstreamError as exc:
                # The member is gone, not the aggregate's session: the request fails, the session carries on.
                return error_response(self.request.id, self.lost(self.member, exc))
            if message.is_reply:
                if self.keep is not None and message.error is None:
                    self.keep(message.result)
                if message.error is None and modern(self.request):
                    # A handshake-era member's result, to a 2026-07-28 client: with the fields it validates.
                    shaped = modern_result(self.request.method, message.result)
                    if shaped is not message.result:
                        message = message.evolve(result=shaped)
                return message.evolve(id=self.request.id) if message.id != self.request.id else message
            translated = self.translate(self.member, message)
            if translated is not None:
                return translated

    async def close(self, *, cancel: bool = False) -> None:
        await self.inner.close(cancel=cancel)
