"""Upstream transports: how the proxy reaches MCP servers.

The network transports are imported by :func:`create_upstream` when a config names one (or by name from this
package): aiohttp is about a third of a start, and ``shadowproxy stdio`` in front of a stdio server needs none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shadowproxy.config import UpstreamConfig
from shadowproxy.upstreams.base import Channel, Exchange, Upstream
from shadowproxy.upstreams.secrets import SecretBox
from shadowproxy.upstreams.stdio import StdioUpstream

if TYPE_CHECKING:
    from shadowproxy.upstreams.http import HttpUpstream

__all__ = ["Channel", "Exchange", "HttpUpstream", "StdioUpstream", "Upstream", "create_upstream"]


def create_upstream(config: UpstreamConfig, secrets: SecretBox | None = None) -> Upstream:
    """The upstream ``config`` names; ``secrets`` are the per-principal ones its credentials may need."""
    if config.is_stdio:
        return StdioUpstream(config)
    if config.transport == "websocket":
        from shadowproxy.upstreams.websocket import WebSocketUpstream

        return WebSocketUpstream(config)
    if config.transport == "sse":
        from shadowproxy.upstreams.legacy_sse import LegacySseUpstream

        return LegacySseUpstream(config)
    from shadowproxy.upstreams.credentials import Credentials
    from shadowproxy.upstreams.http import HttpUpstream

    upstream = HttpUpstream(config)
    if config.credentials is not None:
        upstream.credentials = Credentials(config.name, config.credentials, secrets)
    return upstream


def __getattr__(name: str) -> Any:
    if name == "HttpUpstream":
        from shadowproxy.upstreams.http import HttpUpstream

        return HttpUpstream
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
