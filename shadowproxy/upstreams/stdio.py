"""Stdio upstreams: MCP servers the proxy spawns and talks to over stdin/stdout.

Each child is a :class:`~shadowproxy.upstreams.child.ChildProcess`, read by
protocol callbacks at no task. One child per session by default (servers keep per-client state);
``share: true`` runs one child for every session, with request ids (and
progress tokens) rewritten so that ids from different clients never collide. A per-session server may keep
``spare`` children started ahead of the sessions that take them (:mod:`~shadowproxy.upstreams.spares`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Callable, Iterator

from shadowproxy import __version__
from shadowproxy.config import CircuitConfig, UpstreamConfig
from shadowproxy.core import counters
from shadowproxy.core.errors import JsonRpcError, UpstreamError
from shadowproxy.core.jsonrpc import Kind, Message
from shadowproxy.core.logs import REQUEST_ID
from shadowproxy.core.protocol import MODERN_VERSION
from shadowproxy.core.tasks import spawn
from shadowproxy.upstreams import rlimits
from shadowproxy.upstreams.base import UnsolicitedHandler
from shadowproxy.upstreams.child import MAX_LINE, ChildProcess, ChildRequest
from shadowproxy.upstreams.child_channel import ChildChannel
from shadowproxy.upstreams.circuit import Circuit
from shadowproxy.upstreams.replicas import Spread
from shadowproxy.upstreams.spares import Spares

__all__ = ["MAX_LINE", "ChildChannel", "ChildProcess", "ChildRequest", "StdioUpstream", "spawn_child"]

log = logging.getLogger(__name__)

SAFE_ENV = ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
PRIME_TIMEOUT = 10.0
# Spares of a per-session server whose config leaves ``spare`` unset, while the era bridge pools sessions on it.
BRIDGED_SPARES = 1


def _discover() -> Message:
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
        "io.modelcontextprotocol/clientInfo": {"name": "shadowproxy", "version": __version__},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    return Message(Kind.REQUEST, {"jsonrpc": "2.0", "id": 0, "method": "server/discover", "params": {"_meta": meta}})


def _ping(modern: bool) -> Message:
    params = _discover().params if modern else None
    body: dict[str, object] = {"jsonrpc": "2.0", "id": 0, "method": "ping"}
    if params is not None:
        body["params"] = params
    return Message(Kind.REQUEST, body)


def _drop(message: Message) -> None:
    """Stateless requests have no session stream: what the child sends unasked goes nowhere."""


def child_environment(config: UpstreamConfig) -> dict[str, str]:
    """A safe base (``run``'s default) or the whole environment (``inherit_env``, ``stdio``'s), then ``env``."""
    if config.inherit_env:
        env = dict(os.environ)
    else:
        env = {key: os.environ[key] for key in SAFE_ENV if key in os.environ}
    env.update(config.env)
    return env


async def spawn_child(config: UpstreamConfig) -> ChildProcess:
    loop = asyncio.get_running_loop()

    def protocol() -> ChildProcess:
        child = ChildProcess(config.name)
        child.lines.limit = config.limits.message
        return child

    try:
        _, child = await loop.subprocess_exec(
            protocol,
            *config.command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=child_environment(config),
            cwd=config.cwd,
            # CPU, memory and open files, set in the forked child before exec (setrlimit only).
            preexec_fn=rlimits.preexec(config.limits),
        )
    except OSError as exc:
        log.error("cannot start upstream %s (%s): %s", config.name, " ".join(config.command), exc)
        raise UpstreamError(f"cannot start upstream {config.name!r}: {exc.strerror or exc}") from None
    return child


class StdioUpstream:
    """A stdio server: a child per session, or one shared child restarted on demand when it dies.

    Every start goes through :attr:`circuit`: while it is open, a new session gets
    :class:`~shadowproxy.upstreams.circuit.UpstreamUnavailable` instead of a spawn attempt. A child that
    cannot start, or exits without being asked to, counts against it; one that answers closes it.
    """

    def __init__(self, config: UpstreamConfig) -> None:
        self.name = config.name
        self.config = config
        self.children: set[ChildProcess] = set()
        # The shared children: one, or ``replicas`` copies, each the child of the sessions it was given.
        self._shared: list[ChildProcess | None] = [None] * config.replicas
        self.spread = Spread(config.replicas)
        self._unanswered: ChildProcess | None = None
        # The children of 2026-07-28 requests: one per replica, each logical session on one of them.
        self._stateless: list[ChildProcess | None] = [None] * config.replicas
        self._stateless_spread = Spread(config.replicas)
        self._priming: dict[int, asyncio.Task[None]] = {}
        self.restarts = 0
        self.crashes = 0
        self.circuit = Circuit(config.name, CircuitConfig())
        self._lock = asyncio.Lock()
        self.spares = Spares(config.name, config.spare or 0, self._start, lambda: self.circuit)

    async def open(self, on_unsolicited: UnsolicitedHandler, *, shared: bool = False) -> ChildChannel:
        if shared:
            # The proxy warms the stateless child at start: the spares start with it, not with the first session.
            self.spares.fill()
            index = self._stateless_spread.pick()
            child = await self._stateless_child(index)
            revive = functools.partial(self._stateless_child, index)
            return ChildChannel(child, rewrite=True, owned=False, handler=on_unsolicited, revive=revive)
        if self.config.share:
            child = await self._shared_child()
            child.unsolicited.append(on_unsolicited)
            return ChildChannel(child, rewrite=True, owned=False, handler=on_unsolicited)
        child = self.spares.take() or await self._start()
        # After the session's own start, if it had to wait for one: on two cores the spare's would slow it.
        self.spares.fill()
        child.unsolicited.append(on_unsolicited)
        return ChildChannel(child, rewrite=False, owned=True, handler=on_unsolicited)

    def bridged(self) -> None:
        """The era bridge pools handshake sessions here: each new one (a principal, client capabilities) is a
        process of its own, so, unless the config says how many (``spare``), one is kept ready for it."""
        if not self.config.share and self.config.spare is None:
            self.spares.want(BRIDGED_SPARES)

    async def attach(self, sink: Callable[[Iterator[Message]], None]) -> ChildProcess:
        """A child whose every message goes to ``sink``, a read's worth at a time: the stdio front end, where the
        process is the session."""
        child = await self._start()
        child.sink = sink
        return child

    async def _start(self) -> ChildProcess:
        self.circuit.check()
        # The child's pipe callbacks keep the context they were created in: not the request that happened to start it.
        token = REQUEST_ID.set(None)
        try:
            child = await spawn_child(self.config)
        except UpstreamError:
            self.crashes += 1
            self.circuit.failed()
            raise
        finally:
            REQUEST_ID.reset(token)
        self.children.add(child)
        child.on_first_reply = self.circuit.succeeded
        child.exited.add_done_callback(lambda _: self._exited(child))
        return child

    def _exited(self, child: ChildProcess) -> None:
        self.children.discard(child)
        if not child.stopping:
            self.crashes += 1
            self.circuit.failed()

    @property
    def long_lived(self) -> list[ChildProcess]:
        """The children that outlive sessions: the shared ones and the ones for stateless requests."""
        return [child for child in (*self._shared, *self._stateless) if child is not None]

    def replicas_down(self) -> list[int]:
        """The replicas one of whose children (shared, stateless) was started and is not running now."""
        pairs = zip(self._shared, self._stateless, strict=True)
        return [index for index, pair in enumerate(pairs) if any(c is not None and not c.alive for c in pair)]

    def serving_partly(self) -> bool:
        """With replicas: some failed, and of each kind started (shared, stateless) one still serves."""
        if len(self._shared) == 1:
            return False

        def serving(children: list[ChildProcess | None]) -> bool:
            started = [child for child in children if child is not None]
            return not started or any(child.alive and child is not self._unanswered for child in started)

        return (
            any(child is not None for child in self._stateless) and serving(self._stateless) and serving(self._shared)
        )

    async def _shared_child(self) -> ChildProcess:
        """The shared child a new session is given: the next replica in turn, started again when it died."""
        async with self._lock:
            failure: UpstreamError | None = None
            for _ in range(len(self._shared)):
                index = self.spread.pick()
                child = self._shared[index]
                if child is not None and child.alive:
                    return child
                try:
                    self._shared[index] = await self._start()
                except UpstreamError as exc:
                    self.spread.failed(index, exc.message)
                    failure = exc
                    continue
                self.restarts += child is not None
                return self._shared[index]  # type: ignore[return-value]
            assert failure is not None
            raise failure

    async def _stateless_child(self, index: int = 0) -> ChildProcess:
        """The child for 2026-07-28 requests: its own, opened with an enveloped request.

        A server picks a connection's protocol era from its first request; a request that lacks the
        2026-07-28 envelope arriving first would tie every later stateless request to the handshake era. Its
        ``server/discover`` is written first, and that is enough: stdin is read in order, so no one waits for
        its answer (a server slow to start, or one that never answers, costs the requests behind it nothing).
        """
        async with self._lock:
            child = self._stateless[index]
            if child is None or not child.alive:
                self.restarts += child is not None
                child = await self._start()
                channel = ChildChannel(child, rewrite=True, owned=False, handler=_drop)
                exchange = await channel.request(_discover(), {})
                self._priming[index] = spawn(self._primed(exchange), name=f"discover-{self.name}")
                self._stateless[index] = child
            return child

    async def _primed(self, exchange: ChildRequest) -> None:
        """Read the answer to the opening ``server/discover`` (a server that gives none is worth a warning)."""
        try:
            async with asyncio.timeout(PRIME_TIMEOUT):
                while not (await exchange.next()).is_reply:
                    pass
        except (TimeoutError, JsonRpcError) as exc:
            log.warning("upstream %s did not answer server/discover: %r", self.name, exc)
        finally:
            await exchange.close()

    async def restart(self, prime: float = PRIME_TIMEOUT, *, failed_only: bool = False) -> None:
        """Replace the long-lived children and the spares with new ones; per-session children stay with their sessions.

        Sessions of a shared child are bound to it and end with it (their clients initialize again).
        ``failed_only`` replaces only the children that exited or did not answer the last probe, so that the
        sessions of the other replicas go on. ``prime`` bounds the wait for the new stateless child's first
        answer: whoever restarts it wants to know it is up (the health check that follows then measures the
        server, not its start).
        """
        async with self._lock:
            failed = [c for c in self.long_lived if not c.alive or c is self._unanswered] if failed_only else None
            old = self.long_lived if failed is None else failed
            had = [child is not None and child in old for child in self._shared]
            self._shared = [None if gone else child for child, gone in zip(self._shared, had, strict=True)]
            # The first stateless child is always there (it doubles as the probe); the others as they were.
            renew = [index == 0 or child in old for index, child in enumerate(self._stateless)]
            self._stateless = [None if child in old else child for child in self._stateless]
        await asyncio.gather(*(child.terminate() for child in old))
        self.restarts += 1
        primed = []
        for index, again in enumerate(renew):
            if again and self._stateless[index] is None:
                await self._stateless_child(index)
                primed.append(self._priming[index])
        if primed:
            await asyncio.wait(primed, timeout=prime)
        async with self._lock:
            for index, gone in enumerate(had):
                if gone and self._shared[index] is None:
                    self._shared[index] = await self._start()
        if not failed_only:
            await self.spares.renew()

    async def probe(self, answer_within: float | None) -> None:
        """Ping the long-lived children (starting the stateless one if there is none); raise when one fails.

        Any answer counts, an error too: a 2026-07-28 server answers ``ping`` with method-not-found.
        ``answer_within=None`` only checks that they run.
        """
        started = any(child is not None for child in self._stateless)
        children = self.long_lived if started else [await self._stateless_child()]
        self._unanswered = None
        for child in children:
            if not child.alive:
                raise UpstreamError(f"the server process exited with code {child.returncode}")
            if answer_within is None:
                continue
            modern = child in self._stateless
            channel = ChildChannel(child, rewrite=True, owned=False, handler=_drop)
            exchange = await channel.request(_ping(modern), {})
            try:
                async with asyncio.timeout(answer_within):
                    while not (await exchange.next()).is_reply:
                        pass
            except TimeoutError:
                self._unanswered = child
                raise UpstreamError(f"the server did not answer ping within {answer_within:g}s") from None
            finally:
                await exchange.close()

    async def close(self) -> None:
        await self.spares.close()
        await asyncio.gather(*(child.terminate() for child in list(self.children)))


def count_start(upstream: object) -> None:
    """A session opened its channel: for a stdio server that is not shared, a new process."""
    if isinstance(upstream, StdioUpstream) and not upstream.config.share:
        counters.UPSTREAM_STARTS.labels(upstream.name).inc()
