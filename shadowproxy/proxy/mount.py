"""A mount: one upstream served at one path, with the chain every message passes.

Both client sides (Streamable HTTP and stdio) go through a mount, so the chain,
the session bookkeeping and the stateless-era grouping are written once.

Each message, judged or skipped, is then shown to its observers here, by
:meth:`Mount.passes` and :meth:`Mount.judge` and nowhere else: the chain's
:class:`~shadowproxy.core.chain.VerdictObserver` hooks (the audit log), and the
proxy's own, which every proxy has and no config names: the counters of
:mod:`~shadowproxy.core.counters` and the live :data:`~shadowproxy.proxy.tap.TAP`; and the
:class:`~shadowproxy.tapes.writer.Recorder` when ``tapes`` is configured. Those
are not interceptors and the chain does not run them; each is one call by name,
taking the message as it is, so a skipped message builds no context for them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shadowproxy.bridge.era import EraBridge
from shadowproxy.control import HoldRegistry
from shadowproxy.control.asking import Asker
from shadowproxy.control.registry import Waiting
from shadowproxy.core import counters, tracing
from shadowproxy.core.chain import C2S, FORWARD, S2C, Action, Chain, Direction, MessageContext, Verdict, forward
from shadowproxy.core.errors import UpstreamError
from shadowproxy.core.hold import BREAKPOINT, HoldSpec
from shadowproxy.core.jsonrpc import REQUEST, RESPONSE, Message
from shadowproxy.core.protocol import (
    CLIENT_FIELD,
    KNOWN_VERSIONS,
    META_CLIENT_INFO,
    META_PROTOCOL_VERSION,
    bounded_client_info,
    meta_of,
)
from shadowproxy.core.record import SessionRecord, SessionState
from shadowproxy.proxy.tap import TAP
from shadowproxy.sessions.admission import Guard
from shadowproxy.sessions.manager import LiveSession, SessionManager
from shadowproxy.upstreams.base import Channel, UnsolicitedHandler, Upstream
from shadowproxy.upstreams.stdio import StdioUpstream

if TYPE_CHECKING:
    from shadowproxy.tapes.writer import Recorder  # the proxy imports it when tapes are configured

log = logging.getLogger(__name__)
_HOLD = Action.HOLD
STOP = HoldSpec(BREAKPOINT, timeout=3600.0, on_timeout="approve")
"""A breakpoint's hold: an operator who walks away lets the message go on after an hour."""


class Mount:
    """One upstream at one path."""

    def __init__(
        self,
        path: str,
        upstream: Upstream,
        chain: Chain,
        sessions: SessionManager,
        holds: HoldRegistry | None = None,
        bridge: EraBridge | None = None,
        tapes: Recorder | None = None,
    ) -> None:
        self.path = path
        self.tapes = tapes
        self.name = upstream.name
        self.upstream = upstream
        self.chain = chain
        self.sessions = sessions
        self.holds = holds if holds is not None else HoldRegistry()
        self._stateless_lock = asyncio.Lock()
        # Carries 2026-07-28 requests to a server that speaks only the handshake era (shadowproxy.bridge).
        self.bridge = bridge
        # A virtual server's: which member a message is for (the chain's ``upstream``), and the tool a
        # ``call_tool`` meta-tool stands for, judged in its place.
        self.member_of: Callable[[Message, Message | None], str | None] | None = getattr(upstream, "member_of", None)
        self.unwrap: Callable[[Message], Message | None] | None = getattr(upstream, "unwrap", None)
        if hasattr(upstream, "visible"):
            upstream.visible = self.visible_tools
        # A stdio server gets a request's trace context in its params' _meta (an HTTP one, in headers).
        self.traced_in_meta = isinstance(upstream, StdioUpstream)

    def passes(
        self,
        message: Message,
        direction: Direction,
        session: LiveSession | None,
        transport: str,
        request: Message | None = None,
    ) -> bool:
        """Whether ``message`` goes on unjudged (no interceptor, or the chain declines it); observed if so.

        Synchronous, so that a front end can forward at once, in the callback the message arrived in.
        """
        holds = self.holds
        if holds.breakpoints and holds.stops(message, direction, session.id if session else None, self.name, request):
            return False
        chain = self.chain
        if chain.interceptors:  # the one test an empty chain pays
            if not chain.declines(message, direction, request):
                return False
            if chain.observers:
                record = session.record if session is not None else None
                chain.observe_skipped(message, direction, request, record, transport, self.name)
        counters.passed(direction, message, request)
        if TAP.listeners:
            TAP.publish(message, direction, session, transport, self.name, request, FORWARD)
        if self.tapes is not None:
            self.tapes.record(message, direction, session.record if session is not None else None, transport, FORWARD)
        return True

    async def judge(
        self,
        message: Message,
        direction: Direction,
        session: LiveSession | None,
        transport: str,
        request: Message | None = None,
        waiting: Waiting | None = None,
        ask: Asker | None = None,
    ) -> Verdict:
        """Run the chain on one message; an empty chain costs one truth test, the tap one more when no one listens.

        A message the chain holds (a rule's ``approve``) or a breakpoint stops is parked until it is decided;
        ``waiting`` is called while it waits and ``ask`` sends the client the proxy's question for ``by: user``
        (see :class:`~shadowproxy.control.registry.HoldRegistry`).
        """
        if self.unwrap is not None and direction is C2S:
            inner = self.unwrap(message)
            if inner is not None:
                verdict = await self.judge(inner, direction, session, transport, request, waiting, ask)
                return forward(verdict.message or inner) if verdict.is_forward else verdict
        if self.passes(message, direction, session, transport, request):
            return FORWARD
        return await self.decide(message, direction, session, transport, request, waiting, ask)

    async def decide(
        self,
        message: Message,
        direction: Direction,
        session: LiveSession | None,
        transport: str,
        request: Message | None = None,
        waiting: Waiting | None = None,
        ask: Asker | None = None,
    ) -> Verdict:
        """:meth:`judge` for a message :meth:`passes` has said no to: the chain's verdict, parked if it holds.

        A front that tries :meth:`passes` first (when :attr:`unwrap` is ``None``) calls this for the rest, and
        builds what keeps a held message's client waiting only then."""
        record = session.record if session is not None else None
        ctx = MessageContext(
            message,
            direction,
            session=record,
            transport=transport,
            upstream=self.name if self.member_of is None else self.member_of(message, request) or self.name,
            principal=record.principal if record is not None else None,
            request=request,
        )
        chain = self.chain
        tracer = tracing.ACTIVE
        if tracer is None:
            verdict = await chain.run(ctx)
        else:
            with tracer.child("mcp.chain", **{"mcp.direction": direction.value}):
                verdict = await chain.run(ctx)
                tracer.mark(verdict)
            if direction is C2S:
                tracer.mark(verdict)  # on the request's span too
        holds = self.holds
        if verdict.action is _HOLD:
            held = verdict.message or ctx.message
            parked = counters.clock()
            verdict = await holds.park(held, direction, verdict.result, record, self.name, request, waiting, ask)
            counters.held_since(parked)
        elif holds.breakpoints and verdict.is_forward:
            held = verdict.message or ctx.message
            if holds.stops(held, direction, record.id if record else None, self.name, request):
                parked = counters.clock()
                verdict = await holds.park(held, direction, STOP, record, self.name, request, waiting)
                counters.held_since(parked)
        counters.judged(ctx, verdict)
        if chain.observers:
            chain.observe(ctx, verdict)
        if TAP.listeners:
            TAP.publish(message, direction, session, transport, self.name, request, verdict)
        if self.tapes is not None:
            self.tapes.record(message, direction, record, transport, verdict)
        restore = ctx.restore
        if restore is not None and verdict.is_forward:
            shown = verdict.message or message
            restored = restore(shown)
            if restored is not shown:
                return Verdict(verdict.action, restored, by=verdict.by)
        return verdict

    async def visible_tools(self, tools: list[Any], principal: str | None, record: SessionRecord | None) -> list[Any]:
        """What ``principal``'s ``tools/list`` would show of ``tools``: the chain judges them as that listing's
        answer (roles, rules that hide, pins), with no observer told; anything but a forward shows nothing."""
        listing = Message(REQUEST, {"jsonrpc": "2.0", "id": "shadowproxy-search", "method": "tools/list"})
        answer = Message(RESPONSE, {"jsonrpc": "2.0", "id": "shadowproxy-search", "result": {"tools": tools}})
        if not self.chain.interceptors or self.chain.declines(answer, S2C, listing):
            return tools
        ctx = MessageContext(
            answer, S2C, session=record, transport="gateway", upstream=self.name, principal=principal, request=listing
        )
        verdict = await self.chain.run(ctx)
        if not verdict.is_forward:
            return []
        result = (verdict.message or answer).result
        shown = result.get("tools") if isinstance(result, dict) else None
        return shown if isinstance(shown, list) else []

    async def open_channel(self, on_unsolicited: UnsolicitedHandler) -> Channel:
        """A new client session's channel: the upstream's own, or the era bridge's."""
        if self.bridge is not None:
            return await self.bridge.session_channel(on_unsolicited)
        return await self.upstream.open(on_unsolicited)

    async def stateless_channel(self, session: LiveSession) -> Channel:
        """The channel that serves a logical session's 2026-07-28 requests.

        Each logical session has its own, over the upstream's one stateless connection (or process): what the
        server sends during one session's request is attributed to that session, never to another's.
        """
        channel = session.channel
        if channel is None:
            async with self._stateless_lock:
                channel = session.channel
                if channel is None:
                    bridged = await self.bridge.channel_for(session.record.principal) if self.bridge else None
                    channel = bridged or await self.upstream.open(_ignore, shared=True)
                    bind = getattr(channel, "bind", None)  # a virtual server's: whose requests it carries
                    if bind is not None:
                        bind(session.record)
                    session.channel = channel
        return channel

    async def warm(self) -> None:
        """Start the stateless process now, so the first 2026-07-28 request does not wait for a child to boot."""
        try:
            await (await self.upstream.open(_ignore, shared=True)).close()
        except UpstreamError as exc:
            log.warning("upstream %s could not be started ahead of time: %s", self.name, exc.message)

    def logical_session(self, message: Message, principal: str | None, guard: Guard) -> LiveSession:
        """Group session-less requests by principal and client, for tracking and for rules; no header is invented.

        Only bounded parts of what the client sent are kept (a client name is its first
        :data:`CLIENT_FIELD` characters), and a new logical session counts against the session limits.
        """
        meta = meta_of(message)
        client = meta.get(META_CLIENT_INFO)
        name = version = None
        if isinstance(client, dict):
            name, version = client.get("name"), client.get("version")
        key = (
            self.name,
            principal,
            name[:CLIENT_FIELD] if isinstance(name, str) else None,
            version[:CLIENT_FIELD] if isinstance(version, str) else None,
        )
        session = self.sessions.logical.get(key)
        if session is not None:
            return session
        self.sessions.admit(principal, guard)
        protocol_version = meta.get(META_PROTOCOL_VERSION)
        digest = hashlib.blake2b(repr(key).encode(), digest_size=16).hexdigest()
        record = SessionRecord(
            id=f"logical-{digest}",
            upstream=self.name,
            protocol_version=protocol_version if protocol_version in KNOWN_VERSIONS else None,
            client_info=bounded_client_info(client),
            principal=principal,
            state=SessionState.ACTIVE,
            transport="http",
        )
        session = LiveSession(record, self)
        self.sessions.add_logical(key, session)
        return session

    async def close(self) -> None:
        if self.bridge is not None:
            await self.bridge.close()
        await self.upstream.close()


def _ignore(message: Message) -> None:
    """Stateless requests have no stream for unsolicited messages: 2026-07-28 uses subscriptions/listen instead."""
