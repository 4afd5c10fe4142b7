"""The Streamable HTTP client side at each mount's path: POST and DELETE here, GET in :mod:`http_get`.

Each POST is served in the aiohttp task of its request: the message is
decoded once, judged by the chain, sent upstream, and the upstream's answer is
read in the same task. A request whose answer is a single response gets it as
``application/json``; one that brings notifications or server requests first,
or (for upstreams without event ids) takes longer than ``stream_after``, is
switched to ``text/event-stream`` and streamed, never buffered.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aiohttp import web

from shadowproxy.core import counters, limit_hits, logs, sse
from shadowproxy.core.chain import C2S, S2C, Direction
from shadowproxy.core.errors import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    REQUEST_TIMEOUT,
    SESSION_NOT_FOUND,
    JsonRpcError,
    UpstreamError,
)
from shadowproxy.core.jsonrpc import Kind, Message, error_response, notification
from shadowproxy.core.protocol import (
    DEFAULT_HANDSHAKE_VERSION,
    EVENT_STREAM,
    JSON,
    KNOWN_VERSIONS,
    MODERN_VERSIONS,
    RESUME_HEADER,
    SESSION_HEADER,
    VERSION_HEADER,
    bounded_client_info,
)
from shadowproxy.core.record import SessionRecord, new_session_id
from shadowproxy.core.sse import SSE_HEADERS
from shadowproxy.core.timer import RequestTimer
from shadowproxy.fronts import http_limits
from shadowproxy.fronts.http.fast_request import event_stream
from shadowproxy.fronts.http.get_stream import SessionStreams
from shadowproxy.fronts.http.wire import (
    LONG_LIVED,
    MODERN_ERROR_STATUS,
    OWN_HEADERS,
    PRINCIPAL,
    answer_for,
    is_stateless,
    json_error,
    json_reply,
    read_message,
    reply_status,
    write_event,
)
from shadowproxy.proxy.mount import Mount
from shadowproxy.sessions import admission
from shadowproxy.sessions.eventlog import StreamLog
from shadowproxy.sessions.manager import LiveSession
from shadowproxy.sessions.resumption import Resumption
from shadowproxy.upstreams.base import Channel, Exchange
from shadowproxy.upstreams.http import HttpUpstream, StreamPaused, UpstreamSessionLost
from shadowproxy.upstreams.stdio import count_start

if TYPE_CHECKING:
    from shadowproxy.fronts.http.header_check import HeaderCheck

log = logging.getLogger(__name__)
# The client's initialize is kept whole (the handshake is replayed to a new process); real ones are a few KB.
MAX_INITIALIZE = 256 * 1024


class StreamableHttpEndpoint:
    """The MCP endpoint of one mount."""

    def __init__(
        self,
        mount: Mount,
        *,
        guard: admission.Guard,
        request_timeout: float,
        keepalive: float,
        retry: float = 1.0,
        poll_after: float = 0.0,
        stream_after: float = 0.1,
    ) -> None:
        self.mount = mount
        self.sessions = mount.sessions
        self.guard = guard
        self.request_timeout = request_timeout
        self.keepalive = keepalive
        self.forward_headers = isinstance(mount.upstream, HttpUpstream)
        # An upstream with event ids of its own (Streamable HTTP) is resumed at the upstream; any other through
        # the proxy's event log.
        self.resumption: Resumption | None = None
        if not self.forward_headers and self.sessions.store is not None:
            self.resumption = Resumption(
                self.sessions.store,
                retry=retry,
                poll_after=poll_after,
                stream_after=stream_after,
                keepalive=keepalive,
            )
        self.header_check: HeaderCheck | None = None
        if not self.forward_headers:
            # Imported here: it loads the SDK, which only a server that cannot see headers needs.
            from shadowproxy.fronts.http.header_check import HeaderCheck

            self.header_check = HeaderCheck()
        self.in_flight = 0
        self.listening = SessionStreams(self)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """GET and DELETE, from the router; a POST comes to :meth:`post` from the front door (through the router
        when it carries ``Expect``), which times it."""
        if request.method == "POST":
            return await self.post(request)
        if request.method == "GET":
            return await self.listening.get(request)
        if request.method == "DELETE":
            return await self.delete(request)
        return web.Response(status=405, headers={"Allow": "GET, POST, DELETE"})

    def upstream_headers(self, request: web.Request) -> dict[str, str]:
        """The client's ``Mcp-*`` headers (all but the session id, which the proxy owns), passed on unchanged."""
        if not self.forward_headers:
            return {}
        passed = {}
        for name, value in request.headers.items():
            lower = name.lower()
            if (lower.startswith("mcp-") and lower not in OWN_HEADERS) or lower == RESUME_HEADER:
                passed[name] = value
        return passed

    async def post(self, request: web.Request) -> web.StreamResponse:
        if request.content_type != JSON:
            return json_error(415, INVALID_REQUEST, "Content-Type must be application/json")
        accept = request.headers.get("Accept", "*/*")
        wants_sse = EVENT_STREAM in accept or "*/*" in accept
        if not wants_sse and JSON not in accept:
            return json_error(406, INVALID_REQUEST, "Accept must include application/json and text/event-stream")
        decoded = await read_message(request, self.guard.limits.body_timeout)
        if isinstance(decoded, web.Response):
            return decoded
        session_id = request.headers.get(SESSION_HEADER)
        version = request.headers.get(VERSION_HEADER)
        if isinstance(decoded, list):
            return await self.batch(request, decoded, session_id, version)
        message = decoded
        if message.method == "initialize" and message.is_request and version not in MODERN_VERSIONS:
            return await self.initialize(request, message, wants_sse)
        if session_id is None:
            if is_stateless(message, version):
                return await self.stateless(request, message, wants_sse)
            return json_error(400, INVALID_REQUEST, f"{SESSION_HEADER} header is required", message.id)
        session = await self.find_session(session_id, request.get(PRINCIPAL))
        if session is None:
            return json_error(404, SESSION_NOT_FOUND, "session not found; initialize a new one", message.id)
        if version is not None and version not in KNOWN_VERSIONS:
            return json_error(400, INVALID_REQUEST, f"unsupported {VERSION_HEADER}: {version}", message.id)
        if not message.is_request:
            return await self.exchange(request, message, session, session.channel, wants_sse, modern=False)  # type: ignore[arg-type]
        slots = self.guard.requests
        try:
            slots.enter(session.id)
        except limit_hits.LimitExceeded as exc:
            return http_limits.refusal(exc, message.id)
        try:
            return await self.exchange(request, message, session, session.channel, wants_sse, modern=False)  # type: ignore[arg-type]
        finally:
            slots.leave(session.id)

    def session_for(self, session_id: str, principal: str | None) -> LiveSession | None:
        """The live session, if it is this mount's and belongs to ``principal``: a leaked id is of no use."""
        session = self.sessions.get(session_id)
        if session is None or session.mount is not self.mount or session.channel is None:
            return None
        if session.record.principal != principal:
            return None
        return session

    async def find_session(self, session_id: str, principal: str | None) -> LiveSession | None:
        """A live session, or one restored from the store; ``None`` means 404."""
        session = self.session_for(session_id, principal)
        if session is None and session_id not in self.sessions.live:
            restored = await self.sessions.restore(session_id, self.mount, principal)
            if restored is not None:
                session = self.session_for(session_id, principal)
        return session

    async def initialize(self, request: web.Request, message: Message, wants_sse: bool) -> web.StreamResponse:
        guard = self.guard
        try:
            self.sessions.admit(request.get(PRINCIPAL), guard)
            init_request = message.to_bytes()
            if len(init_request) > MAX_INITIALIZE:
                text = f"an initialize request is kept for the session's life; this one is over {MAX_INITIALIZE} bytes"
                raise limit_hits.LimitExceeded("initialize", 413, text)
        except limit_hits.LimitExceeded as exc:
            return http_limits.refusal(exc, message.id)
        params = message.params or {}
        record = SessionRecord(
            id=new_session_id(),
            upstream=self.mount.name,
            protocol_version=params.get("protocolVersion"),
            client_info=bounded_client_info(params.get("clientInfo")),
            client_capabilities=params.get("capabilities"),
            init_request=init_request.decode(),
            principal=request.get(PRINCIPAL),
        )
        session = LiveSession(record, self.mount)
        verdict = await self.mount.judge(message, Direction.CLIENT_TO_SERVER, session, "http")
        if not verdict.is_forward:
            # Refused or answered by the chain: no session begins, so no id is given.
            return json_reply(answer_for(message, verdict))  # type: ignore[arg-type]
        if verdict.message is not None:
            message = verdict.message
        try:
            session.channel = await self.mount.upstream.open(session.on_unsolicited)
            count_start(self.mount.upstream)
        except UpstreamError as exc:
            counters.upstream_failed(self.mount.name)
            return json_reply(error_response(message.id, exc), exc.http_status, exc.http_headers)
        try:
            # Again, with no await before add: other sessions may have begun while this upstream opened.
            self.sessions.admit(record.principal, guard)
        except limit_hits.LimitExceeded as exc:
            await session.channel.close()
            return http_limits.refusal(exc, message.id)
        self.sessions.add(session)
        headers = {SESSION_HEADER: record.id}
        response, final = await self.relay(request, message, session, session.channel, wants_sse, False, headers)
        if final is not None and final.kind is Kind.RESPONSE and isinstance(final.result, dict):
            record.upstream_session_id = session.channel.upstream_session_id
            self.sessions.activate(session, final.result.get("protocolVersion"))
        else:
            await self.sessions.close(record.id)
            if not response.prepared:
                # No id for a session that never began (a streamed answer has sent its headers already).
                response.headers.pop(SESSION_HEADER, None)
        return response

    async def stateless(self, request: web.Request, message: Message, wants_sse: bool) -> web.StreamResponse:
        try:
            session = self.mount.logical_session(message, request.get(PRINCIPAL), self.guard)
        except limit_hits.LimitExceeded as exc:
            return http_limits.refusal(exc, message.id)
        try:
            channel = await self.mount.stateless_channel(session)
        except UpstreamError as exc:
            return json_reply(error_response(message.id, exc), exc.http_status, exc.http_headers)
        if self.header_check is not None and message.is_request:
            error = await self.header_check.check(message, request.headers.items(), channel)
            if error is not None:
                return json_reply(error_response(message.id, error), MODERN_ERROR_STATUS.get(error.code, 400))
        return await self.exchange(request, message, session, channel, wants_sse, modern=True)

    async def exchange(
        self,
        request: web.Request,
        message: Message,
        session: LiveSession,
        channel: Channel,
        wants_sse: bool,
        *,
        modern: bool,
    ) -> web.StreamResponse:
        verdict = await self.mount.judge(message, C2S, session, "http")
        self.sessions.touch(session)
        if not verdict.is_forward:
            answer = answer_for(message, verdict)
            return json_reply(answer) if answer is not None else web.Response(status=202)
        if verdict.message is not None:
            message = verdict.message
        if not message.is_request:
            try:
                await channel.send(message, self.upstream_headers(request))
            except UpstreamSessionLost:
                return await self.lost(session, message)
            except UpstreamError as exc:
                log.warning("could not pass a %s upstream: %s", message.kind.value, exc.message)
                return json_reply(error_response(None, exc), 502)
            return web.Response(status=202)
        response, _ = await self.relay(request, message, session, channel, wants_sse, modern)
        return response

    async def lost(self, session: LiveSession, message: Message) -> web.Response:
        await self.sessions.close(session.id)
        return json_error(404, SESSION_NOT_FOUND, "the upstream lost this session; initialize a new one", message.id)

    async def relay(
        self,
        request: web.Request,
        message: Message,
        session: LiveSession,
        channel: Channel,
        wants_sse: bool,
        modern: bool,
        headers: dict[str, str] | None = None,
    ) -> tuple[web.StreamResponse, Message | None]:
        """Send ``message`` upstream and carry everything the server says for it back to the client."""
        stream: web.StreamResponse | None = None
        exchange: Exchange | None = None
        final: Message | None = None
        resumption = self.resumption
        # The proxy's own event ids, for a session's requests (not its initialize) when the upstream has none.
        events = self.stream_log(session, wants_sse, modern) if headers is None else None
        unlogged: Message | None = None
        loop = asyncio.get_running_loop()
        deadline = None if message.method in LONG_LIVED else loop.time() + self.request_timeout
        idle = self.keepalive if resumption is None else resumption.idle_limit(session, events, stream)
        timer = RequestTimer(deadline, idle)
        self.in_flight += 1
        try:
            try:
                sent = counters.clock()
                exchange = await channel.request(message, self.upstream_headers(request))
                if events is not None and resumption is not None and resumption.streams_at_once(session):
                    stream = await self.open_stream(request, headers, session, events)
                while final is None:
                    if resumption is not None:
                        idle = resumption.idle_limit(session, events, stream)
                    timer.wait(idle)
                    try:
                        incoming = await exchange.next()
                    except asyncio.CancelledError:
                        if not timer.expired():
                            raise
                        if timer.past_deadline():
                            raise TimeoutError from None
                        if events is not None and stream is None and resumption is not None:
                            # A slow answer becomes a resumable stream: a priming event, then what follows.
                            stream = await self.open_stream(request, headers, session, events)
                            if resumption.primes(session):
                                continue
                        elif resumption is not None and resumption.polls(events, stream):
                            # Polling: the client holds an event id; it comes back for the rest.
                            assert stream is not None and events is not None
                            resumption.detach(
                                exchange, events, message, session, channel, deadline, self.judge_reply, "poll", None
                            )
                            exchange = events = None
                            break
                        # A silent answer becomes an event stream with keep-alive comments, so that
                        # intermediaries do not cut it.
                        if wants_sse:
                            if stream is None:
                                stream = await self.open_stream(request, headers, session, events)
                            await stream.write(sse.KEEPALIVE)
                        continue
                    timer.waiting = False
                    if incoming.is_reply and incoming.id == message.id:
                        final = incoming
                        if modern and self.header_check is not None and message.method == "tools/list":
                            self.header_check.learn(incoming)
                        counters.answered(request, self.mount.name, message.method, sent)
                    outgoing = await self.judge_reply(incoming, session, channel, message)
                    if outgoing is None:
                        continue
                    if final is not None and stream is None and not (exchange.streaming and wants_sse):
                        return json_reply(outgoing, reply_status(exchange, outgoing, modern), headers), final
                    if stream is None:
                        if not wants_sse:
                            continue
                        stream = await self.open_stream(request, headers, session, events)
                    if events is not None:
                        # Logged before it is written: until the log holds it, a disconnect must not lose it.
                        unlogged = outgoing
                        data = outgoing.to_bytes()
                        event_id = await events.append(data)
                        unlogged = None
                        await stream.write(sse.encode(data, event_id=event_id))
                    else:
                        await write_event(stream, exchange, outgoing)
            except asyncio.CancelledError:
                if timer.expired():
                    raise TimeoutError from None
                raise
        except StreamPaused:
            # The upstream closed a resumable stream mid-answer (2025-11-25 polling): the client gets the
            # same priming event and retry hint, and resumes at the upstream through its GET stream.
            if stream is None:
                stream = await self.open_stream(request, headers, session, None)
            if exchange is not None and exchange.controls:
                await stream.write(b"".join(exchange.controls))
        except (asyncio.CancelledError, ConnectionResetError) as exc:
            # The client went away. In 2026-07-28 that is cancellation; in the handshake era it is not, and
            # a client that holds an event id resumes the answer from the event log.
            if exchange is not None:
                if events is not None and stream is not None and resumption is not None and (final is None or unlogged):
                    resumption.detach(
                        exchange, events, message, session, channel, deadline, self.judge_reply, "disconnect", unlogged
                    )
                    events = None
                else:
                    await exchange.close(cancel=modern)
                exchange = None
            if isinstance(exc, asyncio.CancelledError) or stream is None:
                raise
            return stream, final
        except UpstreamSessionLost:
            return await self.lost(session, message), None
        except (UpstreamError, TimeoutError) as exc:
            error = exc if isinstance(exc, JsonRpcError) else JsonRpcError(REQUEST_TIMEOUT, "the request timed out")
            if exchange is not None:
                await self.cancel_upstream(channel, exchange, message, error)
                exchange = None
            log.warning("request %r failed: %s", message.method, error.message)
            counters.upstream_failed(self.mount.name)
            self.sessions.touch(session, errors=1)
            final = error_response(message.id, error)
            if stream is None:
                return json_reply(final, 200 if isinstance(exc, TimeoutError) else 502, headers), final
            if events is not None and resumption is not None:
                await resumption.emit(stream, events, final)
            else:
                await stream.write(sse.encode(final.to_bytes()))
        except JsonRpcError as exc:
            return json_reply(error_response(message.id, exc), 400, headers), None
        finally:
            timer.stop()
            self.in_flight -= 1
            if events is not None:
                if stream is not None:
                    session.live_streams.pop(events.stream_id, None)
                events.end()
            if exchange is not None:
                await exchange.close()
        assert stream is not None
        await stream.write_eof()
        return stream, final

    def stream_log(self, session: LiveSession, wants_sse: bool, modern: bool) -> StreamLog | None:
        """The event log of this request's stream, when the proxy makes the ids and the client can resume."""
        if self.resumption is None or modern or not wants_sse or session.id not in self.sessions.live:
            return None
        return self.resumption.log_for(session)

    async def open_stream(
        self,
        request: web.Request,
        headers: dict[str, str] | None,
        session: LiveSession,
        events: StreamLog | None,
    ) -> web.StreamResponse:
        stream = event_stream(request, {**SSE_HEADERS, **headers} if headers else SSE_HEADERS)
        # Prepared here, before the front door could tag the answer.
        logs.tag(stream.headers)
        await stream.prepare(request)
        if events is not None and self.resumption is not None:
            session.live_streams[events.stream_id] = events
            if self.resumption.primes(session):
                await self.resumption.prime(stream, events)
        return stream

    async def judge_reply(
        self, incoming: Message, session: LiveSession, channel: Channel, request: Message
    ) -> Message | None:
        """Run a server message through the chain; ``None`` means nothing goes to the client."""
        self.sessions.touch(session, errors=incoming.error is not None)
        related = request if incoming.is_reply else None
        verdict = await self.mount.judge(incoming, S2C, session, "http", related)
        if verdict.is_forward:
            return verdict.message or incoming
        if incoming.is_reply:
            return error_response(incoming.id, verdict.error or JsonRpcError(INTERNAL_ERROR, "blocked"))
        answer = answer_for(incoming, verdict)
        if answer is not None:
            # A server request the proxy answered or refused: the answer goes back to the server.
            await channel.send(answer, {})
        return None

    async def cancel_upstream(self, channel: Channel, exchange: Exchange, message: Message, error: Exception) -> None:
        await exchange.close(cancel=True)
        if isinstance(error, TimeoutError) or getattr(error, "code", None) == REQUEST_TIMEOUT:
            cancel = notification("notifications/cancelled", {"requestId": message.id, "reason": "timed out"})
            try:
                await channel.send(cancel, {})
            except UpstreamError:
                pass

    async def batch(
        self, request: web.Request, messages: list[Message], session_id: str | None, version: str | None
    ) -> web.StreamResponse:
        session = await self.find_session(session_id, request.get(PRINCIPAL)) if session_id else None
        if session is None:
            if session_id:
                return json_error(404, SESSION_NOT_FOUND, "session not found; initialize a new one")
            return json_error(400, INVALID_REQUEST, "a batch needs a session; initialize must not be batched")
        negotiated = session.record.protocol_version or version or DEFAULT_HANDSHAKE_VERSION
        if negotiated != "2025-03-26":
            text = f"JSON-RPC batches are not supported in protocol version {negotiated}"
            return json_error(400, INVALID_REQUEST, text)
        replies: list[bytes] = []
        for message in messages:
            response = await self.exchange(request, message, session, session.channel, False, modern=False)  # type: ignore[arg-type]
            if isinstance(response, web.Response) and response.body and response.status < 300:
                replies.append(response.body)  # type: ignore[arg-type]
        if not replies:
            return web.Response(status=202)
        return web.Response(body=b"[" + b",".join(replies) + b"]", content_type=JSON)

    def close_streams(self) -> None:
        """On shutdown: end every GET stream, so the client reconnects elsewhere or after the restart."""
        self.listening.close()

    async def delete(self, request: web.Request) -> web.Response:
        session_id = request.headers.get(SESSION_HEADER)
        if session_id is None:
            return json_error(400, INVALID_REQUEST, f"{SESSION_HEADER} header is required")
        if await self.find_session(session_id, request.get(PRINCIPAL)) is None:
            return json_error(404, SESSION_NOT_FOUND, "session not found")
        await self.sessions.close(session_id)
        return web.Response(status=204)
