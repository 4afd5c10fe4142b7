"""Upstream transports: how the proxy reaches MCP servers."""

from shadowproxy.config import UpstreamConfig
from shadowproxy.upstreams.base import Channel, Exchange, Upstream
from shadowproxy.upstreams.http import HttpUpstream
from shadowproxy.upstreams.legacy_sse import LegacySseUpstream
from shadowproxy.upstreams.stdio import StdioUpstream
from shadowproxy.upstreams.websocket import WebSocketUpstream

__all__ = ["Channel", "Exchange", "HttpUpstream", "StdioUpstream", "Upstream", "create_upstream"]


def create_upstream(config: UpstreamConfig) -> Upstream:
    if config.is_stdio:
        return StdioUpstream(config)
    if config.transport == "websocket":
        return WebSocketUpstream(config)
    if config.transport == "sse":
        return LegacySseUpstream(config)
    return HttpUpstream(config)
