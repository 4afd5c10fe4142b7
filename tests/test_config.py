"""Config: file, environment and flags, with errors that name the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from shadowproxy import config
from shadowproxy.core.errors import ConfigError


def test_defaults_env_and_flags(tmp_path: Path) -> None:
    file = tmp_path / "shadowproxy.yaml"
    file.write_text("port: 9000\nupstreams:\n  files:\n    command: python server.py --root /data\n")
    cfg = config.load(str(file), env={"SHADOWPROXY_PORT": "9100", "SHADOWPROXY_STORE": "sqlite:///x.db"})
    assert cfg.port == 9100 and cfg.store == "sqlite:///x.db" and cfg.host == "127.0.0.1"
    assert cfg.upstreams[0].command == ("python", "server.py", "--root", "/data")
    flagged = config.load(str(file), env={"SHADOWPROXY_PORT": "9100"}, port=9200, upstream="https://h/mcp")
    assert flagged.port == 9200 and flagged.upstreams[0].url == "https://h/mcp"


def test_mcp_servers_json(tmp_path: Path) -> None:
    file = tmp_path / "claude.json"
    file.write_text(
        '{"mcpServers": {"fs": {"command": "npx", "args": ["-y", "server-fs", "/tmp"], "env": {"A": "1"}},'
        ' "remote": {"url": "https://example.com/mcp"}}}'
    )
    cfg = config.load(str(file), env={})
    fs, remote = cfg.upstreams
    assert fs.name == "fs" and fs.command == ("npx", "-y", "server-fs", "/tmp") and fs.env == {"A": "1"}
    assert remote.url == "https://example.com/mcp"
    from shadowproxy.proxy.proxy import mount_paths

    assert [path for path, _ in mount_paths("/mcp", cfg.upstreams)] == ["/mcp/fs", "/mcp/remote"]
    assert [path for path, _ in mount_paths("/mcp", cfg.upstreams[:1])] == ["/mcp", "/mcp/fs"]


def test_upstream_command_is_split_like_a_shell() -> None:
    assert config.parse_upstream("d", 'python "my server.py" --flag').command == ("python", "my server.py", "--flag")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("host: h\nprot: 1\n", "bad.yaml:2 [prot]: unknown key"),
        ("port: eighty\n", "bad.yaml:1 [port]: must be a number"),
        ("port: 70000\n", "[port]: must be between"),
        ("upstreams:\n  a: {command: x, url: 'http://h'}\n", "bad.yaml:2 [upstreams.a]: needs exactly one"),
        ("upstreams:\n  a:\n    command: x\n    colour: red\n", "bad.yaml:4 [upstreams.a.colour]: unknown setting"),
        ("upstreams:\n  a:\n    command: x\n    args: 5\n", "bad.yaml:4 [upstreams.a.args]: must be a list"),
        ("log_level: loud\n", "[log_level]"),
        ("port: 1\n  host: x\n", ".yaml:2: not valid YAML"),
        ("tapes:\n  dir: t\n  write_every: 0\n", "bad.yaml:3 [tapes.write_every]: must be greater than 0"),
    ],
)
def test_errors_name_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text(text)
    with pytest.raises(ConfigError) as caught:
        config.load(str(file), env={})
    assert needle in str(caught.value) and "bad.yaml" in str(caught.value)


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="SHADOWPROXY_PORT"):
        config.load(None, env={"SHADOWPROXY_PORT": "x"})


def test_cli_reports_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from shadowproxy.cli.main import main

    file = tmp_path / "bad.yaml"
    file.write_text("prot: 1\n")
    assert main(["run", "--config", str(file)]) == 2
    assert "bad.yaml:1 [prot]: unknown key" in capsys.readouterr().err


def test_an_unknown_variable_is_named_and_the_known_ones_listed() -> None:
    env = {"SHADOWPROXY_PROT": "9000", "SHADOWPROXY_ADMIN_TOKEN": "read by the admin command", "OTHER": "x"}
    with pytest.raises(ConfigError) as caught:
        config.load(None, env=env)
    assert caught.value.source == "SHADOWPROXY_PROT"
    assert "unknown variable" in caught.value.problem and "SHADOWPROXY_PORT" in caught.value.problem
    assert "SHADOWPROXY_ADMIN_TOKEN" not in str(caught.value)


def test_variables_and_the_file_are_checked_together(tmp_path: Path) -> None:
    file = tmp_path / "proxy.yaml"
    file.write_text("host: h\nport: eighty\n")
    env = {"SHADOWPROXY_SESSION_TTL": "-1", "SHADOWPROXY_COLOUR": "blue"}
    with pytest.raises(config.ConfigErrors) as caught:
        config.load(str(file), env=env)
    found = {(error.source, error.key) for error in caught.value.errors}
    assert found == {(f"{file}:2", "port"), ("SHADOWPROXY_SESSION_TTL", "session_ttl"), ("SHADOWPROXY_COLOUR", None)}


def test_every_section_is_a_frozen_model_with_plain_attributes(tmp_path: Path) -> None:
    file = tmp_path / "proxy.yaml"
    file.write_text(
        "upstreams:\n  a: {command: x, limits: {memory: 1MiB}}\nlimits: {idle_timeout: 5}\n"
        "auth: {tokens: [{name: alice, sha256: " + "ab" * 32 + "}]}\nadmin: {token: 0123456789abcdef}\n"
    )
    cfg = config.load(str(file), env={})
    assert cfg.limits.idle_timeout == 5.0 and cfg.upstreams[0].limits.memory == 1024 * 1024
    assert cfg.auth is not None and cfg.auth.tokens[0].name == "alice" and cfg.auth.tokens[0].digest == b"\xab" * 32
    assert cfg.admin is not None and cfg.admin.token == "0123456789abcdef"
    with pytest.raises(ValidationError):
        cfg.limits.idle_timeout = 1.0  # type: ignore[misc]
    assert config.Config().auth is None and config.Config().admin is None
