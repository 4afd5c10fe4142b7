"""The era bridge behind a stdio front: a client of one protocol era in front of a server of the other.

A stdio client is one session, so the choice is made once, by what the client and the server first say:

- the client's first request is a 2026-07-28 one and the mount's bridge finds the server speaks only the
  handshake era (:meth:`~shadowproxy.proxy.mount.Mount.stateless_channel` asks it, once per upstream): every
  message of the session goes to the bridge's :class:`~shadowproxy.bridge.channel.BridgedChannel`, as a
  Streamable HTTP client's would;
- the server refuses the client's ``initialize`` as a 2026-07-28-only server does: the bridge answers it from
  ``server/discover`` and every later message goes to its :class:`~shadowproxy.bridge.legacy_client.LegacyChannel`.

Until then, and for a session that needs neither, the front sends to its server as it always did. A bridged
request is read by a task of its own (:func:`~shadowproxy.fronts.stdio.relay.relay`); a 2026-07-28 client's
``notifications/cancelled`` ends that task, which closes the request's stream upstream as a closed HTTP response
would (the bridge sends the server ``notifications/cancelled``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from shadowproxy.bridge.deciding import refused_initialize
from shadowproxy.core.errors import UpstreamError
from shadowproxy.core.jsonrpc import Message
from shadowproxy.core.tasks import spawn
from shadowproxy.fronts.stdio.relay import Put, is_modern, relay
from shadowproxy.proxy.mount import Mount
from shadowproxy.sessions.manager import LiveSession
from shadowproxy.upstreams.base import Channel


class EraRoute:
    """Whether a stdio session goes through the era bridge, and its bridged channel once it does."""

    __slots__ = ("channel", "mount", "pending", "put", "relays", "session")

    def __init__(self, mount: Mount, session: LiveSession, put: Put) -> None:
        self.mount = mount
        self.session = session
        self.put = put
        bridge = mount.bridge
        # The first request has to be seen before anything goes up: only when a 2026-07-28 client may need the
        # bridge (a mount without one, or whose server is known to meet such clients, pays nothing more).
        self.pending = bridge is not None and bridge.bridged is not False
        self.channel: Channel | None = None
        self.relays: dict[object, asyncio.Task[None]] = {}

    def may_refuse(self, request: Message | None) -> bool:
        """Whether an error answering ``request`` may be a 2026-07-28-only server refusing ``initialize``."""
        bridge = self.mount.bridge
        return (
            request is not None
            and request.data.get("method") == "initialize"
            and bridge is not None
            and bridge.legacy is not False
            and self.channel is None
        )

    async def first(self, request: Message, ask: Callable[[], Awaitable[bool]] | None = None) -> None:
        """The client's first request: a 2026-07-28 one is bridged, from here on, if the server needs it. ``ask``
        asks the front's own server whether it speaks 2026-07-28 (a stdio front's child: no other process is
        started to find out); without it the bridge asks the upstream."""
        self.pending = False
        bridge = self.mount.bridge
        if not is_modern(request) or bridge is None:
            return
        if ask is not None and bridge.bridged is None:
            bridge.settle(await ask())
        if bridge.bridged is False:
            return
        channel = await self.mount.stateless_channel(self.session)
        if getattr(channel, "bridged", False):
            self.channel = channel

    async def refused(self, initialize: Message, refusal: Message) -> Message:
        """The server's error to ``initialize``: the answer the bridge makes from ``server/discover`` when it is a
        2026-07-28-only server's refusal (the session is bridged from here on), else the error as it came."""
        bridge = self.mount.bridge
        if bridge is None or not refused_initialize(refusal, initialize):
            return refusal
        try:
            bridged = await bridge.bridge_session(initialize, self.put)
        except UpstreamError:
            return refusal
        if bridged is None:
            return refusal
        channel, answer = bridged
        self.channel = self.session.channel = channel  # the session's channel is what the tap reads "bridged" off
        # A stdio client has no GET stream to ask for: the list-changed notifications are listened for at once.
        with contextlib.suppress(UpstreamError):
            await channel.listen({})
        return answer

    async def forward(self, message: Message) -> None:
        """A client message the chain let through, to the bridged channel."""
        channel = self.channel
        assert channel is not None
        if message.is_request:
            request_id = message.data["id"]
            task = spawn(relay(channel, message, {}, self.put), name=f"bridged-{message.id}")
            self.relays[request_id] = task
            task.add_done_callback(lambda _: self.relays.pop(request_id, None))
            return
        if message.method == "notifications/cancelled":
            params = message.params if isinstance(message.params, dict) else {}
            task = self.relays.get(params.get("requestId"))
            if task is not None:
                task.cancel()
                return
        with contextlib.suppress(UpstreamError):
            await channel.send(message, {})

    def close(self) -> None:
        for task in list(self.relays.values()):
            task.cancel()
