"""A virtual server as an upstream: the mount and every front serve it as they serve one server.

It owns what its sessions share: the members, the list and result caches, the names, and which members are left
out (for ``/readyz``, the log and ``shadowproxy_gateway_left_out_total``). Members lost by sessions are tried
again every ``retry`` seconds by one task, which ends once all are back.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter

from shadowproxy.bridge.era import EraBridge
from shadowproxy.config.gateway import VirtualServerConfig
from shadowproxy.core.jsonrpc import Message
from shadowproxy.core.tasks import spawn
from shadowproxy.gateway.cache import ListCache, ResultCache
from shadowproxy.gateway.calls import Calls, unwrap
from shadowproxy.gateway.channel import AggregateChannel
from shadowproxy.gateway.names import Names
from shadowproxy.gateway.seams import Session, Visible
from shadowproxy.sessions.manager import LiveSession
from shadowproxy.upstreams.base import Exchange, UnsolicitedHandler, Upstream

log = logging.getLogger(__name__)

LEFT_OUT = Counter(
    "shadowproxy_gateway_left_out_total",
    "Times a member of a virtual server was left out of a session (down, failing or slow to start)",
    ("server", "member"),
)


class AggregateUpstream:
    """The :class:`~shadowproxy.upstreams.base.Upstream` of a virtual server."""

    def __init__(
        self,
        config: VirtualServerConfig,
        members: Mapping[str, Upstream],
        bridges: Mapping[str, EraBridge | None] | None = None,
    ) -> None:
        self.name = config.name
        self.config = config
        self.members = {name: members[name] for name in config.upstreams}
        self.bridges = {name: (bridges or {}).get(name) for name in config.upstreams}
        self.names = Names(config.upstreams, config.separator, config.tools)
        self.cache = ListCache(config.cache.lists)
        self.results = ResultCache(config.cache)
        self.calls = Calls(self)
        self.annotations: dict[str, Any] = {}
        self.channels: weakref.WeakSet[AggregateChannel] = weakref.WeakSet()
        self.visible: Visible | None = None
        """Set by the mount: ``search_tools`` finds only what the principal's ``tools/list`` would show."""
        self._down: dict[str, str] = {}
        self._clashes: set[str] = set()
        self._retrying: asyncio.Task[None] | None = None

    async def open(self, on_unsolicited: UnsolicitedHandler, *, shared: bool = False) -> AggregateChannel:
        """A session's channel; its members are opened by the session's first request (``initialize`` or not)."""
        owner = getattr(on_unsolicited, "__self__", None)
        # Lists are kept per principal when the channel is a session's, else per channel (a stateless one).
        scope: object = ("principal", owner.record.principal) if isinstance(owner, LiveSession) else object()
        channel = AggregateChannel(self, on_unsolicited, shared=shared, scope=scope)
        if isinstance(owner, LiveSession):
            channel.bind(owner.record)
        self.channels.add(channel)
        return channel

    def member_of(self, message: Message, request: Message | None) -> str | None:
        """The member a message is for (the chain's ``upstream``), when its name says so."""
        asked = request if request is not None and message.is_reply else message
        params = asked.params
        if not isinstance(params, dict):
            return None
        if asked.method == "tools/call":
            unwrapped = unwrap(asked) if self.config.discovery == "search" else None
            target = self.names.tool_target((unwrapped or asked).params.get("name"))  # type: ignore[union-attr,arg-type]
            return target[0] if target is not None else None
        if asked.method == "prompts/get" and isinstance(params.get("name"), str):
            target = self.names.split(params["name"])
            return target[0] if target is not None else None
        return None

    unwrap = staticmethod(unwrap)

    async def call(self, session: Session, message: Message, headers: Mapping[str, str]) -> Exchange:
        return await self.calls.call(session, message, headers)

    def shown(self, member: str, method: str, items: list[Any]) -> list[Any]:
        """A member's list items as clients see them."""
        if method == "tools/list":
            tools = [self.names.shown_tool(member, tool) for tool in items if isinstance(tool, dict)]
            shown = [tool for tool in tools if tool is not None]
            for tool in shown:
                self.annotations[tool["name"]] = tool.get("annotations")
            return shown
        if method == "prompts/list":
            prompts = [self.names.shown_prompt(member, prompt) for prompt in items if isinstance(prompt, dict)]
            return [prompt for prompt in prompts if prompt is not None]
        return [item for item in items if isinstance(item, dict)]

    def left_out(self, member: str, problem: str) -> None:
        if self._down.get(member) != problem:
            log.warning("virtual server %s: member %s left out: %s", self.name, member, problem)
        self._down[member] = problem
        LEFT_OUT.labels(self.name, member).inc()
        self.cache.invalidate(member)
        if self._retrying is None or self._retrying.done():
            self._retrying = spawn(self._retry(), name=f"gateway-retry-{self.name}")

    def joined(self, member: str) -> None:
        if self._down.pop(member, None) is not None:
            log.info("virtual server %s: member %s is back", self.name, member)

    def clash(self, uri: str, owner: str, other: str) -> None:
        if uri not in self._clashes and len(self._clashes) < 10_000:
            self._clashes.add(uri)
            log.warning("virtual server %s: %s is served by %s and %s; %s wins", self.name, uri, owner, other, owner)

    def problems(self) -> list[str]:
        """What ``/readyz`` says of this virtual server: the members left out now, and why."""
        missing: dict[str, str] = {}
        for channel in list(self.channels):
            missing.update(channel.missing)
        return [f"virtual server {self.name}: member {name} left out: {why}" for name, why in sorted(missing.items())]

    async def _retry(self) -> None:
        while True:
            await asyncio.sleep(self.config.retry)
            tasks = [task for channel in list(self.channels) for task in channel.rejoin()]
            if not tasks:
                self._down.clear()
                return
            await asyncio.wait(tasks)

    def reload(self) -> None:
        """A reload: lists and results are fetched anew."""
        self.cache.clear()
        self.results.clear()

    async def close(self) -> None:
        if self._retrying is not None:
            self._retrying.cancel()
        await asyncio.gather(*(channel.close() for channel in list(self.channels)))
