"""A handshake-era client's session in front of a server that speaks only 2026-07-28.

The proxy answers ``initialize`` itself, from the server's ``server/discover``, and keeps the session (the
client's ``Mcp-Session-Id`` is the proxy's, as always). Each request goes up as a 2026-07-28 one: the
envelope in ``_meta`` built from what the client said in ``initialize``, and the ``MCP-Protocol-Version``,
``Mcp-Method`` and ``Mcp-Name`` headers. An ``InputRequiredResult`` becomes the matching server-to-client
requests on the request's stream; once the client has answered them all, the request is sent again with the
answers and the ``requestState``, and its stream carries on. ``ping`` and ``logging/setLevel``, which
2026-07-28 dropped, are answered by the proxy; the GET stream and ``resources/subscribe`` become
``subscriptions/listen`` streams (:mod:`~shadowproxy.bridge.legacy_listen`).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Mapping
from typing import Any

from shadowproxy.bridge.legacy_listen import LIST_CHANGED, LISTED, Subscriptions, listen_request, pump
from shadowproxy.bridge.shapes import envelope, initialize_result, modern_headers
from shadowproxy.core.errors import INTERNAL_ERROR, JsonRpcError, UpstreamError
from shadowproxy.core.jsonrpc import Kind, Message, decode, result_response
from shadowproxy.core.tasks import spawn
from shadowproxy.upstreams.base import Answered, Channel, Exchange, UnsolicitedHandler, final_reply

ANSWERED_HERE = frozenset({"ping", "logging/setLevel"})
DROPPED = frozenset({"notifications/initialized", "notifications/roots/list_changed"})
MAX_ROUNDS = 10
DISCOVER_TIMEOUT = 30.0
_asked_ids = itertools.count(1)


class LegacyChannel:
    """A handshake-era session carried as 2026-07-28 requests on the upstream's stateless channel."""

    upstream_session_id = None
    bridged = True

    def __init__(
        self, channel: Channel, on_unsolicited: UnsolicitedHandler, count: Callable[[str | None], None]
    ) -> None:
        self.channel = channel
        self.count = count
        self.on_unsolicited = on_unsolicited
        self.subscriptions = Subscriptions()
        self.client: dict[str, Any] = {}
        self.asked: dict[object, tuple[ModernExchange, str]] = {}
        self.exchanges: dict[object, ModernExchange] = {}

    def remember(self, initialize: Message) -> None:
        params = initialize.params if isinstance(initialize.params, dict) else {}
        self.client = {"clientInfo": params.get("clientInfo"), "capabilities": params.get("capabilities")}

    async def answer_initialize(self, initialize: Message) -> Message:
        self.remember(initialize)
        probe = Message(Kind.REQUEST, {"jsonrpc": "2.0", "id": initialize.id, "method": "server/discover"})
        probe = envelope(probe, self.client)
        exchange = await self.channel.request(probe, modern_headers(probe))
        try:
            async with asyncio.timeout(DISCOVER_TIMEOUT):
                reply = await final_reply(exchange)
        except TimeoutError:
            raise UpstreamError("the upstream did not answer in time") from None
        if reply.kind is not Kind.RESPONSE or not isinstance(reply.result, dict):
            return reply
        params = initialize.params if isinstance(initialize.params, dict) else {}
        return result_response(initialize.id, initialize_result(reply.result, params.get("protocolVersion")))  # type: ignore[arg-type]

    async def request(self, message: Message, headers: Mapping[str, str]) -> Exchange:
        method = message.method
        self.count(method)
        if method == "initialize":
            return Answered(await self.answer_initialize(message))
        if method in ANSWERED_HERE:
            if method == "logging/setLevel":
                # Said again on every request from here on, as 2026-07-28 has it.
                self.client["logLevel"] = (message.params or {}).get("level")
            return Answered(result_response(message.id, {}))  # type: ignore[arg-type]
        if method in ("resources/subscribe", "resources/unsubscribe"):
            uri = (message.params or {}).get("uri")
            if isinstance(uri, str):
                await self.follow(uri, method == "resources/subscribe")
            return Answered(result_response(message.id, {}))  # type: ignore[arg-type]
        exchange = ModernExchange(self, message)
        await exchange.start(message)
        return exchange

    async def up(self, message: Message) -> Exchange:
        sent = envelope(message, self.client)
        return await self.channel.request(sent, modern_headers(sent))

    async def send(self, message: Message, headers: Mapping[str, str]) -> None:
        if message.is_reply:
            asked = self.asked.pop(message.id, None)
            if asked is not None:
                exchange, key = asked
                exchange.answered(key, message)
            return
        if message.method == "notifications/cancelled":
            # 2026-07-28 cancels by closing the request's stream.
            request_id = (message.params or {}).get("requestId")
            exchange = self.exchanges.get(request_id)
            if exchange is not None:
                await exchange.close(cancel=True)

    async def resume(self, upstream_session_id: str | None, init_request: str | None) -> None:
        if init_request is not None:
            initialize = decode(init_request.encode())
            if isinstance(initialize, Message):
                self.remember(initialize)

    async def follow(self, uri: str, subscribe: bool) -> None:
        """``resources/subscribe`` as a listen stream of its own; ``resources/unsubscribe`` ends it."""
        self.subscriptions.stop(uri)
        if subscribe:
            await self._pump(uri, {"resourceSubscriptions": [uri]})

    async def listen(self, headers: Mapping[str, str]) -> None:
        """The client's GET stream: a listen stream for the list-changed notifications, into the session's
        unsolicited messages like the resources' (the front reads them all from the session)."""
        self.subscriptions.stop(LISTED)
        await self._pump(LISTED, dict(LIST_CHANGED))

    async def _pump(self, name: str, notifications: dict[str, Any]) -> None:
        stream = await self.up(listen_request(notifications))
        self.subscriptions.pumps[name] = spawn(pump(stream, self.on_unsolicited), name="bridge-listen")

    async def close(self) -> None:
        self.subscriptions.stop_all()
        for exchange in list(self.exchanges.values()):
            await exchange.close(cancel=True)
        await self.channel.close()

    async def detach(self) -> None:
        await self.close()


class ModernExchange:
    """One handshake-era request answered by a 2026-07-28 server, its input rounds included.

    Each request upstream (the first, and each retry with answers) is sent by a task of its own, which
    :meth:`next` waits for: the front may interrupt a wait for the answer (to open a stream, poll a quiet one, or
    keep the client's alive), and that must never cut the upstream request short.
    """

    status: int | None = None
    streaming = False
    controls: tuple[bytes, ...] = ()
    event_id = None

    def __init__(self, owner: LegacyChannel, request: Message) -> None:
        self.owner = owner
        self.request = request
        self.inner: Exchange | None = None
        self.sending: asyncio.Task[Exchange | Exception] | None = None
        self.outbox: list[Message] = []
        self.waiting: dict[str, Message | None] = {}
        self.state: str | None = None
        self.ready = asyncio.Event()
        self.rounds = 0
        self.over = False

    async def start(self, message: Message) -> None:
        self.owner.exchanges[self.request.id] = self
        self._send(message)

    def _send(self, message: Message, delay: float = 0.0) -> None:
        self.inner = None
        self.sending = spawn(_sent(self.owner, message, delay), name="bridge-request")

    async def _upstream(self) -> Exchange:
        if self.sending is not None:
            sent = await asyncio.shield(self.sending)
            self.sending = None
            if isinstance(sent, Exception):
                raise sent
            self.inner = sent
        assert self.inner is not None
        return self.inner

    def answered(self, key: str, reply: Message) -> None:
        if key in self.waiting:
            self.waiting[key] = reply
            if all(answer is not None for answer in self.waiting.values()):
                self.ready.set()

    async def next(self) -> Message:
        while True:
            if self.outbox:
                return self.outbox.pop(0)
            if self.waiting:
                await self.ready.wait()
                self._retry()
                continue
            inner = await self._upstream()
            message = await inner.next()
            if not message.is_reply:
                return message
            result = message.result
            if isinstance(result, dict) and result.get("resultType") == "input_required":
                self.inner = None
                try:
                    self._ask(result)
                finally:
                    await inner.close()
                continue
            self._end()
            return message

    def _ask(self, result: dict[str, Any]) -> None:
        """The server needs the client first: its questions become server-to-client requests on this stream."""
        self.rounds += 1
        if self.rounds > MAX_ROUNDS:
            raise JsonRpcError(INTERNAL_ERROR, f"the server asked for input more than {MAX_ROUNDS} times")
        state = result.get("requestState")
        self.state = state if isinstance(state, str) else None
        requests = result.get("inputRequests")
        self.waiting, self.ready = {}, asyncio.Event()
        for key, embedded in (requests if isinstance(requests, dict) else {}).items():
            if not isinstance(embedded, dict) or not isinstance(embedded.get("method"), str):
                continue
            asked_id = f"shadowproxy-{next(_asked_ids)}"
            body: dict[str, Any] = {"jsonrpc": "2.0", "id": asked_id, "method": embedded["method"]}
            if isinstance(embedded.get("params"), dict):
                body["params"] = embedded["params"]
            self.outbox.append(Message(Kind.REQUEST, body))
            self.waiting[key] = None
            self.owner.asked[asked_id] = (self, key)
        if not self.waiting:
            # Only state to hand back (the server sheds load): the same request again, a moment later.
            self._retry(delay=0.05 * self.rounds)

    def _retry(self, delay: float = 0.0) -> None:
        responses: dict[str, Any] = {}
        for key, reply in self.waiting.items():
            if reply is None or reply.kind is not Kind.RESPONSE:
                error = (reply.error if reply is not None else None) or {"message": "no answer"}
                raise JsonRpcError(INTERNAL_ERROR, f"the client did not answer the server's request: {error}")
            responses[key] = reply.result
        self.waiting = {}
        params = {**(self.request.params or {}), "inputResponses": responses}
        if self.state is not None:
            params["requestState"] = self.state
        self._send(self.request.evolve(params=params), delay)

    def _end(self) -> None:
        self.over = True
        self.owner.exchanges.pop(self.request.id, None)
        for asked_id in [key for key, (exchange, _) in self.owner.asked.items() if exchange is self]:
            del self.owner.asked[asked_id]

    async def close(self, *, cancel: bool = False) -> None:
        if not self.over:
            self._end()
        sending, self.sending = self.sending, None
        if sending is not None:
            # A request still on its way is cut (over HTTP its connection closes: 2026-07-28 cancellation).
            sending.cancel()
            await asyncio.wait({sending})
            sent = None if sending.cancelled() else sending.result()
            if sent is not None and not isinstance(sent, Exception):
                self.inner = sent
        if self.inner is not None:
            await self.inner.close(cancel=cancel)


async def _sent(owner: LegacyChannel, message: Message, delay: float) -> Exchange | Exception:
    """``message`` sent upstream after ``delay``: its exchange, or what the sending raised (for :meth:`next`)."""
    try:
        if delay:
            await asyncio.sleep(delay)
        return await owner.up(message)
    except Exception as exc:
        return exc
