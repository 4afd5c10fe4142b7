"""``shadowproxy upstreams list|restart`` and ``shadowproxy rules reload`` against a running proxy."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import yaml

from tests.support import REPO, ProxyProcess, child_env, free_port

from .helpers import TOKEN
from .test_admin import BAD_RULES, GOOD_RULES
from .test_health import flaky, starts


async def cli(*args: str, token: str | None = TOKEN) -> tuple[int, str, str]:
    """Run the CLI; its exit code, stdout and stderr. The token comes through the environment, as scripts do."""
    env = child_env()
    env.pop("SHADOWPROXY_ADMIN_TOKEN", None)
    if token is not None:
        env["SHADOWPROXY_ADMIN_TOKEN"] = token
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shadowproxy", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=REPO,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def start(start_proxy, tmp_path: Path, admin: bool = True) -> ProxyProcess:  # type: ignore[no-untyped-def]
    rules = tmp_path / "policy.yaml"
    rules.write_text(GOOD_RULES)
    config = {
        "upstreams": {"flaky": flaky(tmp_path / "flaky"), "remote": {"url": f"http://127.0.0.1:{free_port()}/mcp"}},
        "interceptors": [{"name": "rules", "paths": [str(rules)], "watch": False}],
    }
    if admin:
        config["admin"] = {"token": TOKEN}
    path = tmp_path / "shadowproxy.yaml"
    path.write_text(yaml.safe_dump(config))
    return await start_proxy("--config", str(path))  # type: ignore[no-any-return]


async def test_upstreams_list_and_restart(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = await start(start_proxy, tmp_path)
    code, out, _ = await cli("upstreams", "list", "--url", proxy.base)
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["NAME", "TRANSPORT", "STATUS", "CIRCUIT", "RESTARTS", "CRASHES", "SESSIONS", "PATHS"]
    assert [row.split()[:2] for row in rows] == [["flaky", "stdio"], ["remote", "http"]]
    assert rows[0].split()[3] == "closed" and rows[1].split()[3] == "-"

    code, out, _ = await cli("upstreams", "list", "--url", proxy.base, "--json")
    assert code == 0
    assert [entry["name"] for entry in json.loads(out)["upstreams"]] == ["flaky", "remote"]

    before = len(starts(tmp_path / "flaky"))
    code, out, _ = await cli("upstreams", "restart", "flaky", "--url", proxy.base)
    assert code == 0 and out.startswith("restarted flaky: up, circuit closed")
    assert len(starts(tmp_path / "flaky")) == before + 1
    code, out, _ = await cli("upstreams", "restart", "flaky", "--url", proxy.base, "--json")
    assert code == 0 and json.loads(out)["restarts"] == 2

    code, out, err = await cli("upstreams", "restart", "nope", "--url", proxy.base)
    assert (code, out) == (1, "") and "no upstream named 'nope'" in err
    code, _, err = await cli("upstreams", "restart", "remote", "--url", proxy.base)
    assert code == 1 and "cannot restart" in err


async def test_rules_reload(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = await start(start_proxy, tmp_path)
    code, out, _ = await cli("rules", "reload", "--url", proxy.base)
    assert (code, out) == (0, "rules: reloaded\n")
    (tmp_path / "policy.yaml").write_text(BAD_RULES)
    code, out, _ = await cli("rules", "reload", "--url", proxy.base)
    assert code == 1 and out.startswith("rules: kept its old rules:") and "policy.yaml" in out
    code, out, _ = await cli("rules", "reload", "--url", proxy.base, "--json")
    assert code == 1 and json.loads(out)["reloaded"] is False


async def test_usage_and_connection_errors_exit_2(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = await start(start_proxy, tmp_path)
    code, _, err = await cli("upstreams", "list", "--url", proxy.base, token=None)
    assert code == 2 and "no admin token" in err and "SHADOWPROXY_ADMIN_TOKEN" in err
    code, _, err = await cli("upstreams", "list", "--url", proxy.base, token="wrong-token-0123456789")
    assert code == 2 and "refused the admin token" in err
    code, _, err = await cli("rules", "reload", "--url", f"http://127.0.0.1:{free_port()}")
    assert code == 2 and "cannot reach the proxy" in err
    code, _, err = await cli("upstreams", "restart")
    assert code == 2 and "NAME" in err

    (tmp_path / "off").mkdir()
    off = await start(start_proxy, tmp_path / "off", admin=False)
    code, _, err = await cli("upstreams", "list", "--url", off.base)
    assert code == 2 and "is `admin` configured" in err


async def test_help_shows_examples() -> None:
    for command in (("upstreams", "--help"), ("upstreams", "list", "--help"), ("rules", "reload", "--help")):
        code, out, _ = await cli(*command)
        assert code == 0 and "shadowproxy upstreams restart alpha" in out and "exit codes: 0" in out
