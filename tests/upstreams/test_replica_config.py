"""``urls`` and ``replicas`` in the config: what they accept, and each mistake named with its file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from shadowproxy import config
from shadowproxy.core.errors import ConfigError


def test_urls_and_replicas_are_read(tmp_path: Path) -> None:
    file = tmp_path / "sp.yaml"
    file.write_text(
        "upstreams:\n"
        "  spread: {urls: ['http://a:1/mcp', 'http://b:1/mcp']}\n"
        "  copies: {command: server, share: true, replicas: 3}\n"
    )
    spread, copies = config.load(str(file), env={}).upstreams
    assert spread.url == "http://a:1/mcp" and spread.urls == ("http://a:1/mcp", "http://b:1/mcp")
    assert copies.replicas == 3 and copies.urls == ()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("  a: {urls: ['http://a/mcp'], url: 'http://a/mcp'}\n", "[upstreams.a.urls]: is given with url"),
        ("  a: {urls: []}\n", "[upstreams.a.urls]: must be a non-empty list"),
        ("  a: {urls: ['http://a/mcp', 'ws://b/mcp']}\n", "[upstreams.a.urls]: are Streamable HTTP servers"),
        ("  a: {urls: ['http://a/mcp', 'http://a/mcp']}\n", "[upstreams.a.urls]: names one URL twice"),
        ("  a: {urls: ['http://a/sse'], transport: sse}\n", "[upstreams.a.urls]: applies to Streamable HTTP"),
        ("  a: {command: x, replicas: 2}\n", "[upstreams.a.replicas]: applies to stdio servers with share: true"),
        ("  a: {url: 'http://a/mcp', replicas: 2}\n", "[upstreams.a.replicas]: applies to stdio servers"),
        ("  a: {command: x, share: true, replicas: 0}\n", "[upstreams.a.replicas]"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, text: str, needle: str) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text("upstreams:\n" + text)
    with pytest.raises(ConfigError) as caught:
        config.load(str(file), env={})
    assert needle in str(caught.value) and "bad.yaml:2" in str(caught.value)
