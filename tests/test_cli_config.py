"""`shadowproxy config check|show`: everything validated without starting; secrets never printed."""

from __future__ import annotations

import json
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
    assert "1 upstream(s), 2 interceptor(s) in the chain: pinning, rules" in capsys.readouterr().out
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


def test_interceptor_options_are_checked_by_their_model_with_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "proxy.yaml"
    config.write_text(
        "port: eighty\n"
        "upstreams:\n  a: {command: x}\n"
        "interceptors:\n"
        "  - name: audit\n    options:\n      stream: printer\n      backups: many\n"
        "  - name: rules\n    paths: [builtin:read-only]\n    wach: true\n"
    )
    assert main(["config", "check", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "4 problems in the configuration" in err
    for needle in (
        f"{config}:1 [port]: must be a number",
        f"{config}:7 [interceptors[0].options.stream]: must be stdout or stderr",
        f"{config}:8 [interceptors[0].options.backups]: must be a whole number",
        f"{config}:11 [interceptors[1].options.wach]: unknown option; known options are: paths, watch",
    ):
        assert needle in err, f"{needle!r} not in:\n{err}"


def test_show_prints_the_model_with_secrets_masked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from shadowproxy.config import Config

    config = tmp_path / "proxy.yaml"
    digest = "ab" * 32
    config.write_text(
        "upstreams:\n  a: {url: 'https://user:pw@example.com/mcp', headers: {X-Api: sekrit}}\n"
        f"auth: {{tokens: [{{name: alice, sha256: {digest}}}]}}\nadmin: {{token: 0123456789abcdef}}\n"
    )
    assert main(["config", "show", "--config", str(config), "--json"]) == 0
    text = capsys.readouterr().out
    shown = json.loads(text)
    assert set(shown) == {*Config.model_fields, "chain"}
    assert shown["upstreams"][0]["limits"]["message"] == 16 * 1024 * 1024 and shown["upstreams"][0]["transport"] is None
    assert shown["auth"]["realm"] == "shadowproxy" and shown["auth"]["jwt"] is None
    assert shown["admin"] == {"token": "********", "tokens": []}
    assert shown["upstreams"][0]["headers"] == {"X-Api": "********"}
    for secret in (digest, "0123456789abcdef", "sekrit", "pw@"):
        assert secret not in text
