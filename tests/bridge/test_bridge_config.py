"""The bridge's settings on an upstream: read from the file, and a wrong one named with its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from shadowproxy import config
from shadowproxy.core.errors import ConfigError


def test_bridge_and_era_are_read_per_upstream(tmp_path: Path) -> None:
    file = tmp_path / "shadowproxy.yaml"
    file.write_text("upstreams:\n  a:\n    command: x\n    bridge: always\n    era: handshake\n  b:\n    command: y\n")
    a, b = config.load(str(file), env={}).upstreams
    assert (a.bridge, a.era) == ("always", "handshake") and (b.bridge, b.era) == ("auto", "auto")


def test_an_unknown_bridge_mode_is_named_with_its_line(tmp_path: Path) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text("upstreams:\n  a:\n    command: x\n    bridge: sometimes\n")
    with pytest.raises(ConfigError) as caught:
        config.load(str(file), env={})
    assert "bad.yaml:4 [upstreams.a.bridge]" in str(caught.value) and "always" in str(caught.value)
