"""The roles section: inheritance, cycles and unknown names refused with file and line, the permissions a set of
roles compiles to, and ``shadowproxy roles check|explain``."""

from __future__ import annotations

from pathlib import Path

import pytest

from shadowproxy import config
from shadowproxy.cli.main import main
from shadowproxy.core.errors import ConfigError
from shadowproxy.proxy.roles import Access

from .keys import sha256

BASE = f"""\
upstreams:
  github: {{url: "http://127.0.0.1:9/mcp"}}
  files: {{command: "server"}}
auth:
  tokens:
    - {{name: alice, sha256: "{sha256("alice")}", roles: [github-reader]}}
roles:
  claim: scope
  claims: {{"mcp:write": [agent]}}
  define:
"""


def write(tmp_path: Path, roles: str) -> Path:
    path = tmp_path / "sp.yaml"
    path.write_text(BASE + roles)
    return path


def test_inheritance_unions_what_each_role_grants(tmp_path: Path) -> None:
    cfg = config.load(
        str(
            write(
                tmp_path,
                "    github-reader:\n"
                "      extends: agent-read-only\n"
                "      mounts: [github]\n"
                '      tools: {github: ["create_issue"]}\n'
                "      admin: [tap:read]\n",
            )
        )
    )
    access = Access(cfg)
    alice = access.permissions("alice")
    assert alice.mount("github") and alice.mount("files"), "viewer, inherited through agent-read-only, has every mount"
    assert alice.allows("tools", "github", "create_issue") and not alice.allows("tools", "files", "create_issue")
    assert alice.allows("tools", "files", "get_file") and not alice.allows("tools", "files", "delete_file")
    assert alice.may("tap:read") and alice.may("sessions:read") and not alice.may("rules:reload")
    access.note("carol", {"scope": "openid mcp:write"})
    assert access.roles_of("carol") == ("agent",) and access.permissions("carol").allows("tools", "files", "x")
    assert access.roles_of("nobody") == () and not access.permissions("nobody").mount("github")


def test_a_cycle_is_refused_naming_it_and_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "    github-reader: {extends: viewer}\n    a:\n      extends: b\n    b:\n      extends: [viewer, a]\n",
    )
    with pytest.raises(ConfigError) as refused:
        config.load(str(path))
    assert f"{path}:13 [roles.define.a.extends]: extends makes a cycle: a -> b -> a" in str(refused.value)


@pytest.mark.parametrize(
    ("roles", "line", "key", "problem"),
    [
        ("    github-reader: {extends: nope}\n", 11, "roles.define.github-reader.extends", "unknown role 'nope'"),
        ("    other: {}\n", 6, "auth.tokens[0].roles", "unknown role 'github-reader'"),
        ("    github-reader: {admin: [rules:write]}\n", 11, "roles.define.github-reader.admin", "unknown admin"),
    ],
)
def test_unknown_names_are_refused_with_their_line(
    tmp_path: Path, roles: str, line: int, key: str, problem: str
) -> None:
    path = write(tmp_path, roles)
    with pytest.raises(ConfigError) as refused:
        config.load(str(path))
    assert f"{path}:{line} [{key}]" in str(refused.value) and problem in str(refused.value)


def test_roles_check_and_explain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(write(tmp_path, "    github-reader: {extends: agent-read-only, tools: {github: [create_issue]}}\n"))
    assert main(["roles", "check", "--config", path]) == 0
    assert "1 client and 0 admin tokens with roles" in capsys.readouterr().out
    assert main(["roles", "explain", "alice", "--config", path]) == 0
    out = capsys.readouterr().out
    assert "alice: roles github-reader (the static token 'alice' names them)" in out
    assert "role github-reader: extends agent-read-only, viewer" in out and "github: create_issue" in out
    assert main(["roles", "explain", "carol", "--claims", '{"scope": "mcp:write"}', "--config", path]) == 0
    assert "carol: roles agent (the JWT claim 'scope' maps to them)" in capsys.readouterr().out
    cycle = str(write(tmp_path, "    github-reader: {extends: github-reader}\n"))
    assert main(["roles", "check", "--config", cycle]) == 2
    assert "extends makes a cycle: github-reader -> github-reader" in capsys.readouterr().err
