"""The composition root: the proxy assembled from its config.

:class:`Proxy` owns the long-lived parts (store, persistence worker, chain, upstreams and their health monitors,
sessions, mounts, the cluster) and opens and closes them as a pair. It knows no client transport: the fronts
serve its mounts (:mod:`shadowproxy.serve.app` puts the HTTP ones on an aiohttp application; the stdio front
serves one mount itself).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from shadowproxy import cluster
from shadowproxy.bridge.era import EraBridge, create_bridge
from shadowproxy.cluster import breakpoints as cluster_breakpoints
from shadowproxy.cluster import holds as cluster_holds
from shadowproxy.cluster import pins as cluster_pins
from shadowproxy.cluster import secrets as cluster_secrets
from shadowproxy.config import Config, UpstreamConfig
from shadowproxy.control import HoldRegistry
from shadowproxy.control.breakpoints import Breakpoint, BreakpointError
from shadowproxy.core import tracing
from shadowproxy.core.chain import Chain
from shadowproxy.core.errors import ConfigError
from shadowproxy.core.tasks import spawn
from shadowproxy.interceptors import pinning
from shadowproxy.interceptors.pin_book import PinBook
from shadowproxy.proxy.mount import Mount
from shadowproxy.proxy.plugins import load_interceptors
from shadowproxy.proxy.roles import Access, RolesGate
from shadowproxy.sessions import admission
from shadowproxy.sessions.manager import SessionManager
from shadowproxy.sessions.persistence import PersistenceWorker
from shadowproxy.stores import StoreError, open_store, parse_store_url
from shadowproxy.stores.url import hold_book
from shadowproxy.upstreams import StdioUpstream, create_upstream, health
from shadowproxy.upstreams.credentials import problem_of
from shadowproxy.upstreams.secrets import SecretBox

if TYPE_CHECKING:
    from shadowproxy.gateway import AggregateUpstream
    from shadowproxy.tapes.writer import Recorder
    from shadowproxy.upstreams.base import Upstream

log = logging.getLogger(__name__)


# Virtual servers and tapes are imported by the proxies that configure them: each start (every client's
# `shadowproxy stdio`) would otherwise load about thirty modules it does not run (issue 27, item 6).
def virtual_servers(
    config: Config, upstreams: dict[str, Upstream], bridges: Mapping[str, EraBridge | None]
) -> list[AggregateUpstream]:
    if not config.virtual_servers:
        return []
    from shadowproxy.gateway import AggregateUpstream

    return [AggregateUpstream(server, upstreams, bridges) for server in config.virtual_servers]


def recorder(config: Config) -> Recorder | None:
    if config.tapes is None:
        return None
    from shadowproxy.tapes.writer import Recorder

    return Recorder(config.tapes)


class Proxy:
    """Everything one proxy process runs, opened by :meth:`start` and closed by :meth:`stop`."""

    def __init__(self, config: Config) -> None:
        if not config.upstreams:
            raise ConfigError("no upstream: give --upstream, a config file with upstreams, or --demo", key="upstreams")
        self.config = config
        self.store = open_store(
            config.store,
            ttl=config.session_ttl,
            max_events=config.event_log_size,
            max_event_age=config.event_log_age,
        )
        self.worker = PersistenceWorker(self.store, flush_interval=config.flush_interval, batch_size=config.batch_size)
        self.pins = PinBook(config.pinning)
        # Roles are a step in front of the chain (without them, nothing of theirs is on the path); pinning next: it
        # judges the server's own tool definitions, before any rule edits or filters them.
        self.access = Access(config) if config.roles is not None else None
        gate = [RolesGate(self.access)] if self.access is not None else []
        self.chain = Chain(
            [*gate, *pinning.hooks(self.pins, self.store), *load_interceptors(config.interceptors, config.rules)]
        )
        self.sessions = SessionManager(self.worker, ttl=config.session_ttl, store=self.store)
        self.guard = admission.Guard(config.limits)
        self.sessions.busy = self.guard.busy
        # One upstream per server even where a lone server is mounted at two paths: one pool, one stateless child.
        self.secrets = SecretBox(config.credentials, self.store) if config.credentials is not None else None
        upstreams = {upstream.name: create_upstream(upstream, self.secrets) for upstream in config.upstreams}
        self.holds = HoldRegistry(hold_book(self.store), keepalive=config.keepalive_interval)
        bridges = {
            upstream.name: create_bridge(upstreams[upstream.name], upstream.bridge, upstream.era)
            for upstream in config.upstreams
        }
        self.tapes = recorder(config)
        self.mounts = [
            Mount(
                path,
                upstreams[upstream.name],
                self.chain,
                self.sessions,
                holds=self.holds,
                bridge=bridges[upstream.name],
                tapes=self.tapes,
            )
            for path, upstream in mount_paths(config.path, config.upstreams)
        ]
        self.virtual = virtual_servers(config, upstreams, bridges)
        self.mounts += [
            Mount(f"{config.path}/{vs.name}", vs, self.chain, self.sessions, holds=self.holds, tapes=self.tapes)
            for vs in self.virtual
        ]
        self.draining = False
        self._sweeper: asyncio.Task[None] | None = None
        self.monitors = health.monitors(list(upstreams.values()), config.health)
        self._monitoring: list[asyncio.Task[None]] = []
        self.cluster = cluster.join(config, self.sessions, self.mounts, self.chain, self.reload)
        if self.cluster is not None:
            cluster_holds.share(self.cluster, self.holds)
            cluster_pins.share(self.cluster, self.pins)
            self.holds.breakpoints_changed = cluster_breakpoints.share(
                self.cluster, self.store, self.listed_breakpoints, self.replace_breakpoints
            )
            if self.secrets is not None:
                cluster_secrets.share(self.cluster, self.secrets)

    async def start(self, *, on_demand: bool = False) -> None:
        """Open what the proxy runs. ``on_demand`` (the stdio front: one client) starts no server process ahead of
        a request and runs no health checks, which would start one: a stateful server gets no second writer."""
        if self.config.tracing is not None:
            tracing.start(self.config.tracing)
        await self.worker.start()  # opens the store; one that is down is reported and retried, not waited for
        for upstream in self.config.upstreams:
            if upstream.credentials is not None:
                problem = problem_of(upstream.name, upstream.credentials, self.secrets)
                if problem is not None:
                    log.error("%s; its requests will be refused until it can be read", problem)
        if self.secrets is not None:
            await self.import_secrets(self.secrets)
        if self.cluster is not None:
            await self.cluster.start()
            await cluster_breakpoints.load(self.store, self.replace_breakpoints)
        await self.holds.start()
        for hook in self.chain.startables:
            await hook.start()
        if self.tapes is not None:
            self.tapes.start()
        self._sweeper = spawn(self.sessions.sweep(min(60.0, self.config.session_ttl / 2)), name="session-sweeper")
        if on_demand:
            return
        for mount in self.mounts:
            if isinstance(mount.upstream, StdioUpstream):
                spawn(mount.warm(), name=f"warm-{mount.name}")
        self._monitoring = [spawn(monitor.run(), name=f"health-{name}") for name, monitor in self.monitors.items()]

    def listed_breakpoints(self) -> list[dict[str, Any]]:
        return [breakpoint.to_dict() for breakpoint in self.holds.breakpoints]

    def replace_breakpoints(self, listed: list[dict[str, Any]]) -> None:
        """The cluster's breakpoints, as another instance (or the store) tells them."""
        try:
            self.holds.breakpoints = tuple(Breakpoint.restore(item) for item in listed)
        except BreakpointError as exc:
            log.warning("ignored the cluster's breakpoints: %s", exc)

    async def import_secrets(self, box: SecretBox) -> None:
        """Say where per-principal secrets live, and move an older version's file of them into the store."""
        if parse_store_url(self.config.store).scheme == "memory":
            log.warning("credentials: per-principal secrets are kept in the memory store and lost when it stops")
        try:
            imported = await box.import_file()
        except StoreError as exc:
            log.error("credentials: the secrets of %s could not be imported into the store: %s", box.legacy, exc)
            return
        if imported:
            log.warning("credentials: %d secret(s) of %s imported into the store; the file is no longer used",
                        imported, box.legacy)  # fmt: skip

    async def reload(self) -> bool:
        """Reload every hook that can (the rules); true when all took their new configuration."""
        results = [await hook.reload() for hook in self.chain.reloadables]
        for gateway in self.virtual:
            gateway.reload()
        return all(results)

    async def stop(self) -> None:
        """Detach sessions (they stay alive in the store), close upstreams and interceptors, flush the store."""
        self.draining = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in self._monitoring:
            task.cancel()
        await asyncio.gather(*self._monitoring, return_exceptions=True)
        await self.holds.close()
        if self.cluster is not None:
            await self.cluster.handover(self.config.shutdown_timeout)
        await self.sessions.detach_all()
        if self.cluster is not None:
            await self.cluster.stop()
        await asyncio.gather(*(mount.close() for mount in self.mounts))
        for hook in self.chain.closables:
            await hook.close()
        if self.tapes is not None:
            self.tapes.drain()
            await asyncio.to_thread(self.tapes.stop)
        await self.worker.stop()
        await self.store.close()
        if self.config.tracing is not None:
            tracing.stop()


def mount_paths(base: str, upstreams: tuple[UpstreamConfig, ...]) -> list[tuple[str, UpstreamConfig]]:
    """Each server at ``base/<name>``; the only one also at ``base`` itself."""
    if len(upstreams) == 1:
        only = upstreams[0]
        paths = [(base, only)]
        if only.name != "default":
            paths.append((f"{base}/{only.name}", only))
        return paths
    return [(f"{base}/{upstream.name}", upstream) for upstream in upstreams]
