"""What the parts of a cluster member share: the member as its owner side, its remote channels and its shared
rate counter see it (a :class:`~shadowproxy.cluster.member.ClusterMember`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from shadowproxy.cluster.wire import Keys
from shadowproxy.core.jsonrpc import Message

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from shadowproxy.config import ClusterConfig
    from shadowproxy.sessions.manager import LiveSession, Mount, SessionManager


class Bus(Protocol):
    """This instance on the cluster's Redis: its id and keys, and the messages it sends to other instances."""

    id: str
    config: ClusterConfig
    keys: Keys
    redis: aioredis.Redis
    sessions: SessionManager
    mounts: dict[str, Mount]
    exchanges: dict[int, Any]
    """Requests forwarded to the instance that owns their session, by key, until the answer is in."""
    adopted: set[str]
    """Sessions whose owner key this instance keeps alive."""

    def owns_upstream(self, mount: Mount) -> bool: ...

    def next_key(self) -> int: ...

    async def publish(self, channel: str, header: dict[str, Any], body: bytes = b"") -> int: ...

    def post(self, channel: str, header: dict[str, Any], body: bytes = b"") -> None: ...

    def relay(self, instance: str, session_id: str) -> Callable[[Message], None]: ...

    async def claim(self, session_id: str, owner: str | None) -> str: ...

    def adopt(self, session: LiveSession) -> None: ...

    async def listening(self, instance: str) -> bool: ...
