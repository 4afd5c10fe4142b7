"""The owner's side: run what other instances forward on this instance's own channels.

The member's listener hands each forwarded message here without waiting. A
forwarded request gets one task for as long as it is in flight (its answer
arrives over time and is passed back as it comes); the messages themselves are
published through the member's outbox in order, with no task and no await each.
The chain does not run here: it ran on the instance the client talks to. The upstream credentials are added
here, for the principal the forwarded message names (and with the tokens exchanged where the client is).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from shadowproxy.core.errors import SESSION_NOT_FOUND, JsonRpcError, ShadowProxyError
from shadowproxy.core.jsonrpc import Message
from shadowproxy.core.tasks import spawn
from shadowproxy.upstreams.credentials import CALLER, Caller

if TYPE_CHECKING:
    from shadowproxy.cluster.bus import Bus
    from shadowproxy.sessions.manager import LiveSession
    from shadowproxy.upstreams.base import Exchange

log = logging.getLogger(__name__)


class OwnerSide:
    """Forwarded requests, notifications, cancellations and stream moves for the sessions this instance owns."""

    def __init__(self, member: Bus) -> None:
        self.member = member
        self.running: dict[tuple[str, int], Exchange] = {}
        self.serving: set[asyncio.Task[None]] = set()
        """What was forwarded here and is not answered yet: a handover waits for it."""

    def handle(self, header: dict[str, Any], message: Message | None) -> None:
        if header["t"] == "cancel":
            exchange = self.running.pop((header["r"], header["k"]), None)
            if exchange is not None:
                spawn(exchange.close(cancel=True), name=f"cluster-cancel-{header['k']}")
            return
        task = spawn(self.serve(header, message), name=f"cluster-{header['t']}-{header['s'][:8]}")
        self.serving.add(task)
        task.add_done_callback(self.serving.discard)

    async def serve(self, header: dict[str, Any], message: Message | None) -> None:
        kind, asker, key = header["t"], header["r"], header.get("k")
        if header.get("u") is not None or "x" in header:
            # Who the client is, for the upstream credentials added here (this task's own context).
            CALLER.set(Caller(header.get("u"), None, header.get("x"), header.get("xe")))
        try:
            session = await self.session_for(header)
            # Keep the owner's copy from expiring while its clients are served through other instances.
            session.record.last_seen = time.time()
            channel = session.channel
            assert channel is not None
            if kind == "listen":
                relay = session.elsewhere = self.member.relay(asker, session.id)
                # What came while no stream was open anywhere (say, during a takeover) goes to the new one.
                while len(session.inbox) and not session.listening:
                    relay(await session.inbox.next())
            elif kind == "send":
                assert message is not None
                await channel.send(message, header.get("h") or {})
            elif kind == "req":
                assert message is not None and key is not None
                await self.answer(channel.request(message, header.get("h") or {}), message, asker, key)
        except JsonRpcError as exc:
            if key is not None:
                self.member.post(self.member.keys.node(asker), {"t": "err", "k": key, "c": exc.code, "m": exc.message})
            else:
                log.warning("a forwarded %s for session %s failed: %s", kind, header["s"][:8], exc.message)

    async def answer(self, requesting: Any, message: Message, asker: str, key: int) -> None:
        exchange: Exchange = await requesting
        self.running[(asker, key)] = exchange
        reply_to = self.member.keys.node(asker)
        try:
            while True:
                incoming = await exchange.next()
                self.member.post(reply_to, {"t": "msg", "k": key}, incoming.to_bytes())
                if incoming.is_reply and incoming.id == message.id:
                    return
        finally:
            if self.running.pop((asker, key), None) is not None:
                await exchange.close()

    async def session_for(self, header: dict[str, Any]) -> LiveSession:
        sessions = self.member.sessions
        session = sessions.get(header["s"])
        if session is None:
            mount = self.member.mounts.get(header["p"])
            if mount is not None:
                try:
                    session = await sessions.restore(header["s"], mount, header.get("u"))
                except ShadowProxyError as exc:
                    log.warning("could not restore forwarded session %s: %s", header["s"][:8], exc)
        if session is None or session.channel is None:
            raise JsonRpcError(SESSION_NOT_FOUND, "session not found on the instance that owns it")
        return session
