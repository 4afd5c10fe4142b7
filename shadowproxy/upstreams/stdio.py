"""Stdio upstreams: MCP servers the proxy spawns and talks to over stdin/stdout.

A child is read by a :class:`ChildProcess` protocol callback that splits lines,
decodes each once and hands it to the request waiting for it, so a child costs
no task. One child per session by default (servers keep per-client state);
``share: true`` runs one child for every session, with request ids (and
progress tokens) rewritten so that ids from different clients never collide.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
from collections.abc import Callable, Mapping

from shadowproxy import __version__
from shadowproxy.config import UpstreamConfig
from shadowproxy.errors import INVALID_REQUEST, JsonRpcError, UpstreamError
from shadowproxy.jsonrpc import Kind, Message, decode, notification
from shadowproxy.upstreams.base import Pending, UnsolicitedHandler

log = logging.getLogger(__name__)

SAFE_ENV = ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
MAX_LINE = 64 * 1024 * 1024
STDERR_LINE = 2000
TERMINATE_GRACE = 2.0
PRIME_TIMEOUT = 10.0
SUBSCRIPTION_ID = "io.modelcontextprotocol/subscriptionId"
MODERN_VERSION = "2026-07-28"


class ChildProcess(asyncio.SubprocessProtocol):
    """One running server. Replies go to the :class:`Pending` that waits for them; the rest to ``unsolicited``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.pending: dict[object, ChildRequest] = {}
        self.progress: dict[object, ChildRequest] = {}
        self.sink: Callable[[Message], None] | None = None
        self.unsolicited: list[UnsolicitedHandler] = []
        self.returncode: int | None = None
        self.transport: asyncio.SubprocessTransport | None = None
        self._stdin: asyncio.WriteTransport | None = None
        self._buffer = b""
        self._stderr = b""
        self._stdout_closed = False
        self._paused: asyncio.Future[None] | None = None
        loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[int] = loop.create_future()
        # Set once the process has exited *and* all it wrote has been read.
        self.finished: asyncio.Future[int] = loop.create_future()
        self.ids = itertools.count(1)

    @property
    def alive(self) -> bool:
        return self.returncode is None and not self._stdout_closed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._stdin = transport.get_pipe_transport(0)  # type: ignore[assignment]

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 1:
            self._feed(data)
        else:
            self._feed_stderr(data)

    def _feed(self, data: bytes) -> None:
        if self._buffer:
            data = self._buffer + data
        lines = data.split(b"\n")
        self._buffer = lines.pop()
        if len(self._buffer) > MAX_LINE:
            log.error("upstream %s wrote a line over %d bytes; it is dropped", self.name, MAX_LINE)
            self._buffer = b""
        for line in lines:
            if line and not line.isspace():
                self._on_line(line)

    def _on_line(self, line: bytes) -> None:
        try:
            decoded = decode(line)
        except JsonRpcError as exc:
            log.warning("upstream %s wrote a line that is not JSON-RPC (%s): %.200r", self.name, exc.message, line)
            return
        for message in decoded if isinstance(decoded, list) else (decoded,):
            self._route(message)

    def _route(self, message: Message) -> None:
        if self.sink is not None:
            self.sink(message)
            return
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
            waiting.put(message)
            return
        if self.pending:
            # A server message tied to no id most likely belongs to the latest request in flight
            # (a log line or a sampling request during a tool call); it then travels on that request's stream.
            next(reversed(self.pending.values())).put(message)
            return
        for handler in self.unsolicited:
            handler(message)

    def _feed_stderr(self, data: bytes) -> None:
        lines = (self._stderr + data).split(b"\n")
        self._stderr = lines.pop()[-STDERR_LINE:]
        for line in lines:
            if line.strip():
                log.info("upstream %s stderr: %s", self.name, line[:STDERR_LINE].decode(errors="replace"))

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
            request.fail(error)
        self.finished.set_result(self.returncode)

    def pause_writing(self) -> None:
        self._paused = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._paused is not None and not self._paused.done():
            self._paused.set_result(None)
        self._paused = None

    def write(self, data: bytes) -> None:
        if self._stdin is None or self._stdin.is_closing() or not self.alive:
            raise UpstreamError(f"upstream {self.name!r} is not running")
        self._stdin.write(data + b"\n")

    async def drain(self) -> None:
        if self._paused is not None:
            await self._paused

    async def terminate(self, grace: float = TERMINATE_GRACE) -> None:
        """Close stdin, then SIGTERM, then SIGKILL, each after ``grace`` seconds, as the MCP stdio transport asks."""
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

    __slots__ = ("child", "original_token")
    status = None
    streaming = False
    controls: tuple[bytes, ...] = ()
    event_id = None

    def __init__(self, child: ChildProcess, request: Message, key: object) -> None:
        super().__init__(request, key)
        self.child = child
        self.original_token: object = None

    async def close(self, *, cancel: bool = False) -> None:
        child = self.child
        if child.pending.pop(self.key, None) is not None:
            if self.token is not None:
                child.progress.pop(self.token, None)
            if cancel and child.alive:
                child.write(notification("notifications/cancelled", {"requestId": self.key}).to_bytes())


class ChildChannel:
    """A session's channel to a child; ``rewrite`` is on when the child serves several sessions."""

    upstream_session_id = None

    def __init__(self, child: ChildProcess, *, rewrite: bool, owned: bool, handler: UnsolicitedHandler) -> None:
        self.child = child
        self.rewrite = rewrite
        self.owned = owned
        self.handler = handler
        self.keys: dict[object, object] = {}

    async def request(self, message: Message, headers: Mapping[str, str]) -> ChildRequest:
        child = self.child
        if not child.alive:
            raise UpstreamError(f"upstream {child.name!r} is not running")
        params = message.params
        meta = params.get("_meta") if isinstance(params, dict) else None
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        if self.rewrite:
            key: object = next(child.ids)
            pending = ChildRequest(child, message, key)
            if token is not None:
                pending.original_token = token
                token = key
                message = message.evolve(params={**params, "_meta": {**meta, "progressToken": key}})  # type: ignore[dict-item]
            if len(self.keys) > 256:
                self.keys = {orig: k for orig, k in self.keys.items() if k in child.pending}
            self.keys[message.id] = key
            message = message.evolve(id=key)
        else:
            key = message.id
            if key in child.pending:
                raise JsonRpcError(INVALID_REQUEST, f"request id {key!r} is already in flight in this session")
            pending = ChildRequest(child, message, key)
            pending.original_token = token
        if token is not None:
            pending.token = token
            child.progress[token] = pending
        child.pending[key] = pending
        child.write(message.to_bytes())
        await child.drain()
        return pending

    async def send(self, message: Message, headers: Mapping[str, str]) -> None:
        if self.rewrite and message.method == "notifications/cancelled":
            params = message.params or {}
            key = self.keys.get(params.get("requestId"))
            if key is None:
                return
            message = message.evolve(params={**params, "requestId": key})
        self.child.write(message.to_bytes())
        await self.child.drain()

    async def resume(self, upstream_session_id: str | None, init_request: str | None) -> None:
        """A new child for an old session: replay the client's ``initialize`` and ``initialized``, as it sent them."""
        if init_request is None:
            return
        initialize = decode(init_request.encode())
        assert isinstance(initialize, Message)
        exchange = await self.request(initialize, {})
        try:
            reply = await exchange.next()
            while not (reply.is_reply and reply.id == initialize.id):
                reply = await exchange.next()
        finally:
            await exchange.close()
        if reply.error is not None:
            raise UpstreamError(f"the replayed initialize failed: {reply.error.get('message')}")
        await self.send(notification("notifications/initialized"), {})

    async def listen(self, headers: Mapping[str, str]) -> None:
        """A child's unsolicited messages reach the session through ``handler``; there is no stream to open."""
        return None

    async def close(self) -> None:
        if self.owned:
            await self.child.terminate()
        elif self.handler in self.child.unsolicited:
            self.child.unsolicited.remove(self.handler)

    async def detach(self) -> None:
        """A child cannot outlive the proxy; the session's next process replays the handshake to a new one."""
        await self.close()


def _discover() -> Message:
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
        "io.modelcontextprotocol/clientInfo": {"name": "shadowproxy", "version": __version__},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    return Message(Kind.REQUEST, {"jsonrpc": "2.0", "id": 0, "method": "server/discover", "params": {"_meta": meta}})


def _drop(message: Message) -> None:
    """Stateless requests have no session stream: what the child sends unasked goes nowhere."""


def child_environment(config: UpstreamConfig) -> dict[str, str]:
    """Only what the child needs: a safe base (or the whole environment when asked), plus its own settings."""
    if config.inherit_env:
        env = dict(os.environ)
    else:
        env = {key: os.environ[key] for key in SAFE_ENV if key in os.environ}
    env.update(config.env)
    return env


async def spawn_child(config: UpstreamConfig) -> ChildProcess:
    loop = asyncio.get_running_loop()
    try:
        _, child = await loop.subprocess_exec(
            lambda: ChildProcess(config.name),
            *config.command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=child_environment(config),
            cwd=config.cwd,
        )
    except OSError as exc:
        log.error("cannot start upstream %s (%s): %s", config.name, " ".join(config.command), exc)
        raise UpstreamError(f"cannot start upstream {config.name!r}: {exc.strerror or exc}") from None
    return child


class StdioUpstream:
    """A stdio server: a child per session, or one shared child restarted on demand when it dies."""

    def __init__(self, config: UpstreamConfig) -> None:
        self.name = config.name
        self.config = config
        self.children: set[ChildProcess] = set()
        self._shared: ChildProcess | None = None
        self._stateless: ChildProcess | None = None
        self.restarts = 0
        self._lock = asyncio.Lock()

    async def open(self, on_unsolicited: UnsolicitedHandler, *, shared: bool = False) -> ChildChannel:
        if shared:
            child = await self._stateless_child()
            return ChildChannel(child, rewrite=True, owned=False, handler=on_unsolicited)
        if self.config.share:
            child = await self._shared_child()
            child.unsolicited.append(on_unsolicited)
            return ChildChannel(child, rewrite=True, owned=False, handler=on_unsolicited)
        child = await self._start()
        child.unsolicited.append(on_unsolicited)
        return ChildChannel(child, rewrite=False, owned=True, handler=on_unsolicited)

    async def attach(self, sink: Callable[[Message], None]) -> ChildProcess:
        """A child whose every message goes to ``sink``: the stdio front end, where the process is the session."""
        child = await self._start()
        child.sink = sink
        return child

    async def _start(self) -> ChildProcess:
        child = await spawn_child(self.config)
        self.children.add(child)
        child.exited.add_done_callback(lambda _: self.children.discard(child))
        return child

    async def _shared_child(self) -> ChildProcess:
        async with self._lock:
            if self._shared is None or not self._shared.alive:
                self.restarts += self._shared is not None
                self._shared = await self._start()
            return self._shared

    async def _stateless_child(self) -> ChildProcess:
        """The child for 2026-07-28 requests: its own, opened with an enveloped request.

        A server picks a connection's protocol era from its first request; a request that lacks the
        2026-07-28 envelope arriving first would tie every later stateless request to the handshake era.
        """
        async with self._lock:
            if self._stateless is None or not self._stateless.alive:
                self.restarts += self._stateless is not None
                child = await self._start()
                channel = ChildChannel(child, rewrite=True, owned=False, handler=_drop)
                exchange = await channel.request(_discover(), {})
                try:
                    async with asyncio.timeout(PRIME_TIMEOUT):
                        while not (await exchange.next()).is_reply:
                            pass
                except (TimeoutError, JsonRpcError) as exc:
                    log.warning("upstream %s did not answer server/discover: %r", self.name, exc)
                finally:
                    await exchange.close()
                self._stateless = child
            return self._stateless

    async def close(self) -> None:
        await asyncio.gather(*(child.terminate() for child in list(self.children)))
