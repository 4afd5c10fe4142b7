"""Handshake sessions the proxy owns upstream, pooled for the stateless requests of 2026-07-28 clients.

A handshake-era server keeps state per session (what the client said it can do, subscriptions, its own
caches), so a stateless request is carried on a session opened for what makes sessions differ: the principal
and the client's capabilities. A session is opened on demand (``initialize``, ``notifications/initialized``),
reused by every request with the same key, closed once idle, and opened again when the upstream forgets it. On a
per-session stdio server each is a process of its own: the upstream keeps a spare one ready for the next key
(``spare``, one unless the config says otherwise; see :mod:`shadowproxy.upstreams.spares`).
Principals never share one: what a server sends on a session reaches only requests of its principal.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Any

import orjson

from shadowproxy import __version__
from shadowproxy.bridge.session_stream import Claimed, pump
from shadowproxy.bridge.shapes import initialize_request
from shadowproxy.core.errors import UpstreamError
from shadowproxy.core.jsonrpc import Kind, Message, notification
from shadowproxy.core.tasks import spawn
from shadowproxy.upstreams.attribution import refusal
from shadowproxy.upstreams.base import Channel, Exchange, Upstream, final_reply
from shadowproxy.upstreams.stdio import StdioUpstream

log = logging.getLogger(__name__)

PoolKey = tuple[str | None, bytes]
CLIENT_INFO = {"name": "shadowproxy-bridge", "version": __version__}
OPEN_TIMEOUT = 30.0


class PooledSession:
    """One handshake session upstream: its channel, what ``initialize`` answered, the ids the bridge gives."""

    def __init__(self, key: PoolKey, heard: Callable[[str | None, Message], None]) -> None:
        self.key = key
        self.heard = heard
        self.channel: Channel | None = None
        self.initialized: dict[str, Any] = {}
        self.version = ""
        self.ids = itertools.count(1)
        self.busy = 0
        self.last_used = asyncio.get_running_loop().time()
        # The session's GET stream (an HTTP upstream's), and the requests in flight a server request on it may be
        # for, oldest first (shadowproxy.bridge.session_stream).
        self.stream: asyncio.Task[None] | None = None
        self.asking: dict[int, Claimed] = {}

    @property
    def headers(self) -> dict[str, str]:
        """What an HTTP upstream is told of the session's version (a stdio one ignores headers)."""
        return {"MCP-Protocol-Version": self.version} if self.version else {}

    def claim(self, upstream_id: int, inner: Exchange) -> Exchange:
        """``inner``, joined by what the GET stream attributes to it; as it is when there is no GET stream."""
        if self.stream is None:
            return inner
        claimed = self.asking[upstream_id] = Claimed(inner, lambda _: self.asking.pop(upstream_id, None))
        return claimed

    def on_unsolicited(self, message: Message) -> None:
        if message.is_request and self.asking:
            # The newest request that may be asked something is the one the server most likely serves.
            next(reversed(self.asking.values())).heard.put_nowait(message)
            return
        if message.is_request and self.channel is not None:
            # No 2026-07-28 client can be asked outside a request: the server is told so at once.
            spawn(self.channel.send(refusal(message), self.headers), name="bridge-refuse")
            return
        self.heard(self.key[0], message)

    def touch(self) -> None:
        self.last_used = asyncio.get_running_loop().time()

    async def close(self, *, detach: bool = False) -> None:
        if self.stream is not None:
            self.stream.cancel()
            self.stream = None
        if self.channel is not None:
            await (self.channel.detach() if detach else self.channel.close())


async def open_session(
    upstream: Upstream,
    key: PoolKey,
    capabilities: dict[str, Any],
    heard: Callable[[str | None, Message], None],
    *,
    listen: bool = True,
) -> PooledSession:
    """A new handshake session on ``upstream``: initialize, then initialized, then its GET stream when it has one
    (``listen``); what the server sends on it unasked goes to ``heard`` with the session's principal."""
    pooled = PooledSession(key, heard)
    channel = pooled.channel = await upstream.open(pooled.on_unsolicited)
    params = initialize_request(capabilities, CLIENT_INFO)
    request = Message(Kind.REQUEST, {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params})
    try:
        exchange = await channel.request(request, {})
        async with asyncio.timeout(OPEN_TIMEOUT):
            reply = await final_reply(exchange)
        if reply.kind is not Kind.RESPONSE or not isinstance(reply.result, dict):
            detail = (reply.error or {}).get("message", "no result")
            raise UpstreamError(f"upstream {upstream.name!r} refused the bridge's initialize: {detail}")
        pooled.initialized = reply.result
        version = reply.result.get("protocolVersion")
        pooled.version = version if isinstance(version, str) else ""
        await channel.send(notification("notifications/initialized"), pooled.headers)
        stream = await _stream(channel, pooled.headers) if listen else None
        if stream is not None:
            pooled.stream = spawn(pump(stream, pooled.on_unsolicited), name=f"bridge-stream-{upstream.name}")
    except (UpstreamError, TimeoutError) as exc:
        await channel.close()
        if isinstance(exc, TimeoutError):
            raise UpstreamError(f"upstream {upstream.name!r} did not answer initialize") from None
        raise
    return pooled


async def _stream(channel: Channel, headers: dict[str, str]) -> Exchange | None:
    """The session's GET stream, if the server gives one: without it, calls work but cannot be asked anything."""
    try:
        return await channel.listen(headers)
    except UpstreamError as exc:
        log.info("bridge: no GET stream for a pooled session: %s", exc.message)
        return None


class HandshakePool:
    """The pooled handshake sessions of one upstream."""

    def __init__(self, upstream: Upstream, idle: float) -> None:
        self.upstream = upstream
        self.idle = idle
        self.sessions: dict[PoolKey, PooledSession] = {}
        self._opening: dict[PoolKey, asyncio.Future[PooledSession]] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self.opened = 0
        # The listen streams of each principal: what any of its sessions hears unasked is offered to them.
        self.listeners: dict[str | None, list[Callable[[Message], None]]] = {}

    def heard(self, principal: str | None, message: Message) -> None:
        for listener in self.listeners.get(principal, ()):
            listener(message)

    @staticmethod
    def key(principal: str | None, capabilities: dict[str, Any]) -> PoolKey:
        return principal, orjson.dumps(capabilities, option=orjson.OPT_SORT_KEYS)

    async def session(self, principal: str | None, capabilities: dict[str, Any]) -> PooledSession:
        """The session for this principal and these capabilities, opened if there is none (once, however many
        requests ask at the same time)."""
        key = self.key(principal, capabilities)
        pooled = self.sessions.get(key)
        if pooled is not None:
            return pooled
        opening = self._opening.get(key)
        if opening is not None:
            return await asyncio.shield(opening)
        future: asyncio.Future[PooledSession] = asyncio.get_running_loop().create_future()
        self._opening[key] = future
        if isinstance(self.upstream, StdioUpstream):
            # Each pooled session of a per-session stdio server is a process: the next key's is started ahead.
            self.upstream.bridged()
        try:
            pooled = await open_session(self.upstream, key, capabilities, self.heard)
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, Exception) else UpstreamError("the bridge's open was cut"))
            future.exception()  # read, so an unawaited failure is not reported as lost
            raise
        finally:
            del self._opening[key]
        future.set_result(pooled)
        self.sessions[key] = pooled
        self.opened += 1
        if self._sweeper is None:
            self._sweeper = spawn(self._sweep(), name=f"bridge-pool-{self.upstream.name}")
        return pooled

    async def forget(self, pooled: PooledSession) -> None:
        """The upstream no longer knows ``pooled``: the next request with its key opens a new one."""
        if self.sessions.get(pooled.key) is pooled:
            del self.sessions[pooled.key]
        await pooled.close(detach=True)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(max(self.idle / 2, 0.05))
            await self.close_idle()

    async def close_idle(self) -> int:
        deadline = asyncio.get_running_loop().time() - self.idle
        idle = [pooled for pooled in self.sessions.values() if not pooled.busy and pooled.last_used < deadline]
        for pooled in idle:
            del self.sessions[pooled.key]
            log.debug("bridge: closing an idle upstream session of %s", self.upstream.name)
            await pooled.close()
        return len(idle)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        sessions, self.sessions = list(self.sessions.values()), {}
        for pooled in sessions:
            await pooled.close()
