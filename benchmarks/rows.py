"""The rows of ``python -m benchmarks.e2e``: what each measures, what it is compared with, and how it comes up."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from benchmarks import features, peer, peer_targets, report, targets
from benchmarks.targets import Launcher, Target

Setup = Callable[[Launcher], AbstractAsyncContextManager[Target]]


@dataclass(frozen=True)
class RowSpec:
    """One kind of row: a name, the row it is compared to, and how to bring its target up (None: ``reason``)."""

    name: str
    baseline: str
    setup: Setup | None
    concurrencies: tuple[int, ...] | None = None
    reason: str = ""


PEER_NAMES = ("mcp-proxy", "fastmcp", "supergateway", "contextforge")
"""What ``--peers`` may list."""
PACKAGE = {
    "mcp-proxy": peer.MCP_PROXY,
    "fastmcp": peer.FASTMCP,
    "supergateway": peer.SUPERGATEWAY,
    "contextforge": peer.CONTEXTFORGE,
}


def base_specs(high: tuple[int, ...]) -> list[RowSpec]:
    variants = {name: partial(targets.proxy_http, upstream="stdio", options=name) for name in ("sqlite", "redis")}
    return [
        RowSpec("client ceiling (raw HTTP)", report.DIRECT_HTTP, partial(targets.http_server, mode="raw-http"), high),
        RowSpec(report.DIRECT_HTTP, report.DIRECT_HTTP, partial(targets.http_server, mode="http")),
        RowSpec(report.DIRECT_STDIO, report.DIRECT_STDIO, targets.stdio_server),
        RowSpec("bare relay HTTP->stdio", report.DIRECT_HTTP, targets.bare_http),
        RowSpec("bare relay stdio->stdio", report.DIRECT_STDIO, targets.bare_stdio),
        RowSpec("bare relay HTTP->HTTP", report.DIRECT_HTTP, targets.bare_http_http),
        RowSpec(report.PROXY_HTTP_STDIO, report.DIRECT_HTTP, partial(targets.proxy_http, upstream="stdio")),
        RowSpec(report.PROXY_STDIO_STDIO, report.DIRECT_STDIO, targets.proxy_stdio),
        RowSpec(report.PROXY_HTTP_HTTP, report.DIRECT_HTTP, partial(targets.proxy_http, upstream="http")),
        RowSpec(report.PROXY_STDIO_HTTP, report.DIRECT_HTTP, targets.proxy_stdio_http),
        RowSpec(report.PROXY_WS_STDIO, report.DIRECT_HTTP, targets.proxy_ws),
        RowSpec(report.PROXY_HTTP_STDIO + ", SQLite store", report.PROXY_HTTP_STDIO, variants["sqlite"], high),
        RowSpec(report.PROXY_HTTP_STDIO + ", Redis store", report.PROXY_HTTP_STDIO, variants["redis"], high),
    ]


def feature_specs(high: tuple[int, ...]) -> list[RowSpec]:
    """One row per :data:`benchmarks.features.FEATURES`, each against the plain HTTP->stdio proxy."""
    return [
        RowSpec(
            f"{report.FEATURE_PREFIX}{feature.row}",
            report.PROXY_HTTP_STDIO,
            partial(targets.proxy_feature, key=feature.key),
            high,
        )
        for feature in features.FEATURES
    ]


async def install_peers(wanted: tuple[str, ...], cache: Path, mcp_proxy_venv: Path | None) -> dict[str, object]:
    """Each wanted peer installed (an :class:`~benchmarks.peer.Installed`), or why not (a string)."""

    async def one(name: str) -> object:
        root = mcp_proxy_venv if name == "mcp-proxy" else None
        package = PACKAGE[name]
        try:
            return await peer.ensure(package, root or cache / package.folder)
        except peer.PeerUnavailable as exc:
            return f"unavailable: {exc}"

    done = await asyncio.gather(*(one(name) for name in wanted))
    return dict(zip(wanted, done, strict=True))


@dataclass(frozen=True)
class PeerRow:
    """One peer row before its peer is installed: which peer, its label, the ShadowProxy row, how to set it up."""

    peer: str
    label: str
    baseline: str
    make: Callable[[peer.Installed], Setup]

    def name(self, version: str | None) -> str:
        return " ".join(part for part in ("peer", self.label, version, path(self.baseline)) if part)


def _peer_rows() -> list[PeerRow]:
    stdio, http, bridge = report.PROXY_HTTP_STDIO, report.PROXY_HTTP_HTTP, report.PROXY_STDIO_HTTP
    found = [
        PeerRow("mcp-proxy", "mcp-proxy", stdio, lambda p: partial(peer_targets.mcp_proxy_http, peer=p)),
        PeerRow("mcp-proxy", "mcp-proxy", bridge, lambda p: partial(peer_targets.stdio_client, peer=p)),
    ]
    for upstream, baseline in (("stdio", stdio), ("http", http)):
        for reuse, how in ((False, "default"), (True, "reused client")):
            make = partial(_fastmcp, upstream=upstream, reuse=reuse)
            found.append(PeerRow("fastmcp", f"FastMCP ({how})", baseline, make))
    for reuse, how in ((False, "default"), (True, "reused client")):
        found.append(PeerRow("fastmcp", f"FastMCP ({how})", bridge, partial(_stdio_client, reuse=reuse)))
    found += [
        PeerRow("supergateway", "supergateway", stdio, lambda p: partial(peer_targets.supergateway_http, peer=p)),
        PeerRow("supergateway", "supergateway", bridge, lambda p: partial(peer_targets.stdio_client, peer=p)),
        PeerRow("contextforge", "ContextForge", http, lambda p: partial(peer_targets.contextforge_http, peer=p)),
    ]
    return found


def peers_needed(wanted: tuple[str, ...], picks: Callable[[str], bool]) -> tuple[str, ...]:
    """The peers of ``wanted`` with at least one row ``picks`` selects (named with the pinned version): a run
    that selects none of a peer's rows does not install it."""
    return tuple(
        name for name in wanted if any(row.peer == name and picks(row.name(PACKAGE[name].version)) for row in PEER_ROWS)
    )


def peer_specs(installed: dict[str, object]) -> list[RowSpec]:
    """The peers' rows, each against the ShadowProxy row of the same path; a peer not installed says why."""
    specs: list[RowSpec] = []
    for row in PEER_ROWS:
        found = installed.get(row.peer)
        if isinstance(found, peer.Installed):
            specs.append(RowSpec(row.name(found.version), row.baseline, row.make(found)))
        elif found is not None:
            specs.append(RowSpec(row.name(PACKAGE[row.peer].version), row.baseline, None, reason=str(found)))
    return specs


def _stdio_client(found: peer.Installed, reuse: bool) -> Setup:
    return partial(peer_targets.stdio_client, peer=found, reuse=reuse)


def _fastmcp(found: peer.Installed, upstream: str, reuse: bool) -> Setup:
    return partial(peer_targets.fastmcp_http, peer=found, upstream=upstream, reuse=reuse)


def path(baseline: str) -> str:
    """The hop a ShadowProxy row measures (``HTTP->stdio``), from its name."""
    return baseline.removeprefix("shadowproxy ")


PEER_ROWS = _peer_rows()
"""Every peer row, in table order."""
