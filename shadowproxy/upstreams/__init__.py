"""Upstream transports: how the proxy reaches MCP servers."""

from shadowproxy.config import UpstreamConfig
from shadowproxy.upstreams.base import Channel, Exchange, Upstream
from shadowproxy.upstreams.credentials import Credentials
from shadowproxy.upstreams.http import HttpUpstream
from shadowproxy.upstreams.legacy_sse import LegacySseUpstream
from shadowproxy.upstreams.secrets import SecretBox
from shadowproxy.upstreams.stdio import StdioUpstream
from shadowproxy.upstreams.websocket import WebSocketUpstream

__all__ = ["Channel", "Exchange", "HttpUpstream", "StdioUpstream", "Upstream", "create_upstream"]


def create_upstream(config: UpstreamConfig, secrets: SecretBox | None = None) -> Upstream:
    """The upstream ``config`` names; ``secrets`` are the per-principal ones its credentials may need."""
    if config.is_stdio:
        return StdioUpstream(config)
    if config.transport == "websocket":
        return WebSocketUpstream(config)
    if config.transport == "sse":
        return LegacySseUpstream(config)
    upstream = HttpUpstream(config)
    if config.credentials is not None:
        upstream.credentials = Credentials(config.name, config.credentials, secrets)
    return upstream
