"""Upstream health: one background task per upstream pings it, restarts what died, and reports.

What is checked:

* a stdio upstream: its long-lived children, the one that serves 2026-07-28
  requests (always there; it doubles as the probe of a server whose sessions
  each have their own child) and the shared one with ``share: true``. A child
  that exits is seen at once (its exit future wakes the task); one that stops
  answering ``ping`` for ``failures`` checks in a row is replaced. Restarts wait
  a backoff (``initial``, doubled up to ``max``) and go through the upstream's
  circuit, so a server that dies at start is not spawned in a loop.
* a URL upstream: a ``ping`` POSTed to its URL (Streamable HTTP) or a TCP
  connect (legacy SSE, WebSocket). Any HTTP answer below 500 means reachable;
  the proxy cannot restart it, only report it.

The hot path never waits on any of this: sessions read nothing from here, and
the circuit they consult is a timestamp comparison.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from shadowproxy.config import HealthConfig
from shadowproxy.core import counters
from shadowproxy.core.errors import UpstreamError
from shadowproxy.core.urls import origin
from shadowproxy.upstreams.base import Upstream
from shadowproxy.upstreams.child import ChildProcess
from shadowproxy.upstreams.circuit import Circuit, CircuitState
from shadowproxy.upstreams.replicas import Spread
from shadowproxy.upstreams.stdio import StdioUpstream

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger(__name__)

STARTING, UP, DOWN = "starting", "up", "down"
PROBE_PROTOCOL = "2025-11-25"
PING_ID = "shadowproxy-health"
"""The id of the ``ping`` a URL upstream is probed with."""


class UrlProbe:
    """Reachability of an upstream the proxy does not run: is something answering at its URL?

    With replicas (``urls``) each is probed; one that fails is passed over by new sessions until a probe finds it
    up, and the upstream is down only when every replica is. What ``/readyz`` says of them is the spread's: a
    refused connection counts too.
    """

    def __init__(self, upstream: Any) -> None:
        self.config = upstream.config
        self.spread: Spread | None = getattr(upstream, "spread", None)
        self.urls: tuple[str, ...] = getattr(upstream, "urls", None) or (self.config.url,)
        self._client: aiohttp.ClientSession | None = None

    async def probe(self, answer_within: float) -> None:
        if len(self.urls) == 1 or self.spread is None:
            await self._probe(self.urls[0], answer_within)
            return
        down: dict[int, str] = {}
        for index, url in enumerate(self.urls):
            try:
                await self._probe(url, answer_within)
            except UpstreamError as exc:
                down[index] = exc.message
                self.spread.failed(index, exc.message, float("inf"))
            else:
                self.spread.up(index)
        if len(down) == len(self.urls):
            raise UpstreamError("every replica is down: " + "; ".join(down.values()))

    async def _probe(self, url: str, answer_within: float) -> None:
        import aiohttp  # loaded with the URL upstream this probes; a proxy of stdio servers never needs it

        try:
            async with asyncio.timeout(answer_within):
                if self.config.transport is None:
                    await self._post_ping(url)
                else:
                    await self._connect(url)
        except TimeoutError:
            raise UpstreamError(f"no answer from {origin(url)} within {answer_within:g}s") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamError(f"cannot reach {origin(url)}: {exc.__class__.__name__}: {exc}") from None

    async def _post_ping(self, url: str) -> None:
        if self._client is None:
            import aiohttp

            self._client = aiohttp.ClientSession()
        body = {"jsonrpc": "2.0", "id": PING_ID, "method": "ping"}
        headers = {
            **self.config.headers,
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": PROBE_PROTOCOL,
        }
        async with self._client.post(url, json=body, headers=headers) as response:
            if response.status >= 500:
                raise UpstreamError(f"{origin(url)} answered HTTP {response.status}")

    async def _connect(self, url: str) -> None:
        parts = urlsplit(url)
        secure = parts.scheme in ("https", "wss")
        _, writer = await asyncio.open_connection(parts.hostname, parts.port or (443 if secure else 80))
        writer.close()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()


class Monitor:
    """The health of one upstream, kept up to date by :meth:`run`."""

    def __init__(self, upstream: Upstream, config: HealthConfig) -> None:
        self.upstream = upstream
        self.name = upstream.name
        self.config = config
        self.stdio = upstream if isinstance(upstream, StdioUpstream) else None
        if self.stdio is not None:
            # The upstream consults its circuit on every start; the monitor gives it the configured one.
            self.stdio.circuit = Circuit(upstream.name, config.circuit)
        self.url_probe = None if self.stdio is not None else UrlProbe(upstream)
        self.status = STARTING
        self.problem: str | None = None
        self.checked_at: float | None = None
        self.failed_checks = 0
        self._consecutive = 0
        self._poke: asyncio.Future[None] | None = None

    @property
    def circuit(self) -> Circuit | None:
        return self.stdio.circuit if self.stdio is not None else None

    @property
    def ready(self) -> bool:
        """Not known to be down, and not refusing new sessions."""
        circuit = self.circuit
        return self.status != DOWN and (circuit is None or circuit.state is not CircuitState.OPEN)

    def report(self) -> dict[str, Any]:
        """What ``/readyz`` and the admin API show about this upstream."""
        circuit = self.circuit
        entry: dict[str, Any] = {
            "status": self.status,
            "problem": self.problem,
            "checked_at": self.checked_at,
            "failed_checks": self.failed_checks,
            "circuit": circuit.state.label if circuit is not None else None,
            "restarts": self.stdio.restarts if self.stdio is not None else 0,
        }
        if circuit is not None and circuit.state is CircuitState.OPEN:
            entry["retry_after"] = round(circuit.retry_after(), 1)
        down = self.replicas_down()
        if down is not None:
            entry["replicas_down"] = down
        return entry

    def replicas_down(self) -> dict[str, str] | None:
        """The replicas down now and why, by index; ``None`` for an upstream without replicas."""
        if self.url_probe is not None:
            if len(self.url_probe.urls) == 1 or self.url_probe.spread is None:
                return None
            return {str(index): problem for index, problem in self.url_probe.spread.down().items()}
        assert self.stdio is not None
        if self.stdio.config.replicas == 1:
            return None
        return {str(index): "the process is not running" for index in self.stdio.replicas_down()}

    def restart_now(self) -> None:
        """Cut the current wait short: the admin API asked for a restart."""
        if self._poke is not None and not self._poke.done():
            self._poke.set_result(None)

    async def restart(self) -> None:
        """Restart now (the admin API), then check; the circuit is closed first, since an operator asked."""
        if self.stdio is None:
            raise UpstreamError(f"upstream {self.name!r} is not a process the proxy runs; it cannot be restarted")
        self.stdio.circuit.succeeded()
        await self.stdio.restart(self.config.timeout)
        problem = await self._check()
        self.restart_now()
        if problem is not None:
            raise UpstreamError(problem)

    async def run(self) -> None:
        if self.stdio is None and not self.config.interval:
            return  # pings are off, and there is no process to watch: nothing is known, nothing to do
        backoff = self.config.backoff.initial
        try:
            while True:
                problem = await self._check()
                if problem is None:
                    backoff = self.config.backoff.initial
                    await self._idle(self.config.interval or None)
                    continue
                self.failed_checks += 1
                self._consecutive += 1
                dead = self.stdio is not None and not (
                    self.stdio.long_lived and all(child.alive for child in self.stdio.long_lived)
                )
                if not dead and self._consecutive < self.config.failures:
                    await self._idle(self.config.interval or None)
                    continue
                # A replica that failed while others serve leaves the upstream up: only it is restarted.
                partial = self.stdio is not None and self.stdio.serving_partly()
                if not partial:
                    self._mark(DOWN, problem)
                if self.stdio is None:
                    await self._idle(self.config.interval or None)
                    continue
                exited = {child for child in self.stdio.long_lived if not child.alive}
                await self._idle(max(backoff, self.stdio.circuit.retry_after()), watch=False)
                backoff = min(backoff * 2, self.config.backoff.max)
                if (partial or self.status == DOWN) and not self._replaced(exited):  # by the admin API or a client
                    await self._restart(failed_only=partial)
        finally:
            if self.url_probe is not None:
                await self.url_probe.close()

    async def _check(self) -> str | None:
        """``None`` when the upstream is fine, else what is wrong. With pings off only liveness is checked."""
        self.checked_at = time.time()
        try:
            if self.stdio is not None:
                await self.stdio.probe(self.config.timeout if self.config.interval else None)
            elif self.url_probe is not None:
                await self.url_probe.probe(self.config.timeout)
        except UpstreamError as exc:
            return exc.message
        self._consecutive = 0
        self._mark(UP, None)
        return None

    def _replaced(self, exited: set[ChildProcess]) -> bool:
        """Whether the children that exited were replaced while the monitor waited (a client's request started
        new ones): those may serve a new session already, so they are checked, not restarted. A child that
        hangs has not exited, and is restarted."""
        assert self.stdio is not None
        children = self.stdio.long_lived
        return bool(exited) and not exited.intersection(children) and all(child.alive for child in children)

    async def _restart(self, *, failed_only: bool = False) -> None:
        assert self.stdio is not None
        what = "the failed replicas of upstream" if failed_only else "upstream"
        log.warning("restarting %s %s: %s", what, self.name, self.problem)
        try:
            await self.stdio.restart(self.config.timeout, failed_only=failed_only)
        except UpstreamError as exc:
            self.problem = exc.message
            log.warning("upstream %s did not restart: %s", self.name, exc.message)

    def _mark(self, status: str, problem: str | None) -> None:
        if status == DOWN and self.status != DOWN:
            log.error("upstream %s is down: %s", self.name, problem)
        elif status == UP and self.status == DOWN:
            log.info("upstream %s is up again", self.name)
        self.status = status
        self.problem = problem
        counters.upstream_checked(self.name, status == UP)

    async def _idle(self, seconds: float | None, *, watch: bool = True) -> None:
        """Wait ``seconds`` (forever: ``None``), less when a long-lived child exits or a restart is asked for."""
        self._poke = asyncio.get_running_loop().create_future()
        waiters: set[asyncio.Future[Any]] = {self._poke}
        if watch and self.stdio is not None:
            waiters.update(child.exited for child in self.stdio.long_lived)
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._poke = None


def monitors(upstreams: list[Upstream], config: HealthConfig) -> dict[str, Monitor]:
    return {upstream.name: Monitor(upstream, config) for upstream in upstreams}
