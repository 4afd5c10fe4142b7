"""`shadowproxy config check|show`: everything validated without starting; secrets never printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from shadowproxy.cli.main import main


def test_check_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "shadowproxy.yaml"
    config.write_text(
        "upstreams:\n  demo:\n    command: python -m shadowproxy.demo\n    env: {API_TOKEN: hunter2}\n"
        "rules: [builtin:read-only]\n"
    )
    assert main(["config", "check", "--config", str(config)]) == 0
    assert "1 upstream(s), 1 interceptor(s) in the chain" in capsys.readouterr().out
    assert main(["config", "show", "--config", str(config), "--json"]) == 0
    shown = capsys.readouterr().out
    assert "hunter2" not in shown and '"API_TOKEN": "********"' in shown


def test_check_names_what_is_wrong(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "shadowproxy.yaml"
    config.write_text("rules: [/nonexistent/policy.yaml]\nupstreams:\n  a: {command: x}\n")
    assert main(["config", "check", "--config", str(config)]) == 2
    assert "/nonexistent/policy.yaml" in capsys.readouterr().err
    config.write_text("upstreams:\n  a: {command: x}\nauth: {tokens: 5}\n")
    assert main(["config", "check", "--config", str(config)]) == 2
    assert "auth" in capsys.readouterr().err
