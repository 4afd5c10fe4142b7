"""Upstream health against a running proxy: /readyz, restarts, the circuit, the admin restart, metrics."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from shadowproxy.core.errors import UPSTREAM_UNAVAILABLE
from tests.support import REPO, ProxyProcess, free_port, until

from .helpers import MCP_HEADERS, TOKEN, admin, scrape, value

FLAKY = REPO / "tests" / "servers" / "flaky.py"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
# Fast checks and restarts; the circuit far away unless a test brings it closer.
HEALTH = {"interval": 0.2, "timeout": 1, "failures": 2, "backoff": {"initial": 0.05, "max": 0.2}}


def write_config(tmp_path: Path, upstreams: dict[str, Any], **health: Any) -> Path:
    config = {"upstreams": upstreams, "health": {**HEALTH, **health}, "admin": {"token": TOKEN}}
    path = tmp_path / "shadowproxy.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def flaky(state: Path) -> dict[str, Any]:
    state.mkdir(exist_ok=True)
    return {"command": [sys.executable, str(FLAKY)], "env": {"FLAKY_DIR": str(state)}}


def starts(state: Path) -> list[int]:
    path = state / "starts"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


async def readyz(proxy: ProxyProcess) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as client, client.get(f"{proxy.base}/readyz") as response:
        return response.status, await response.json()


async def until_ready(proxy: ProxyProcess, ready: bool, what: str) -> dict[str, Any]:
    """Wait for /readyz to say ready with every upstream checked and up (or, ``ready=False``, to say unready)."""
    seen: list[dict[str, Any]] = []

    async def reached() -> bool:
        status, body = await readyz(proxy)
        seen[:] = [body]
        checked = all(upstream["status"] == "up" for upstream in body["upstreams"].values())
        return (status == 200) is ready and (body["status"] == "ready") is ready and (checked or not ready)

    await until(reached, what)
    return seen[0]


async def test_readyz_follows_a_killed_child_through_its_restart(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    state = tmp_path / "flaky"
    proxy = await start_proxy("--config", str(write_config(tmp_path, {"flaky": flaky(state)})))
    body = await until_ready(proxy, True, "the upstream to be checked")
    assert body["upstreams"]["flaky"]["status"] == "up"
    (first,) = starts(state)

    # The child dies and every new one dies at start, until the test lets them live.
    (state / "dead").touch()
    os.kill(first, signal.SIGKILL)
    body = await until_ready(proxy, False, "/readyz to see the dead child")
    assert body["upstreams"]["flaky"]["status"] == "down"
    assert "exited" in body["upstreams"]["flaky"]["problem"]
    assert any(problem.startswith("upstream flaky: down: ") for problem in body["problems"])
    samples = await scrape(proxy.base)
    assert value(samples, "shadowproxy_upstream_up", upstream="flaky") == 0

    (state / "dead").unlink()
    body = await until_ready(proxy, True, "the upstream to be restarted")
    assert body["upstreams"]["flaky"]["restarts"] >= 1
    assert first not in starts(state)[1:] and len(starts(state)) >= 2
    samples = await scrape(proxy.base)
    assert value(samples, "shadowproxy_upstream_up", upstream="flaky") == 1
    assert value(samples, "shadowproxy_upstream_restarts_total", upstream="flaky") >= 1
    assert value(samples, "shadowproxy_upstream_crashes_total", upstream="flaky") >= 1
    assert value(samples, "shadowproxy_upstream_health_check_failures_total", upstream="flaky") >= 1
    assert "restarting upstream flaky" in proxy.log()


async def test_a_server_that_stops_answering_ping_is_restarted(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    state = tmp_path / "flaky"
    proxy = await start_proxy("--config", str(write_config(tmp_path, {"flaky": flaky(state)}, timeout=0.3)))
    await until_ready(proxy, True, "the upstream to be checked")
    (first,) = starts(state)

    (state / "mute").touch()
    body = await until_ready(proxy, False, "the silent server to count as down")
    assert "did not answer ping within 0.3s" in body["upstreams"]["flaky"]["problem"]
    await until(lambda: len(starts(state)) >= 2, "a new process to replace the silent one")
    (state / "mute").unlink()
    await until_ready(proxy, True, "the new process to answer")
    with pytest.raises(ProcessLookupError):
        os.kill(first, 0)  # the silent process was stopped, not left behind


async def test_the_circuit_opens_for_a_server_that_dies_at_start(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    state = tmp_path / "flaky"
    state.mkdir()
    (state / "dead").touch()
    circuit = {"failures": 3, "window": 60, "open_for": 600}
    proxy = await start_proxy("--config", str(write_config(tmp_path, {"flaky": flaky(state)}, circuit=circuit)))

    async def opened() -> bool:
        return (await readyz(proxy))[1]["upstreams"]["flaky"]["circuit"] == "open"

    await until(opened, "the circuit to open")
    status, body = await readyz(proxy)
    assert status == 503 and body["status"] == "unready"
    assert any("upstream flaky: circuit open" in problem for problem in body["problems"])
    spawned = len(starts(state))
    assert spawned >= 3

    # A new session is refused with a precise error, and no process is spawned for it.
    async with (
        aiohttp.ClientSession() as client,
        client.post(proxy.url, json=INITIALIZE, headers=MCP_HEADERS) as response,
    ):
        assert response.status == 503
        assert 0 < int(response.headers["Retry-After"]) <= 600
        error = (await response.json())["error"]
    assert error["code"] == UPSTREAM_UNAVAILABLE and "unavailable" in error["message"]
    assert error["data"]["reason"] == "UPSTREAM_UNAVAILABLE" and error["data"]["upstream"] == "flaky"
    assert len(starts(state)) == spawned

    samples = await scrape(proxy.base)
    assert value(samples, "shadowproxy_upstream_circuit_state", upstream="flaky") == 2
    assert value(samples, "shadowproxy_upstream_up", upstream="flaky") == 0
    assert value(samples, "shadowproxy_upstream_crashes_total", upstream="flaky") >= 3
    status, listed = await admin(proxy.base, "GET", "/upstreams")
    (entry,) = listed["upstreams"]
    assert entry["status"] == "down" and entry["circuit"] == "open" and entry["crashes"] >= 3

    # A restart through the admin API closes the circuit and tries at once; it says so when the server still dies.
    status, body = await admin(proxy.base, "POST", "/upstreams/flaky/restart")
    assert status == 502 and "did not restart: the server process exited with code 1" in body["error"]
    assert len(starts(state)) > spawned
    (state / "dead").unlink()
    status, restarted = await admin(proxy.base, "POST", "/upstreams/flaky/restart")
    assert status == 200, restarted
    assert (
        restarted["circuit"] == "closed"
        and restarted["status"] == "up"
        and restarted["paths"] == ["/mcp", "/mcp/flaky"]
    )
    await until_ready(proxy, True, "the restarted upstream")
    async with (
        aiohttp.ClientSession() as client,
        client.post(proxy.url, json=INITIALIZE, headers=MCP_HEADERS) as response,
    ):
        assert response.status == 200 and "result" in await response.json()


async def test_restart_answers_for_unknown_and_url_upstreams(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url = f"http://127.0.0.1:{free_port()}/mcp"
    upstreams = {"flaky": flaky(tmp_path / "flaky"), "remote": {"url": url}}
    proxy = await start_proxy("--config", str(write_config(tmp_path, upstreams, failures=1)))
    status, body = await admin(proxy.base, "POST", "/upstreams/nope/restart")
    assert status == 404 and "nope" in body["error"]
    status, body = await admin(proxy.base, "POST", "/upstreams/remote/restart")
    assert status == 409 and "cannot restart" in body["error"]

    # Nothing listens at the remote URL: it is down, and /readyz says so by name; the stdio one is fine.
    body = await until_ready(proxy, False, "the unreachable upstream to be reported")
    assert body["upstreams"]["remote"]["status"] == "down"
    assert "cannot reach http://127.0.0.1" in body["upstreams"]["remote"]["problem"]
    assert body["upstreams"]["remote"]["circuit"] is None
    assert [problem.split(":")[0] for problem in body["problems"]] == ["upstream remote"]


async def test_a_reachable_http_upstream_is_up(start_proxy, http_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_proxy("--config", str(write_config(tmp_path, {"remote": {"url": http_server.url}})))
    body = await until_ready(proxy, True, "the HTTP upstream to answer its ping")
    assert body["upstreams"]["remote"] == {**body["upstreams"]["remote"], "status": "up", "circuit": None}
    assert body["upstreams"]["remote"]["failed_checks"] == 0 and body["upstreams"]["remote"]["checked_at"] > 0
