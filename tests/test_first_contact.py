"""A new user's first minutes (issue 18, items 14 and 15): the README's quick start against ``run --demo``,
what the proxy says when it starts (and when it cannot), and what the bare ``/mcp`` answers with several servers.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
from mcp import Client

from shadowproxy.rules.ruleset import load as load_rules
from tests.support import REPO, ProxyProcess, child_env, until

README = REPO / "README.md"
README_URL = "http://127.0.0.1:8765/mcp"
DEMO = [sys.executable, "-m", "shadowproxy.demo"]


def readme_snippet() -> str:
    """The README's Python quick start: the first ``python`` block that connects a ``Client``."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    found = [block for block in blocks if f'Client("{README_URL}")' in block]
    assert found, f"the README has no Python block with Client({README_URL!r})"
    return found[0]


async def test_readme_snippet_runs_against_the_demo_in_the_default_mode(start_proxy) -> None:  # type: ignore[no-untyped-def]
    proxy: ProxyProcess = await start_proxy("--demo")
    snippet = readme_snippet().replace(README_URL, proxy.url)
    # The snippet as a user runs it: its own interpreter, the SDK client in its default mode (mode="auto").
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", snippet], capture_output=True, text=True, timeout=60, env=child_env()
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["['echo', 'add', 'time']", "5.0"], done.stdout


async def test_demo_serves_each_era_it_claims(start_proxy) -> None:  # type: ignore[no-untyped-def]
    proxy: ProxyProcess = await start_proxy("--demo")
    async with Client(proxy.url) as modern:
        listed = await modern.list_tools()
        assert listed.result_type == "complete" and listed.cache_scope is not None  # the 2026-07-28 shape
        assert (await modern.call_tool("echo", {"text": "hi"})).content[0].text == "hi"  # type: ignore[union-attr]
    async with Client(proxy.url, mode="legacy") as handshake:
        assert [tool.name for tool in (await handshake.list_tools()).tools] == ["echo", "add", "time"]
        assert (await handshake.call_tool("add", {"a": 1, "b": 2})).structured_content == {"result": 3.0}
    for version in ("2024-11-05", "2025-03-26"):
        initialize = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "old", "version": "1"}},
        }
        headers = {"Accept": "application/json, text/event-stream"}
        async with aiohttp.ClientSession() as http, http.post(proxy.url, json=initialize, headers=headers) as reply:
            assert reply.status == 200
            text = await reply.text()
        body = json.loads(text if text.startswith("{") else text.split("data: ", 1)[1])
        assert body["result"]["protocolVersion"] == version
        assert body["result"]["serverInfo"]["name"] == "shadowproxy-demo"


async def test_banner_names_an_implicit_config_and_what_it_turns_on(tmp_path: Path) -> None:
    (tmp_path / "shadowproxy.yaml").write_text(
        f"upstreams:\n  demo: {{command: {json.dumps(DEMO)}}}\n"
        "rules: [builtin:read-only]\n"
        "admin: {token: an-admin-token-long-enough}\n"
        f"store: sqlite:{tmp_path / 'sessions.db'}\n"
    )
    proxy = ProxyProcess(tmp_path / "proxy.log")
    try:
        await proxy.start(cwd=tmp_path)
        log = proxy.log()
    finally:
        await proxy.stop()
    port = proxy.url.split(":")[2].split("/")[0]
    rules = load_rules(["builtin:read-only"]).summary()["rules"]
    assert f"serving demo at http://127.0.0.1:{port}/mcp" in log
    assert f"config: {tmp_path / 'shadowproxy.yaml'} (found in the working directory" in log
    assert "upstream demo: stdio: " in log and "-m shadowproxy.demo" in log
    assert f"store: sqlite:{tmp_path / 'sessions.db'}" in log
    assert f"rules: {rules} rules from builtin:read-only" in log
    assert "chain: pinning, rules" in log
    assert "auth: off" in log and "admin API: on" in log and "tap: on" in log


async def test_banner_without_a_config_file(start_proxy) -> None:  # type: ignore[no-untyped-def]
    proxy: ProxyProcess = await start_proxy("--demo")
    # The banner is logged a line at a time after the port opens; its last line says whether the tap is on.
    await until(lambda: "tap: " in proxy.log(), "the banner's last line")
    log = proxy.log()
    assert "config: none (defaults, environment and flags)" in log
    assert "rules: none" in log and "admin API: off" in log and "tap: off" in log
    assert "store: memory://" in log


def test_a_port_in_use_is_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "shadowproxy", "run", "--demo", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            env=child_env(),
            cwd=REPO,
        )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"port {port}" in lines[0] and "already in use" in lines[0] and "--port" in lines[0]


async def test_bare_mcp_with_several_upstreams_lists_the_mounts(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "two.yaml"
    server = json.dumps(DEMO)
    config.write_text(f"upstreams:\n  files: {{command: {server}}}\n  notes: {{command: {server}}}\n")
    proxy: ProxyProcess = await start_proxy("--config", str(config))
    expected = [
        {"name": "files", "path": "/mcp/files", "url": f"{proxy.base}/mcp/files"},
        {"name": "notes", "path": "/mcp/notes", "url": f"{proxy.base}/mcp/notes"},
    ]
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"Accept": "application/json, text/event-stream"}
    async with aiohttp.ClientSession() as http:
        for method, path in (("GET", "/mcp"), ("POST", "/mcp"), ("GET", "/")):
            async with http.request(method, proxy.base + path, json=ping, headers=headers) as reply:
                assert reply.status == 404, (method, path)
                body = await reply.json()
            assert body["mounts"] == expected, (method, path, body)
            assert "/mcp/files" in body["error"]
    async with Client(expected[1]["url"], mode="legacy") as client:
        assert [tool.name for tool in (await client.list_tools()).tools] == ["echo", "add", "time"]
