"""Spare children of a per-session stdio server: started before a session asks, so that it need not wait for one.

A server process takes seconds to start (a Python one 1-4 s on two cores); a session given a spare waits only for
its own ``initialize``. A spare has been sent nothing: the session that takes it sends its ``initialize`` itself,
so no session inherits another's state, exactly as with a process started for it.

Spares are started one at a time in the background, up to the target, and again each time one is taken or dies.
A spare that dies unused is never handed out; it counts as a crash against the upstream's circuit, as any child's
unasked exit does, and the next start waits a pause that doubles with each such failure (up to
:data:`MAX_PAUSE`). No spare is started unless the circuit is closed: while it is open, or half-open until a
session's own child answers, the filler sleeps; so a server that dies at start is not started in a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable

from shadowproxy.core.errors import UpstreamError
from shadowproxy.core.tasks import spawn
from shadowproxy.upstreams.child import ChildProcess
from shadowproxy.upstreams.circuit import Circuit, CircuitState

log = logging.getLogger("shadowproxy.upstreams.stdio")

FIRST_PAUSE = 0.5
MAX_PAUSE = 30.0
# While the circuit is half-open, how often the filler looks whether a session's child closed it.
CIRCUIT_POLL = 1.0


class Spares:
    """The spares of one upstream: ``ready``, oldest first, and the task that keeps ``target`` of them.

    ``start`` starts a child through the upstream (its circuit check, its children, its crash count); ``circuit``
    gives the upstream's current circuit (the health monitor replaces it after the upstream is made).
    """

    def __init__(
        self,
        name: str,
        target: int,
        start: Callable[[], Awaitable[ChildProcess]],
        circuit: Callable[[], Circuit],
    ) -> None:
        self.name = name
        self.target = target
        self.ready: list[ChildProcess] = []
        self.taken = 0
        # Spares in a row that could not start or died unused: the pause before the next start grows with them.
        self.failures = 0
        self.closed = False
        self._start = start
        self._circuit = circuit
        self._task: asyncio.Task[None] | None = None

    def want(self, count: int) -> None:
        """Keep at least ``count`` spares from now on."""
        self.target = max(self.target, count)

    def take(self) -> ChildProcess | None:
        """A running spare for a new session, or ``None`` (then the caller starts one)."""
        while self.ready:
            child = self.ready.pop(0)
            if child.alive:
                self.taken += 1
                self.failures = 0
                return child
            # Its exit is being reported (the upstream counts the crash); it is simply not handed out.
        return None

    def fill(self) -> None:
        """Start spares in the background until there are ``target`` (nothing when there are, or it is busy)."""
        if self.closed or len(self.ready) >= self.target or (self._task is not None and not self._task.done()):
            return
        self._task = spawn(self._fill(), name=f"spares-{self.name}")

    async def _fill(self) -> None:
        while not self.closed and len(self.ready) < self.target:
            await self._pause()
            if self.closed or len(self.ready) >= self.target:
                return
            try:
                child = await self._start()
            except UpstreamError as exc:
                # The upstream counted it against the circuit; the pause before the next start grows.
                self.failures += 1
                log.warning("upstream %s: a spare process could not start: %s", self.name, exc.message)
                continue
            self.ready.append(child)
            child.exited.add_done_callback(functools.partial(self._died, child))

    async def _pause(self) -> None:
        """Wait out the pause after failures, then for the circuit to be closed."""
        if self.failures:
            await asyncio.sleep(min(FIRST_PAUSE * 2 ** (self.failures - 1), MAX_PAUSE))
        # The circuit has no event to wait on: open turns half-open with the clock, and half-open closes at a reply.
        while (circuit := self._circuit()).state is not CircuitState.CLOSED:  # noqa: ASYNC110
            await asyncio.sleep(max(circuit.retry_after(), CIRCUIT_POLL))

    def _died(self, child: ChildProcess, _: object) -> None:
        if child not in self.ready:
            return
        self.ready.remove(child)
        if not child.stopping:
            self.failures += 1
            log.warning(
                "upstream %s: a spare process exited (code %s) before a session took it", self.name, child.returncode
            )
        self.fill()

    async def _stop(self) -> list[ChildProcess]:
        """Stop the filler (a start in flight is undone by its cancellation) and give up the spares."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        spares, self.ready = self.ready, []
        return spares

    async def renew(self) -> None:
        """Replace every spare with one started now (a restart: no session after it gets a process from before)."""
        await asyncio.gather(*(child.terminate() for child in await self._stop()))
        self.failures = 0
        self.fill()

    async def close(self) -> None:
        """Terminate the spares and start no more."""
        self.closed = True
        await asyncio.gather(*(child.terminate() for child in await self._stop()))
