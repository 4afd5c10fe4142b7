"""One instance's membership of a cluster: several proxies sharing one Redis, seen by clients as one proxy.

Each instance announces itself with a heartbeat key and listens on one pub/sub
connection for two channels: its own (messages forwarded to it, and answers
for it) and the broadcast one. Three background tasks, whatever the traffic:
the listener, the publisher (drains the outbox in pipelined batches, so that
callbacks publish without awaiting) and the heartbeat.

A session whose upstream lives in a process (stdio, and any transport whose
session is tied to a connection) is owned by the instance that started it;
any other instance forwards to the owner (:mod:`.remote`) and takes the
session over when the owner is gone. A Streamable HTTP upstream's session is
carried on by whichever instance the request reaches, with the stored
upstream session id.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from shadowproxy.cluster.liveness import Liveness
from shadowproxy.cluster.owner import OwnerSide
from shadowproxy.cluster.ratelimit import SharedRateCounter
from shadowproxy.cluster.remote import RemoteChannel, RemoteExchange
from shadowproxy.cluster.wire import CLAIM_SCRIPT, Keys, frame, message_of, unframe
from shadowproxy.core.errors import UpstreamError
from shadowproxy.core.jsonrpc import Message
from shadowproxy.core.record import SessionRecord, SessionState
from shadowproxy.core.tasks import spawn
from shadowproxy.sessions.manager import LiveSession, Mount
from shadowproxy.stores import StoreError, parse_store_url
from shadowproxy.stores.base import load_record
from shadowproxy.upstreams import HttpUpstream

if TYPE_CHECKING:
    from shadowproxy.config import ClusterConfig
    from shadowproxy.sessions.manager import SessionManager

log = logging.getLogger(__name__)

RETRY = 1.0
"""Seconds between attempts to reach Redis again after the pub/sub connection broke."""


class ClusterMember:
    """This instance in the cluster: forwarding, takeover, cross-instance streams, shared counters, broadcasts."""

    def __init__(
        self,
        config: ClusterConfig,
        store_url: str,
        sessions: SessionManager,
        mounts: list[Mount],
        reload: Callable[[], Awaitable[bool]],
    ) -> None:
        spec = parse_store_url(store_url)
        self.config = config
        self.id = config.instance_id or secrets.token_hex(6)
        self.keys = Keys(spec.key_prefix if spec.key_prefix is not None else "shadowproxy:")
        self.redis = aioredis.Redis.from_url(spec.target, socket_connect_timeout=2.0)
        self._claim = self.redis.register_script(CLAIM_SCRIPT)
        self.sessions = sessions
        self.mounts = {mount.path: mount for mount in mounts}
        self.reload = reload
        self.on_held: Callable[[str], None] | None = None
        self.on_secret: Callable[[str, str], None] | None = None
        self.owner = OwnerSide(self)
        self.counter = SharedRateCounter(self)
        self.liveness = Liveness(self)
        self.exchanges: dict[int, RemoteExchange] = {}
        self.adopted: set[str] = set()
        self._queries: dict[int, Locate] = {}
        self._keys = itertools.count(1)
        self._outbox: deque[tuple[str, bytes]] = deque()
        self._wake: asyncio.Event | None = None
        self._subscribed: asyncio.Event | None = None
        self._pubsub: PubSub | None = None
        self.leaving = False
        self._left = asyncio.Event()
        """Set when the unsubscribe of a handover went through: all that was published here before it was read."""
        self._flushed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def next_key(self) -> int:
        return next(self._keys)

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._tasks = [
            spawn(self._listen(), name="cluster-listener"),
            spawn(self._publish_outbox(), name="cluster-publisher"),
            spawn(self.liveness.run(), name="cluster-heartbeat"),
            spawn(self.counter.run(), name="cluster-rate-sync"),
        ]
        try:
            # Serving before this instance can hear forwarded messages would make it look dead to the others.
            await asyncio.wait_for(self._subscribed.wait(), self.config.heartbeat_ttl)
        except TimeoutError:
            log.warning("cluster: not subscribed to Redis yet; instance %s keeps trying", self.id)
        log.info("cluster: instance %s joined", self.id)

    async def handover(self, limit: float) -> None:
        """Stop owning before stopping: the other instances take this one's sessions over at their next message
        for them, while what was forwarded here already is answered (within ``limit`` seconds)."""
        self.leaving = True
        for task in self._tasks:
            if task.get_name() == "cluster-heartbeat":
                task.cancel()  # this instance is no owner to be found any more
        leaving = self.keys.leaving(self.id)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(leaving, b"1", px=int((limit + self.config.heartbeat_ttl) * 1000))
                pipe.delete(self.keys.heartbeat(self.id))
                await pipe.execute()
            async with asyncio.timeout(limit):
                pubsub = self._pubsub
                if pubsub is not None:
                    # What was published here before the unsubscribe is still read and served.
                    await pubsub.unsubscribe(self.keys.node(self.id))
                    await self._left.wait()
                if self.owner.serving:
                    await asyncio.wait(self.owner.serving)
                assert self._wake is not None
                self._flushed.clear()
                self._wake.set()
                await self._flushed.wait()
            await self.redis.delete(leaving)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("cluster: instance %s did not hand its sessions over cleanly: %r", self.id, exc)
        log.info("cluster: instance %s handed its sessions over", self.id)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await self.redis.delete(self.keys.heartbeat(self.id))
        except (RedisError, OSError):
            pass
        await self.redis.aclose()

    # Publishing.

    async def publish(self, channel: str, header: dict[str, Any], body: bytes = b"") -> int:
        """Publish now; the number of instances that received it (0: the addressee is gone)."""
        try:
            return int(await self.redis.publish(channel, frame(header, body)))
        except (RedisError, OSError) as exc:
            raise UpstreamError(f"the cluster's Redis cannot be reached: {exc}") from None

    def post(self, channel: str, header: dict[str, Any], body: bytes = b"") -> None:
        """Publish soon, in order, without awaiting: for callbacks and streams of answers."""
        self._outbox.append((channel, frame(header, body)))
        assert self._wake is not None
        self._wake.set()

    async def _publish_outbox(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                batch = [self._outbox.popleft() for _ in range(min(len(self._outbox), 500))]
                try:
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for channel, data in batch:
                            pipe.publish(channel, data)
                        await pipe.execute()
                except (RedisError, OSError) as exc:
                    log.warning("cluster: %d message(s) could not be published: %s", len(batch), exc)
            self._flushed.set()

    def relay(self, instance: str, session_id: str) -> Callable[[Message], None]:
        """A session's unsolicited messages, sent to the instance that holds the client's stream."""
        channel = self.keys.node(instance)

        def send(message: Message) -> None:
            self.post(channel, {"t": "note", "s": session_id}, message.to_bytes())

        return send

    async def closed(self, record: SessionRecord) -> None:
        """Tell every instance that a client ended this session, before the client hears it is over.

        A tombstone comes first: other instances' workers may still write their older, active copies of
        the record, and an instance that has let go of the session must not bring it back from those.
        """
        assert self.sessions.store is not None
        try:
            await self.redis.set(self.keys.closed(record.id), b"1", px=int(self.sessions.ttl * 1000))
            await self.sessions.store.put_many([record])
            await self.publish(self.keys.broadcast, {"t": "closed", "s": record.id, "r": self.id})
        except (StoreError, UpstreamError, RedisError, OSError) as exc:
            log.warning("cluster: could not tell the others that session %s ended: %s", record.id[:8], exc)

    async def reload_all(self) -> int:
        """Ask every instance (this one included) to reload its rules; the number that heard it."""
        return await self.publish(self.keys.broadcast, {"t": "reload", "r": self.id})

    # Listening.

    async def _listen(self) -> None:
        assert self._subscribed is not None
        while True:
            pubsub = self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                own = [] if self.leaving else [self.keys.node(self.id)]
                await pubsub.subscribe(*own, self.keys.broadcast)
                self._subscribed.set()
                while True:
                    item = await pubsub.get_message(timeout=None)
                    if item is not None:
                        self._dispatch(item["data"])
                    elif self.leaving and not pubsub.pending_unsubscribe_channels:
                        self._left.set()
            except (RedisError, OSError) as exc:
                log.warning("cluster: the pub/sub connection broke (%s); reconnecting", exc)
                await asyncio.sleep(RETRY)
            finally:
                await pubsub.aclose()

    def _dispatch(self, data: bytes) -> None:
        try:
            header, body = unframe(data)
            kind = header["t"]
            message = message_of(body) if body and kind != "seen" else None
        except (ValueError, KeyError) as exc:
            log.warning("cluster: an unreadable frame was dropped: %s", exc)
            return
        if kind == "msg" or kind == "err":
            exchange = self.exchanges.get(header["k"])
            if exchange is None:
                return
            if message is not None:
                exchange.put(message)
            else:
                exchange.fail(UpstreamError(header["m"], code=header["c"]))
        elif kind == "note":
            session = self.sessions.live.get(header["s"])
            if session is not None and message is not None:
                session.inbox.put(message)
        elif kind in ("req", "send", "listen", "cancel"):
            self.owner.handle(header, message)
        elif kind == "who":
            session = self.sessions.live.get(header["s"])
            held = orjson.dumps(session.record.to_dict()) if session is not None else b""
            self.post(self.keys.node(header["r"]), {"t": "seen", "q": header["q"]}, held)
        elif kind == "seen":
            query = self._queries.get(header["q"])
            if query is not None:
                query.answer(load_record(body) if body else None)
        elif kind == "closed" and header["r"] != self.id:
            if header["s"] in self.sessions.live:
                spawn(self.sessions.close(header["s"], announce=False), name=f"cluster-close-{header['s'][:8]}")
        elif kind == "moved":
            self._moved(header["s"], header["o"])
        elif kind == "rate":
            self.counter.learn(header["k"], header["w"], header["i"], header["c"])
        elif kind == "reload":
            spawn(self._reload(), name="cluster-reload")
        elif kind == "held" and self.on_held is not None and header["r"] != self.id:
            self.on_held(header["h"])
        elif kind == "secret" and self.on_secret is not None and header["r"] != self.id:
            self.on_secret(header["u"], header["p"])

    async def _reload(self) -> None:
        if not await self.reload():
            log.warning("cluster: a reload asked for by another instance kept the old rules")

    async def listening(self, instance: str) -> bool:
        """Whether an instance judged alive listens on its channel again (within ``heartbeat_ttl``)."""
        return await self.liveness.listening(instance)

    # Sessions: finding them, owning them.

    def owns_upstream(self, mount: Mount) -> bool:
        """True when a session's upstream lives in the process that opened it, so only that one can serve it."""
        return not isinstance(mount.upstream, HttpUpstream)

    async def claim(self, session_id: str, owner: str | None) -> str:
        """Become the session's owner unless a live instance is; the owner, decided atomically in Redis."""
        try:
            won = await self._claim(
                keys=[self.keys.owner(session_id)],
                args=[self.id, owner or "", self.keys.prefix, int(self.sessions.ttl * 1000)],
            )
        except (RedisError, OSError) as exc:
            raise UpstreamError(f"the cluster's Redis cannot be reached: {exc}") from None
        return won.decode() if isinstance(won, bytes) else str(won)

    def adopt(self, session: LiveSession) -> None:
        """This instance took the session over: keep its owner key alive, record the new owner, tell the others."""
        self.adopted.add(session.id)
        session.record.owner = self.id
        self.sessions.changes.record(session.record)
        self.post(self.keys.broadcast, {"t": "moved", "s": session.id, "o": self.id})

    def _moved(self, session_id: str, owner: str) -> None:
        """Point a forwarding session at its new owner; a stream held here asks the new owner for its messages."""
        session = self.sessions.live.get(session_id)
        channel = session.channel if session is not None else None
        if session is None or not isinstance(channel, RemoteChannel) or owner == self.id:
            return
        channel.owner = owner
        if session.listening:
            spawn(channel.listen({}), name=f"cluster-listen-{session_id[:8]}")

    async def locate(self, session_id: str) -> SessionRecord | None:
        """Ask every instance for a session it holds: a fresh one may not have reached the store yet."""
        query = Locate()
        key = self.next_key()
        self._queries[key] = query
        try:
            heard = await self.publish(self.keys.broadcast, {"t": "who", "s": session_id, "q": key, "r": self.id})
            query.expect(heard)
            async with asyncio.timeout(self.config.locate_timeout):
                return await query.found
        except TimeoutError:
            return None
        finally:
            del self._queries[key]

    async def restore(self, session_id: str, mount: Mount, principal: str | None) -> LiveSession | None:
        """The cluster's restore: the session from the store or from the instance holding it, owned or forwarded."""
        sessions = self.sessions
        assert sessions.store is not None
        try:
            if await self.redis.exists(self.keys.closed(session_id)):
                return None
        except (RedisError, OSError) as exc:
            raise StoreError(f"the cluster's Redis cannot be reached: {exc}") from None
        record = await sessions.store.get(session_id)
        if record is None or record.state is not SessionState.ACTIVE:
            record = await self.locate(session_id) or record
        if record is None or not sessions.usable(record, mount, principal):
            return None
        if not self.owns_upstream(mount):
            return await sessions.resume(record, mount)
        owner = await self.claim(record.id, record.owner)
        if owner == self.id:
            session = await sessions.resume(record, mount)
            if record.owner != self.id:
                log.info("took over session %s from lost instance %s", session_id[:8], record.owner)
                self.adopt(session)
            return session
        session = LiveSession(record, mount)
        session.channel = RemoteChannel(self, session, owner)
        sessions.add(session)
        log.info("session %s is served here, its upstream at instance %s", session_id[:8], owner)
        return session


class Locate:
    """Answers to one ``who`` broadcast: the first record wins; all instances saying no is a miss."""

    def __init__(self) -> None:
        self.found: asyncio.Future[SessionRecord | None] = asyncio.get_running_loop().create_future()
        self.answers = 0
        self.expected: int | None = None

    def answer(self, record: SessionRecord | None) -> None:
        self.answers += 1
        if record is not None and record.state is SessionState.ACTIVE and not self.found.done():
            self.found.set_result(record)
        self._settle()

    def expect(self, count: int) -> None:
        self.expected = count
        self._settle()

    def _settle(self) -> None:
        if self.expected is not None and self.answers >= self.expected and not self.found.done():
            self.found.set_result(None)
