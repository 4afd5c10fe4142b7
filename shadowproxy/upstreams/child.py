"""One stdio server process, read by protocol callbacks, and the channels sessions reach it through.

A child is read by a :class:`ChildProcess` protocol callback that splits lines,
decodes each once and hands it to the request waiting for it, so a child costs
no task.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import signal
from collections.abc import Callable, Iterator

from shadowproxy.config import limits
from shadowproxy.core import limit_hits
from shadowproxy.core.errors import INTERNAL_ERROR, JsonRpcError, UpstreamError
from shadowproxy.core.flow import WriteFlow
from shadowproxy.core.inbox import Inbox
from shadowproxy.core.jsonrpc import Message, decode, error_response, notification, request_id_of
from shadowproxy.core.logs import REQUEST_ID
from shadowproxy.upstreams.attribution import RESOURCE_UPDATED, SHARED_STATE, Dropped, claimant, refusal
from shadowproxy.upstreams.base import Pending, UnsolicitedHandler
from shadowproxy.upstreams.output import BoundedLines, Oversized, StderrLines

log = logging.getLogger("shadowproxy.upstreams.stdio")

MAX_LINE = 64 * 1024 * 1024
STDERR_LINE = 2000
TERMINATE_GRACE = 2.0
SUBSCRIPTION_ID = "io.modelcontextprotocol/subscriptionId"
MAX_ASKED = 1024


class ChildProcess(WriteFlow, asyncio.SubprocessProtocol):
    """One running server. Replies go to the :class:`Pending` that waits for them; the rest to ``unsolicited``.

    While its stdin pipe is full, writes wait in :meth:`drain`.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.pending: dict[object, ChildRequest] = {}
        self.progress: dict[object, ChildRequest] = {}
        # Takes the messages of each read, in order, instead of their being routed one by one; it must take them all.
        self.sink: Callable[[Iterator[Message]], None] | None = None
        self.unsolicited: list[UnsolicitedHandler] = []
        # Called once, at the first reply: the server started and answers (what closes a half-open circuit).
        self.on_first_reply: Callable[[], None] | None = None
        self.stopping = False
        self.returncode: int | None = None
        self.transport: asyncio.SubprocessTransport | None = None
        self._stdin: asyncio.WriteTransport | None = None
        self.lines = BoundedLines(limits.UpstreamLimits().message)
        self.stderr = StderrLines(STDERR_LINE)
        self._stdout_closed = False
        loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[int] = loop.create_future()
        # Set once the process has exited *and* all it wrote has been read.
        self.finished: asyncio.Future[int] = loop.create_future()
        self.ids = itertools.count(1)
        # Set when several sessions share this process: server messages are then attributed, never guessed.
        self.shared = False
        self.dropped = Dropped(name)
        # For a shared process: who was asked each server request, and who subscribed to which resource.
        self.asked: dict[object, object] = {}
        self.subscribers: dict[str, set[UnsolicitedHandler]] = {}

    @property
    def alive(self) -> bool:
        return self.returncode is None and not self._stdout_closed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._stdin = transport.get_pipe_transport(0)  # type: ignore[assignment]

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd != 1:
            self._feed_stderr(data)
        elif self.sink is not None:
            self.sink(self._messages(data))
        else:
            for message in self._messages(data):
                self._route(message)

    def _messages(self, data: bytes) -> Iterator[Message]:
        """The messages of one read from stdout, each decoded when it is taken (so what is taken first can be
        written on before the rest is decoded). A line that cannot be used fails the request it answers."""
        for line in self.lines.feed(data):
            if isinstance(line, Oversized):
                failed = self._oversized(line)
            elif not line or line.isspace():
                continue
            else:
                try:
                    decoded = decode(line)
                except JsonRpcError as exc:
                    failed = self._refused(line, exc)
                else:
                    if self.on_first_reply is not None:
                        self._replied(decoded)
                    if type(decoded) is list:
                        yield from decoded
                    else:
                        yield decoded  # type: ignore[misc]
                    continue
            if failed is not None:
                yield failed

    def _oversized(self, line: Oversized) -> Message | None:
        """A line over the message limit is skipped to its end, so the child's next message reads fine, and the
        request it answers (found by the id at its head) fails now instead of timing out."""
        bound = self.lines.limit
        limit_hits.hit("upstream_message")
        log.error("upstream %s wrote a message over %d bytes (limits.message); it is dropped", self.name, bound)
        error = UpstreamError(
            f"the upstream's answer is over {bound} bytes (limits.message of upstream {self.name!r})",
            code=limit_hits.LIMIT_EXCEEDED,
            data={"limit": "upstream_message"},
        )
        return self._fail_reply(line.reply_id, error)

    def _refused(self, line: bytes, exc: JsonRpcError) -> Message | None:
        log.warning("upstream %s wrote a line that is not JSON-RPC (%s): %.200r", self.name, exc.message, line)
        reply_id = request_id_of(line, replies_only=True)
        if reply_id is None:
            return None
        error = UpstreamError(f"the upstream's answer was refused: {exc.message}", code=INTERNAL_ERROR)
        return self._fail_reply(reply_id, error)

    def _replied(self, decoded: Message | list[Message]) -> None:
        """Call :attr:`on_first_reply` at the first reply."""
        if any(message.is_reply for message in (decoded if isinstance(decoded, list) else (decoded,))):
            assert self.on_first_reply is not None
            self.on_first_reply()
            self.on_first_reply = None

    def _fail_reply(self, reply_id: object, error: UpstreamError) -> Message | None:
        """The request an unusable answer was meant for fails now instead of waiting for its timeout: with a sink,
        by the error answer returned for it, otherwise by failing the request that waits."""
        if self.sink is not None:
            return error_response(reply_id, error) if isinstance(reply_id, str | int) else None
        waiting = self.pending.pop(reply_id, None)
        if waiting is not None:
            if waiting.token is not None:
                self.progress.pop(waiting.token, None)
            waiting.fail(error)
        return None

    def _route(self, message: Message) -> None:
        if message.is_reply:
            waiting = self.pending.pop(message.id, None)
            if waiting is None:
                log.debug("upstream %s answered id %r, which no one waits for", self.name, message.id)
                return
            if waiting.token is not None:
                self.progress.pop(waiting.token, None)
            if waiting.key != waiting.original_id:
                message = message.evolve(id=waiting.original_id)
            waiting.put(message)
            return
        if message.method == "notifications/progress":
            params = message.params or {}
            waiting = self.progress.get(params.get("progressToken"))
            if waiting is not None:
                if waiting.original_token != waiting.token:
                    message = message.evolve(params={**params, "progressToken": waiting.original_token})
                waiting.put(message)
                return
        params = message.params
        meta = params.get("_meta") if isinstance(params, dict) else None
        subscription = meta.get(SUBSCRIPTION_ID) if isinstance(meta, dict) else None
        if subscription is not None and subscription in self.pending:
            # A 2026-07-28 subscription event names the subscriptions/listen request it belongs to.
            waiting = self.pending[subscription]
            if waiting.key != waiting.original_id:
                meta = {**meta, SUBSCRIPTION_ID: waiting.original_id}  # type: ignore[dict-item]
                message = message.evolve(params={**params, "_meta": meta})  # type: ignore[dict-item]
            self._deliver(waiting, message)
            return
        if self.pending:
            waiting = claimant(self.pending) if self.shared else next(reversed(self.pending.values()))
            if waiting is not None:
                self._deliver(waiting, message)
            else:
                self._unattributed(message)
            return
        self._unsolicited(message)

    def _deliver(self, waiting: ChildRequest, message: Message) -> None:
        if self.shared and message.is_request:
            self._asked(message.id, waiting.owner)
        waiting.put(message)

    def _unsolicited(self, message: Message) -> None:
        """A message while nothing is in flight: see :mod:`~shadowproxy.upstreams.attribution`."""
        handlers = self.unsolicited
        if not self.shared:
            for handler in handlers:
                handler(message)
            return
        method = message.method
        if method in SHARED_STATE:
            for handler in handlers:
                handler(message)
            return
        if method == RESOURCE_UPDATED:
            uri = (message.params or {}).get("uri")
            subscribed = self.subscribers.get(uri, ()) if isinstance(uri, str) else ()
            for handler in [handler for handler in handlers if handler in subscribed]:
                handler(message)
            if subscribed:
                return
        elif len(handlers) == 1:
            if message.is_request:
                self._asked(message.id, handlers[0])
            handlers[0](message)
            return
        self._unattributed(message)

    def _unattributed(self, message: Message) -> None:
        self.dropped(message)
        if message.is_request and self.alive:
            self.write(refusal(message).to_bytes())

    def _asked(self, request_id: object, owner: object) -> None:
        """Remember who was asked a server request: only that session's answer goes back to the server."""
        if len(self.asked) >= MAX_ASKED:
            del self.asked[next(iter(self.asked))]
        self.asked[request_id] = owner

    def _feed_stderr(self, data: bytes) -> None:
        lines = self.stderr.feed(data)
        if self.stderr.notice is not None:
            log.warning("upstream %s: %s", self.name, self.stderr.notice)
        for line in lines:
            log.info("upstream %s stderr: %s", self.name, line.decode(errors="replace"))

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            self._stdout_closed = True
            self._finish()

    def process_exited(self) -> None:
        self.returncode = self.transport.get_returncode() if self.transport is not None else -1
        if self.returncode:
            log.warning("upstream %s exited with code %s", self.name, self.returncode)
        if not self.exited.done():
            self.exited.set_result(self.returncode if self.returncode is not None else -1)
        self._finish()

    def _finish(self) -> None:
        """Once the child has exited *and* everything it wrote is read, fail whatever still waits."""
        if not self._stdout_closed or self.returncode is None or self.finished.done():
            return
        error = UpstreamError(f"upstream {self.name!r} exited with code {self.returncode} before answering")
        waiting = list(self.pending.values())
        self.pending.clear()
        self.progress.clear()
        for request in waiting:
            # Logged under the id of the client request it serves, which the client's failure line carries too.
            log.warning(
                "upstream %s exited with code %s before answering %r",
                self.name,
                self.returncode,
                request.request.method,
                extra={"request_id": request.request_id},
            )
            request.fail(error)
        self.finished.set_result(self.returncode)

    def write(self, data: bytes) -> None:
        if self._stdin is None or self._stdin.is_closing() or not self.alive:
            raise UpstreamError(f"upstream {self.name!r} is not running")
        self._stdin.write(data + b"\n")

    async def terminate(self, grace: float = TERMINATE_GRACE) -> None:
        """Close stdin, then SIGTERM, then SIGKILL, each after ``grace`` seconds, as the MCP stdio transport asks."""
        self.stopping = True
        if self.transport is None or self.exited.done():
            return
        if self._stdin is not None:
            self._stdin.close()
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None:
                try:
                    self.transport.send_signal(sig)
                except ProcessLookupError:
                    break
            try:
                await asyncio.wait_for(asyncio.shield(self.exited), grace)
                break
            except TimeoutError:
                continue
        self.transport.close()


class ChildRequest(Pending):
    """A request in flight to a child; also the :class:`Exchange` its requester reads."""

    __slots__ = ("child", "original_token", "owner", "request_id")
    status = None
    streaming = False
    controls: tuple[bytes, ...] = ()
    event_id = None

    def __init__(self, child: ChildProcess, request: Message, key: object, owner: object) -> None:
        # Pending's fields, set here instead of by its __init__: one call fewer for every request to a child.
        Inbox.__init__(self)
        self.request = request
        self.key = key
        self.original_id = request.id
        self.token = None
        self.child = child
        self.owner = owner
        self.original_token: object = None
        self.request_id = REQUEST_ID.get()

    async def close(self, *, cancel: bool = False) -> None:
        child = self.child
        if child.pending.pop(self.key, None) is not None:
            if self.token is not None:
                child.progress.pop(self.token, None)
            if cancel and child.alive:
                log.info("upstream %s: cancelling %r (id %r)", child.name, self.request.method, self.key)
                child.write(notification("notifications/cancelled", {"requestId": self.key}).to_bytes())
