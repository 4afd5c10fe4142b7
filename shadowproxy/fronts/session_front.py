"""What every client-side transport does alike with a session: the pieces the fronts share.

A front carries MCP messages between one kind of client connection and a mount. Whatever the transport, it
keeps the client's ``initialize`` on the session record (:func:`capture_initialize`), turns a verdict that stops
a client's request into the answer the client gets (:func:`answer_for`), judges what the server sends and turns
a stopped reply into the client's "blocked" error (:meth:`SessionFront.judge_server`), reads the upstream's own
stream of messages tied to no request (:func:`listen_upstream`), and tells the upstream a request is abandoned
(:func:`cancel_upstream`).

A new transport is one module that implements :class:`ClientTransport` (which says how).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from shadowproxy.core import tracing
from shadowproxy.core.chain import C2S, S2C, Action, Verdict
from shadowproxy.core.errors import INTERNAL_ERROR, JsonRpcError, UpstreamError
from shadowproxy.core.jsonrpc import Message, error_response, notification, result_response
from shadowproxy.core.protocol import bounded_client_info
from shadowproxy.core.record import SessionRecord
from shadowproxy.proxy.mount import Mount
from shadowproxy.sessions.manager import LiveSession
from shadowproxy.upstreams.base import Channel

log = logging.getLogger(__name__)


class ClientTransport(Protocol):
    """What a client-side transport provides to the shared pieces of :class:`SessionFront`.

    To add a transport, write one module with a class that subclasses :class:`SessionFront` and has these three
    members. Give a session its :class:`~shadowproxy.core.record.SessionRecord` and call :func:`capture_initialize`
    on the client's ``initialize``; judge each client message with ``mount.judge(message, C2S, session,
    self.transport)`` and send what it forwards upstream, or give the client :func:`answer_for` the verdict; pass
    every message from the upstream through :meth:`SessionFront.judge_server` and give the client what it returns;
    on a request that times out, :func:`cancel_upstream`. :mod:`~shadowproxy.fronts.stream_session` is the
    shortest complete example.
    """

    @property
    def mount(self) -> Mount:
        """The mount the transport's sessions belong to."""
        ...

    @property
    def transport(self) -> str:
        """The transport's name, as the chain, the logs and the metrics know it (``"http"``, ``"stdio"`` …)."""
        ...

    async def answer_server(self, answer: Message, channel: Channel | None) -> None:
        """Send the proxy's answer to a server request the chain stopped back to the server that asked;
        ``channel`` is the one the request came on, when the transport knows it."""
        ...


class SessionFront:
    """The shared part of every front, mixed into the class that implements :class:`ClientTransport`."""

    __slots__ = ()

    async def judge_client(self: ClientTransport, message: Message, session: LiveSession) -> tuple[Verdict, Any]:
        """Run a client message through the chain; the verdict, and the request's span when tracing is on.

        With tracing on, the message gets the span of a request (:meth:`~shadowproxy.core.tracing.Tracing.begin`,
        continuing the trace its ``params._meta`` names), current while it is judged, with the proxy's trace
        context put in its ``_meta`` for a stdio server. A request that goes on keeps its span open: the front
        carries it on inside :func:`~shadowproxy.core.tracing.within` (a task spawned there inherits it) and ends
        it with :func:`~shadowproxy.core.tracing.finish` at the reply. Otherwise the span is ended here and
        ``None`` returned, as it is with tracing off.
        """
        mount = self.mount
        tracer = tracing.ACTIVE
        if tracer is None:
            return await mount.judge(message, C2S, session, self.transport), None
        span = tracer.begin(message, session.id)
        with tracer.within(span):
            if mount.traced_in_meta and message.is_request:
                message = tracer.with_meta(message)
            verdict = await mount.judge(message, C2S, session, self.transport)
        if verdict.is_forward and verdict.message is None and message.is_request:
            verdict = Verdict(Action.FORWARD, message, by=verdict.by)  # the message with the trace context in _meta
        if not verdict.is_forward or not message.is_request:
            tracing.finish(span, answer_for(message, verdict))
            return verdict, None
        return verdict, span

    async def judge_server(
        self: ClientTransport, incoming: Message, session: LiveSession, channel: Channel | None, request: Message | None
    ) -> Message | None:
        """Run a server message of ``session`` through the chain; ``None`` means nothing goes to the client.

        ``request`` is the client's request that ``incoming`` may answer: the chain sees it beside a reply.
        """
        mount = self.mount
        mount.sessions.touch(session, errors=incoming.error is not None)
        related = request if incoming.is_reply else None
        verdict = await mount.judge(incoming, S2C, session, self.transport, related)
        if verdict.is_forward:
            return verdict.message or incoming
        if incoming.is_reply:
            return error_response(incoming.id, verdict.error or JsonRpcError(INTERNAL_ERROR, "blocked"))
        answer = answer_for(incoming, verdict)
        if answer is not None:
            # A server request the proxy answered or refused: the answer goes back to the server.
            await self.answer_server(answer, channel)
        return None


def capture_initialize(record: SessionRecord, message: Message) -> None:
    """Keep what the client's ``initialize`` says of it on the session record, and the request itself (a new
    server process is given the same handshake)."""
    params = message.params if isinstance(message.params, dict) else {}
    record.client_info = bounded_client_info(params.get("clientInfo"))
    record.client_capabilities = params.get("capabilities")
    record.protocol_version = params.get("protocolVersion")
    record.init_request = message.to_bytes().decode()


def answer_for(message: Message, verdict: Verdict) -> Message | None:
    """The reply the proxy sends for a request a verdict stopped; ``None`` for anything that is not a request."""
    if not message.is_request:
        return None
    if verdict.action is Action.RESPOND:
        return result_response(message.id, verdict.result)  # type: ignore[arg-type]
    assert verdict.error is not None
    return error_response(message.id, verdict.error)


async def cancel_upstream(channel: Channel, request_id: object, reason: str) -> None:
    """Tell the upstream the client no longer waits for ``request_id`` (a handshake-era cancellation)."""
    try:
        await channel.send(notification("notifications/cancelled", {"requestId": request_id, "reason": reason}), {})
    except UpstreamError:
        pass


async def listen_upstream(
    channel: Channel, headers: dict[str, str], put: Callable[[Message], None], session_id: str
) -> None:
    """The upstream's own stream (an HTTP GET), when it has one: each server request and notification tied to no
    request goes to ``put``. A stdio child has none; its channel hands such messages to the session itself."""
    try:
        source = await channel.listen(headers)
    except UpstreamError as exc:
        log.warning("no upstream stream for session %s: %s", session_id[:8], exc.message)
        return
    if source is None:
        return
    try:
        while True:
            put(await source.next())
    except JsonRpcError as exc:
        log.info("the upstream stream of session %s ended: %s", session_id[:8], exc.message)
    finally:
        await source.close(cancel=True)
