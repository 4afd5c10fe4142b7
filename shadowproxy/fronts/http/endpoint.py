"""The Streamable HTTP client side at each mount's path: POST and DELETE here, GET in
:mod:`~shadowproxy.fronts.http.get_stream`.

Each POST is served in the aiohttp task of its request: the message is
decoded once, judged by the chain, sent upstream, and the upstream's answer is
read in the same task (:class:`~shadowproxy.fronts.http.post_relay.PostRelay`).
A request whose answer is a single response gets it as ``application/json``; one
that brings notifications or server requests first, or (for upstreams without
event ids) takes longer than ``stream_after``, is switched to
``text/event-stream`` and streamed, never buffered.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from typing import TYPE_CHECKING

from aiohttp import web

from shadowproxy.control.asking import ROUND_TRIP, hold_answered
from shadowproxy.core import counters, limit_hits, tracing
from shadowproxy.core.chain import C2S, FORWARD
from shadowproxy.core.errors import INVALID_REQUEST, SESSION_NOT_FOUND, UpstreamError
from shadowproxy.core.jsonrpc import Kind, Message, error_response
from shadowproxy.core.protocol import (
    DEFAULT_HANDSHAKE_VERSION,
    EVENT_STREAM,
    JSON,
    KNOWN_VERSIONS,
    MODERN_VERSIONS,
    RESUME_HEADER,
    SESSION_HEADER,
    VERSION_HEADER,
)
from shadowproxy.core.record import SessionRecord, new_session_id
from shadowproxy.fronts import http_limits
from shadowproxy.fronts.http.get_stream import SessionStreams
from shadowproxy.fronts.http.held import KeptOpen
from shadowproxy.fronts.http.post_relay import PostRelay
from shadowproxy.fronts.http.wire import (
    MODERN_ERROR_STATUS,
    OWN_HEADERS,
    is_stateless,
    json_error,
    json_reply,
    read_message,
)
from shadowproxy.fronts.principal import PRINCIPAL
from shadowproxy.fronts.session_front import SessionFront, answer_for, capture_initialize
from shadowproxy.proxy.mount import Mount
from shadowproxy.sessions import admission
from shadowproxy.sessions.manager import LiveSession
from shadowproxy.sessions.resumption import Resumption
from shadowproxy.upstreams.base import Channel
from shadowproxy.upstreams.http import HttpUpstream, UpstreamSessionLost
from shadowproxy.upstreams.stdio import count_start

if TYPE_CHECKING:
    from shadowproxy.fronts.http.header_check import HeaderCheck

log = logging.getLogger(__name__)
# The client's initialize is kept whole (the handshake is replayed to a new process); real ones are a few KB.
MAX_INITIALIZE = 256 * 1024


class StreamableHttpEndpoint(SessionFront):
    """The MCP endpoint of one mount."""

    transport = "http"

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
        # the proxy's event log, and so is a session bridged to a 2026-07-28-only HTTP upstream (no ids either).
        self.own_log: Resumption | None = None
        if self.sessions.store is not None:
            self.own_log = Resumption(
                self.sessions.store,
                retry=retry,
                poll_after=poll_after,
                stream_after=stream_after,
                keepalive=keepalive,
            )
        self.resumption = None if self.forward_headers else self.own_log
        # Made by the first 2026-07-28 request to an upstream that cannot see headers (see _header_check).
        self.header_check: HeaderCheck | None = None
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

    def resumption_for(self, channel: Channel | None) -> Resumption | None:
        """The proxy's event log for a session's streams, when the proxy makes their event ids (``None``: the
        upstream makes them, or nobody can resume)."""
        if self.resumption is None and getattr(channel, "bridged", False):
            return self.own_log
        return self.resumption

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
        tracer = tracing.ACTIVE
        if isinstance(decoded, list):
            if tracer is None:
                return await self.batch(request, decoded, session_id, version)
            with tracer.batch(len(decoded), session_id, request.headers):
                return await self.batch(request, decoded, session_id, version)
        if tracer is None or (span := tracer.begin(decoded, session_id, request.headers)) is tracer.none:
            # Not traced (tracing off, or ratio 0 and the client names no trace): no span, nothing passed on.
            return await self.route(request, decoded, session_id, version, wants_sse)
        with tracer.current(span):
            if self.mount.traced_in_meta and decoded.is_request:
                decoded = tracer.with_meta(decoded)
            return await self.route(request, decoded, session_id, version, wants_sse)

    async def route(
        self, request: web.Request, message: Message, session_id: str | None, version: str | None, wants_sse: bool
    ) -> web.StreamResponse:
        """One message: an initialize, a stateless request, or one of a session."""
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
        record = SessionRecord(
            id=new_session_id(), upstream=self.mount.name, principal=request.get(PRINCIPAL), transport=self.transport
        )
        capture_initialize(record, message)
        session = LiveSession(record, self.mount)
        verdict = await self.mount.judge(message, C2S, session, "http")
        if not verdict.is_forward:
            # Refused or answered by the chain: no session begins, so no id is given.
            return json_reply(answer_for(message, verdict))  # type: ignore[arg-type]
        if verdict.message is not None:
            message = verdict.message
        try:
            session.channel = await self.mount.open_channel(session.on_unsolicited)
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
        relay = PostRelay(self, request, message, session, session.channel, wants_sse, False, headers)
        guard.requests.enter(record.id)  # the first of a new session's: never refused
        try:
            response, final = await relay.run()
        finally:
            guard.requests.leave(record.id)
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
        # A bridged request reaches a handshake-era server, which never judges the 2026-07-28 headers: as for a
        # stdio server, the proxy does.
        if (not self.forward_headers or getattr(channel, "bridged", False)) and message.is_request:
            check = self.header_check or await self._header_check()
            error = await check.check(message, request.headers.items(), channel)
            if error is not None:
                return json_reply(error_response(message.id, error), MODERN_ERROR_STATUS.get(error.code, 400))
        return await self.exchange(request, message, session, channel, wants_sse, modern=True)

    async def _header_check(self) -> HeaderCheck:
        # It loads the SDK's validation ladder (half a second): in a thread, on first need, so that neither the
        # proxy's start nor a proxy that never sees a 2026-07-28 request pays for it.
        module = await asyncio.to_thread(importlib.import_module, "shadowproxy.fronts.http.header_check")
        if self.header_check is None:
            self.header_check = module.HeaderCheck()
        return self.header_check

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
        if message.is_reply and hold_answered(message) is not None:
            # The answer to the proxy's own question about a held call: the upstream never asked it.
            await self.mount.holds.answered(message, session.id)
            return web.Response(status=202)
        mount = self.mount
        kept = None
        if not message.is_request:
            verdict = await mount.judge(message, C2S, session, "http")
        elif mount.unwrap is None and mount.passes(message, C2S, session, "http"):
            # Skipped by the chain (the usual request): nothing can hold it, so nothing is kept open for it.
            verdict = FORWARD
        else:
            kept = KeptOpen(request, message, wants_sse)
            # The 2026-07-28 era has no server-to-client request on a POST: its user is asked through an
            # InputRequiredResult, answered by the client's retry.
            ask = ROUND_TRIP if modern else kept.ask
            judge = mount.judge if mount.unwrap is not None else mount.decide
            verdict = await judge(message, C2S, session, "http", waiting=kept.tick, ask=ask)
        self.sessions.touch(session)
        if not verdict.is_forward:
            answer = answer_for(message, verdict)
            if kept is not None and kept.stream is not None:
                return await kept.finish(answer)
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
        relay = PostRelay(self, request, message, session, channel, wants_sse, modern, None)
        if kept is not None and kept.stream is not None:
            # Held, then let go: the answer follows on the stream that kept the client waiting.
            relay.stream, relay.events = kept.stream, None
        response, _ = await relay.run()
        return response

    async def lost(self, session: LiveSession, message: Message) -> web.Response:
        await self.sessions.close(session.id)
        return json_error(404, SESSION_NOT_FOUND, "the upstream lost this session; initialize a new one", message.id)

    async def answer_server(self, answer: Message, channel: Channel | None) -> None:
        assert channel is not None
        await channel.send(answer, {})

    def tell_client(self, message: Message) -> bool:
        """Never on the session's stream: a held POST asks and tells on its own (:class:`KeptOpen`)."""
        return False

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
        tracer = tracing.ACTIVE
        for message in messages:
            if tracer is None:
                response = await self.exchange(request, message, session, session.channel, False, modern=False)  # type: ignore[arg-type]
            else:
                with tracer.request(message, session.id, None):  # a child of the batch's span
                    if self.mount.traced_in_meta and message.is_request:
                        message = tracer.with_meta(message)
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
