"""What the gateway's parts know of each other: a session (:class:`Session`, an aggregate channel) and its
virtual server (:class:`Gateway`, the aggregate upstream), as Protocols, so that routing and calls need
neither class."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableSet
from typing import Any, Protocol

from shadowproxy.bridge.era import EraBridge
from shadowproxy.config.gateway import VirtualServerConfig
from shadowproxy.core.jsonrpc import Message
from shadowproxy.gateway.cache import ListCache, ResultCache
from shadowproxy.gateway.member import MemberLink
from shadowproxy.gateway.names import Names
from shadowproxy.upstreams.base import Exchange, Upstream

Visible = Callable[[list[Any], "str | None", Any], Awaitable[list[Any]]]
"""What a principal's ``tools/list`` would show of these tools (``tools, principal, session record``): the chain's
roles, rules and pins judge them as a listing. Set on a virtual server by its mount."""


class Gateway(Protocol):
    """A virtual server, as its sessions see it."""

    name: str
    config: VirtualServerConfig
    members: dict[str, Upstream]
    bridges: Mapping[str, EraBridge | None]
    names: Names
    cache: ListCache
    results: ResultCache
    annotations: dict[str, Any]
    channels: MutableSet[Any]
    visible: Visible | None

    def shown(self, member: str, method: str, items: list[Any]) -> list[Any]: ...

    def left_out(self, member: str, problem: str) -> None: ...

    def joined(self, member: str) -> None: ...

    def clash(self, uri: str, owner: str, other: str) -> None: ...

    async def call(self, session: Session, message: Message, headers: Mapping[str, str]) -> Exchange: ...


class Session(Protocol):
    """One client session of a virtual server, as routing and calls see it."""

    gateway: Gateway
    scope: object
    principal: str | None
    record: Any
    links: dict[str, MemberLink]
    resources: dict[str, str]

    async def member_list(self, link: MemberLink, message: Message, headers: Mapping[str, str]) -> list[Any]: ...

    async def forward(
        self,
        member: str,
        routed: Message,
        original: Message,
        headers: Mapping[str, str],
        keep: Callable[[Any], None] | None = None,
    ) -> Exchange: ...
