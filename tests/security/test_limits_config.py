"""``limits`` and ``upstreams.<name>.limits`` in the config: defaults, sizes, and errors naming file, line and key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shadowproxy.config import load
from shadowproxy.config.limits import Limits, UpstreamLimits
from shadowproxy.core.errors import ConfigError
from tests.support import REPO, child_env

STDIO = {"command": "python server.py"}


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "shadowproxy.yaml"
    path.write_text(yaml.safe_dump({"upstreams": {"files": STDIO}, **data}, sort_keys=False))
    return path


def test_defaults_are_safe_and_sizes_take_units(tmp_path: Path) -> None:
    config = load(str(write(tmp_path, {})), env={})
    assert config.limits == Limits()
    assert config.upstreams[0].limits == UpstreamLimits()
    assert config.upstreams[0].limits.rlimits == ()
    upstream = {**STDIO, "limits": {"cpu": 10, "memory": "512MiB", "files": 256, "message": "1MB"}}
    limits = {"max_json_depth": 32, "body_timeout": 2.5, "max_header_size": "16KiB"}
    config = load(str(write(tmp_path, {"limits": limits, "upstreams": {"files": upstream}})), env={})
    assert config.limits.max_json_depth == 32
    assert config.limits.body_timeout == 2.5
    assert config.limits.max_header_size == 16 * 1024
    assert config.upstreams[0].limits == UpstreamLimits(cpu=10, memory=512 * 1024**2, files=256, message=10**6)


@pytest.mark.parametrize(
    ("data", "key", "words"),
    [
        ({"limits": {"max_sesions": 5}}, "limits.max_sesions", "unknown limit; known limits are: max_json_depth"),
        ({"limits": {"max_sessions": 0}}, "limits.max_sessions", "greater than 0"),
        ({"limits": {"idle_timeout": "soon"}}, "limits.idle_timeout", "must be a number"),
        ({"limits": {"max_json_depth": 5000}}, "limits.max_json_depth", "at most 1000"),
        ({"limits": {"max_json_depth": None}}, "limits.max_json_depth", "must be a number"),
        ({"limits": [1]}, "limits", "must be a mapping"),
        ({"upstreams": {"files": {**STDIO, "limits": {"memory": "lots"}}}}, "upstreams.files.limits.memory", "512MiB"),
        ({"upstreams": {"files": {**STDIO, "limits": {"cores": 2}}}}, "upstreams.files.limits.cores", "unknown limit"),
        ({"upstreams": {"files": {"url": "http://x/mcp", "limits": {"cpu": 1}}}}, "upstreams.files.limits", "stdio"),
    ],
)
def test_mistakes_name_the_key_and_line(tmp_path: Path, data: dict[str, Any], key: str, words: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as caught:
        load(str(path), env={})
    error = caught.value
    assert error.key == key
    assert words in error.problem
    line = next(number for number, text in enumerate(path.read_text().splitlines(), 1) if "limits" in text)
    # The line of the key itself, or of its parent when YAML nests it deeper than lines are kept for.
    assert error.source is not None and error.source.startswith(f"{path}:")
    assert int(error.source.rsplit(":", 1)[1]) >= line


def test_config_check_prints_the_error_and_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, {"limits": {"max_requests_per_session": -1}})
    run = subprocess.run(
        [sys.executable, "-m", "shadowproxy", "config", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=REPO,
        timeout=60,
    )
    assert run.returncode == 2
    assert f"{path}:" in run.stderr and "[limits.max_requests_per_session]: must be greater than 0" in run.stderr
