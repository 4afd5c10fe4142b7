"""``shadowproxy upstreams test NAME``: an upstream and a virtual server probed as the proxy would start them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from shadowproxy.cli.main import main


def config(tmp_path: Path) -> str:
    path = tmp_path / "shadowproxy.yaml"
    path.write_text(f"""
upstreams:
  demo: {{command: "{sys.executable} -m shadowproxy.demo"}}
  gone: {{url: "http://127.0.0.1:9/mcp"}}
virtual_servers:
  both: {{upstreams: [demo, gone], join_timeout: 30}}
""")
    return str(path)


def test_a_virtual_server_reports_its_members_tools(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["upstreams", "test", "both", "--config", config(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and "demo__echo" in report["tools"] and "tools" in report["capabilities"]
    assert [step["step"] for step in report["steps"]][:2] == ["start", "initialize"]


def test_an_upstream_that_is_down_fails_naming_the_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["upstreams", "test", "gone", "--config", config(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "gone: FAILED" in out and "initialize" in out and "error:" in out


def test_an_unknown_name_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["upstreams", "test", "nobody", "--config", config(tmp_path)]) == 2
    assert "no upstream or virtual server 'nobody'; known: demo, gone, both" in capsys.readouterr().err
