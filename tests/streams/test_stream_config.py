"""Upstream transports in config: ws(s) URLs, ``transport: sse``, and errors that name the key."""

from __future__ import annotations

import pytest

from shadowproxy.config import from_mapping, parse_upstream
from shadowproxy.core.errors import ConfigError
from shadowproxy.upstreams import create_upstream
from shadowproxy.upstreams.http import HttpUpstream
from shadowproxy.upstreams.legacy_sse import LegacySseUpstream
from shadowproxy.upstreams.websocket import WebSocketUpstream


def test_the_command_line_picks_the_transport_from_the_url() -> None:
    assert isinstance(create_upstream(parse_upstream("a", "ws://host:1/ws")), WebSocketUpstream)
    assert isinstance(create_upstream(parse_upstream("a", "wss://host/mcp")), WebSocketUpstream)
    assert isinstance(create_upstream(parse_upstream("a", "http://host:1/sse")), LegacySseUpstream)
    assert isinstance(create_upstream(parse_upstream("a", "http://host:1/mcp")), HttpUpstream)


def test_a_config_file_names_the_transport() -> None:
    upstreams = from_mapping(
        {
            "mcpServers": {
                "old": {"url": "http://host/events", "type": "sse"},
                "new": {"url": "http://host/mcp", "transport": "streamable-http"},
                "socket": {"url": "wss://host/ws"},
            }
        }
    ).upstreams
    assert [upstream.transport for upstream in upstreams] == ["sse", None, "websocket"]


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"url": "ws://host/ws", "transport": "sse"}, "does not fit the url"),
        ({"url": "http://host/mcp", "transport": "websocket"}, "does not fit the url"),
        ({"url": "http://host/mcp", "transport": "carrier-pigeon"}, "unknown transport"),
        ({"command": "server", "transport": "sse"}, "needs a url"),
        ({"url": "http://host/mcp", "type": "stdio"}, "needs a command"),
        ({"url": "ftp://host/mcp"}, "ws(s)://"),
    ],
)
def test_bad_transports_name_file_and_key(spec: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError, match=r"upstreams\.s") as caught:
        from_mapping({"upstreams": {"s": spec}}, source="proxy.yaml")
    assert problem in str(caught.value) and "proxy.yaml" in str(caught.value)
