"""One client session of a virtual server: one channel per member, merged answers, routed requests.

Members are opened at once and concurrently: at the client's ``initialize`` (handshake era), or at its first
request (2026-07-28). ``initialize`` waits ``join_timeout`` at most; a member slower than that, or one that fails,
is left out (its lists are missing, its calls fail with -32000 naming it) and joins when it answers, with
``notifications/tools/list_changed`` (and the prompts' and resources') sent to the client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from shadowproxy.core.errors import (
    INVALID_PARAMS,
    UPSTREAM_UNAVAILABLE,
    JsonRpcError,
    UpstreamError,
)
from shadowproxy.core.jsonrpc import Message, RequestId, decode, error_response, notification
from shadowproxy.core.tasks import spawn
from shadowproxy.gateway import headers as member_headers
from shadowproxy.gateway import lists, merge, routes
from shadowproxy.gateway.exchange import MemberExchange, Reply
from shadowproxy.gateway.member import MemberLink, ask, gateway_id
from shadowproxy.gateway.seams import Gateway
from shadowproxy.upstreams.base import Exchange, UnsolicitedHandler

log = logging.getLogger(__name__)

MAX_TRACKED = 1024
"""Server requests awaiting the client's answer, and client requests in flight, remembered per session."""
CHANGED = tuple(lists.CHANGED)


class AggregateChannel:
    """A :class:`~shadowproxy.upstreams.base.Channel` over the channels of a virtual server's members."""

    upstream_session_id = None

    def __init__(self, gateway: Gateway, handler: UnsolicitedHandler, *, shared: bool, scope: object):
        self.gateway = gateway
        self.handler = handler
        self.shared = shared
        self.scope = scope
        self.principal: str | None = None
        self.record: Any = None
        self.links = {
            name: MemberLink(name, upstream, gateway.bridges.get(name)) for name, upstream in gateway.members.items()
        }
        self.init: Message | None = None
        self.initialized = False
        self.started = False
        self.answered = False
        self.headers: Mapping[str, str] = {}
        self.listen_headers: Mapping[str, str] | None = None
        self.asked: dict[str, tuple[str, RequestId]] = {}
        self.inflight: dict[RequestId, str] = {}
        self.resources: dict[str, str] = {}

    def bind(self, record: Any) -> None:
        """The session this channel serves (its principal's ``search_tools`` finds what it may see); a logical
        session's is told by the mount that opened it."""
        self.principal, self.record = record.principal, record

    # -- members joining and leaving

    async def start(self, headers: Mapping[str, str]) -> None:
        """Open every member concurrently; wait ``join_timeout`` at most, the slower ones join later."""
        self.started = True
        self.headers = headers
        joining = [self._joining(link) for link in self.links.values() if not link.up]
        if joining:
            # At least one member is waited for, however slow; the others for ``join_timeout`` at most.
            pending = set(joining)
            while pending and not any(link.up for link in self.links.values()):
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if pending:
                await asyncio.wait(pending, timeout=self.gateway.config.join_timeout)
            for link in self.links.values():
                if link.joining is not None and not link.joining.done():
                    link.problem = "still starting"
                    self.gateway.left_out(link.name, link.problem)
        self.answered = True

    def _joining(self, link: MemberLink) -> asyncio.Task[None]:
        if link.joining is None or link.joining.done():
            link.joining = spawn(self._join(link), name=f"gateway-join-{link.name}")
        return link.joining

    async def _join(self, link: MemberLink) -> None:
        try:
            await link.start(
                lambda message: self._unsolicited(link.name, message),
                shared=self.shared,
                init=self.init,
                initialized=self.initialized,
                headers=self.headers,
                principal=self.principal,
            )
        except (JsonRpcError, OSError) as exc:
            problem = exc.message if isinstance(exc, JsonRpcError) else str(exc)
            link.lose(problem)
            self.gateway.left_out(link.name, problem)
            return
        self.gateway.joined(link.name)
        if self.listen_headers is not None:
            self._listen(link)
        if self.answered:
            # The client has its lists already: it is told they changed.
            self.gateway.cache.invalidate(link.name)
            self.resources.clear()
            for method in CHANGED:
                self.handler(notification(method))

    def rejoin(self) -> list[asyncio.Task[None]]:
        """Try again the members this session lost; the tasks that do."""
        return [self._joining(link) for link in self.links.values() if not link.up and self.started]

    @property
    def missing(self) -> dict[str, str]:
        return {name: link.problem or "" for name, link in self.links.items() if not link.up and self.started}

    def lost(self, member: str, exc: UpstreamError) -> UpstreamError:
        """A member failed under a request: left out until it is back; the error the request gets."""
        link = self.links[member]
        link.lose(exc.message)
        self.gateway.left_out(member, exc.message)
        return self.unavailable(member)

    def unavailable(self, member: str) -> UpstreamError:
        problem = self.links[member].problem
        return UpstreamError(f"upstream {member!r} of virtual server {self.gateway.name!r} is unavailable: {problem}")

    # -- the Channel protocol

    async def request(self, message: Message, headers: Mapping[str, str]) -> Exchange:
        try:
            return await self._request(message, headers)
        except JsonRpcError as exc:
            return Reply(error_response(message.id, exc))

    async def _request(self, message: Message, headers: Mapping[str, str]) -> Exchange:
        method = message.method or ""
        if method == "initialize":
            self.init = message
            await self.start(headers)
            up = [link.result for link in self.links.values() if link.up]
            if not up:
                problems = "; ".join(f"{name}: {problem}" for name, problem in self.missing.items())
                raise JsonRpcError(UPSTREAM_UNAVAILABLE, f"no member of {self.gateway.name!r} answered ({problems})")
            return Reply(merge.answer(message, merge.initialize(self.gateway.name, up)))
        if not self.started:
            await self.start(headers)
        if method == "ping":
            return Reply(merge.answer(message, {}))
        if method in lists.ITEMS:
            return Reply(merge.answer(message, await self.merged_list(message, headers)))
        if method in ("server/discover", "logging/setLevel"):
            answers = await self.everyone(message, headers)
            result = merge.discover(self.gateway.name, answers) if method == "server/discover" else {}
            return Reply(merge.answer(message, result))
        if method == "tools/call":
            return await self.gateway.call(self, message, headers)
        member, routed = await routes.route(self, message, headers)
        return await self.forward(member, routed, message, headers)

    async def forward(
        self,
        member: str,
        routed: Message,
        original: Message,
        headers: Mapping[str, str],
        keep: Callable[[Any], None] | None = None,
    ) -> Exchange:
        """Send ``routed`` to ``member``; its answer goes back under ``original``'s id."""
        link = self.links.get(member)
        if link is None:
            raise JsonRpcError(INVALID_PARAMS, f"no member {member!r} in virtual server {self.gateway.name!r}")
        if not link.up or link.channel is None:
            raise self.unavailable(member)
        try:
            inner = await link.channel.request(routed, self.headers_for(link, routed, headers))
        except UpstreamError as exc:
            raise self.lost(member, exc) from None
        if len(self.inflight) >= MAX_TRACKED:
            del self.inflight[next(iter(self.inflight))]
        self.inflight[original.id] = member  # type: ignore[index]
        return MemberExchange(member, inner, original, self.translate, self.lost, keep)

    async def everyone(self, message: Message, headers: Mapping[str, str]) -> list[dict[str, Any]]:
        """Ask every member that serves; the results of those that answered."""

        async def one(link: MemberLink) -> dict[str, Any] | None:
            assert link.channel is not None
            try:
                asked = message.evolve(id=gateway_id())
                reply = await ask(link.channel, asked, self.headers_for(link, asked, headers), self._other(link.name))
            except UpstreamError as exc:
                self.lost(link.name, exc)
                return None
            return reply.result if isinstance(reply.result, dict) else None

        answers = await asyncio.gather(*(one(link) for link in self.links.values() if link.up))
        return [answer for answer in answers if answer is not None]

    async def merged_list(self, message: Message, headers: Mapping[str, str]) -> dict[str, Any]:
        method = message.method or ""
        per_member = await asyncio.gather(*(self.member_list(link, message, headers) for link in self.links.values()))
        items = [item for member_items in per_member for item in member_items]
        if method == "tools/list" and self.gateway.config.discovery == "search":
            items = self.gateway.calls.meta_tools()
        shown, cursor = lists.page(items, message, self.gateway.config.page_size)
        result: dict[str, Any] = {lists.ITEMS[method]: shown}
        if cursor is not None:
            result["nextCursor"] = cursor
        if merge.modern(message):
            result.update(ttlMs=0, cacheScope="private")
        return result

    async def member_list(self, link: MemberLink, message: Message, headers: Mapping[str, str]) -> list[Any]:
        """A member's list as clients see it (namespaced, filtered), from the cache when it holds it."""
        if not link.up or link.channel is None:
            return []
        method = message.method or ""
        cache = self.gateway.cache
        items = cache.get(link.name, method, self.scope)
        if items is None:
            try:
                raw, first = await lists.fetch(
                    link.channel, message, self.headers_for(link, message, headers), self._other(link.name)
                )
            except UpstreamError as exc:
                self.lost(link.name, exc)
                return []
            except JsonRpcError as exc:
                log.info("member %s of %s answered %s with an error: %s", link.name, self.gateway.name, method, exc)
                return []
            items = self.gateway.shown(link.name, method, raw)
            cache.put(link.name, method, self.scope, items, first)
        if method == "resources/list":
            for resource in items:
                self.index(resource.get("uri"), link.name)
        return items

    def headers_for(self, link: MemberLink, message: Message, passed: Mapping[str, str]) -> dict[str, str]:
        return member_headers.for_member(message, passed, link.result.get("protocolVersion"))

    def index(self, uri: Any, member: str) -> None:
        if not isinstance(uri, str):
            return
        owner = self.resources.setdefault(uri, member)
        if owner != member:
            self.gateway.clash(uri, owner, member)

    async def send(self, message: Message, headers: Mapping[str, str]) -> None:
        method = message.method
        if message.is_reply:
            asked = self.asked.pop(message.id, None) if isinstance(message.id, str) else None
            if asked is not None:
                await self._send(asked[0], message.evolve(id=asked[1]), headers)
            return
        if method == "notifications/cancelled":
            member = self.inflight.get((message.params or {}).get("requestId"))  # type: ignore[arg-type]
            if member is not None:
                await self._send(member, message, headers)
            return
        if method == "notifications/initialized":
            self.initialized = True
        await asyncio.gather(*(self._send(name, message, headers) for name, link in self.links.items() if link.up))

    async def _send(self, member: str, message: Message, headers: Mapping[str, str]) -> None:
        link = self.links[member]
        if not link.up or link.channel is None:
            return
        try:
            await link.channel.send(message, self.headers_for(link, message, headers))
        except UpstreamError as exc:
            self.lost(member, exc)

    async def resume(self, upstream_session_id: str | None, init_request: str | None) -> None:
        """A session restored after a restart: every member gets the client's handshake again."""
        if init_request is not None:
            init = decode(init_request.encode())
            self.init = init if isinstance(init, Message) else None
        self.initialized = self.init is not None
        await self.start(self.headers)

    async def listen(self, headers: Mapping[str, str]) -> None:
        """Each member's own stream is read into the session's inbox while the session lives."""
        self.listen_headers = headers
        for link in self.links.values():
            if link.up:
                self._listen(link)

    def _listen(self, link: MemberLink) -> None:
        if link.listener is None or link.listener.done():
            link.listener = spawn(self._pump(link), name=f"gateway-listen-{link.name}")

    async def _pump(self, link: MemberLink) -> None:
        assert link.channel is not None and self.listen_headers is not None
        try:
            negotiated = link.result.get("protocolVersion")
            source = await link.channel.listen(member_headers.for_stream(self.listen_headers, negotiated))
        except UpstreamError as exc:
            log.info("no stream from member %s: %s", link.name, exc.message)
            return
        if source is None:
            return
        try:
            while True:
                self._unsolicited(link.name, await source.next())
        except JsonRpcError:
            return
        finally:
            await source.close(cancel=True)

    async def close(self) -> None:
        self.gateway.channels.discard(self)
        await asyncio.gather(*(link.close() for link in self.links.values()))

    async def detach(self) -> None:
        self.gateway.channels.discard(self)
        await asyncio.gather(*(link.close(detach=True) for link in self.links.values()))

    # -- what members send

    def _other(self, member: str) -> UnsolicitedHandler:
        return lambda message: self._unsolicited(member, message)

    def _unsolicited(self, member: str, message: Message) -> None:
        translated = self.translate(member, message)
        if translated is not None:
            self.handler(translated)

    def translate(self, member: str, message: Message) -> Message | None:
        """A member's message as the client gets it: server requests renumbered (members' ids may collide),
        list changes noted; ``None`` for what the client must not see."""
        if message.is_request:
            if len(self.asked) >= MAX_TRACKED:
                del self.asked[next(iter(self.asked))]
            new_id = gateway_id()
            self.asked[new_id] = (member, message.id)  # type: ignore[assignment]
            return message.evolve(id=new_id)
        if message.is_reply:
            return None
        changed = lists.CHANGED.get(message.method or "")
        if changed is not None:
            self.gateway.cache.invalidate(member, changed)
            if "resources/list" in changed:
                self.resources.clear()
        elif message.method == "notifications/cancelled":
            asked = (member, (message.params or {}).get("requestId"))
            ours = next((key for key, value in self.asked.items() if value == asked), None)
            if ours is None:
                return None
            return message.evolve(params={**(message.params or {}), "requestId": ours})
        return message
