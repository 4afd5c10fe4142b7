"""Approvals and breakpoints through a real proxy: the official SDK client, an SDK server that records what
reaches it, decisions made through the admin API."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio
import yaml
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import ElicitRequestParams, ElicitResult

from shadowproxy.cli.admin import TOKEN_ENV
from shadowproxy.core.tasks import spawn
from tests.ops.helpers import AUTH, TOKEN, scrape, value
from tests.support import REPO, ProxyProcess, child_env, until

pytestmark = pytest.mark.asyncio(loop_scope="module")

POLICY = """
rules:
  - id: payments-need-a-human
    match: {method: tools/call, tool: "pay"}
    action: {approve: {by: operator, timeout: 60, on_timeout: block}}
  - id: the-user-decides
    match: {method: tools/call, tool: echo, params: {arguments.text: {equals: "ask"}}}
    action: {approve: {by: user, timeout: 60, fallback: block}}
  - id: echo-times-out
    match: {method: tools/call, tool: echo, params: {arguments.text: {equals: "wait"}}}
    action: {approve: {timeout: 0.5, on_timeout: approve}}
"""


def proxy_config(tmp_path: Path, store: str = "memory://", name: str = "proxy", **extra: Any) -> Path:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    config = {
        "upstreams": {"pay": {"command": [sys.executable, "-m", "tests.servers.recorder"],
                              "env": {"RECORD": str(tmp_path / "calls.jsonl")}, "share": True}},
        "store": store,
        "admin": {"token": TOKEN},
        "keepalive_interval": 0.3,
        "interceptors": [{"name": "rules", "paths": [str(policy)], "watch": False}],
        **extra,
    }  # fmt: skip
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def calls(tmp_path: Path) -> list[dict[str, Any]]:
    record = tmp_path / "calls.jsonl"
    return [orjson.loads(line) for line in record.read_bytes().splitlines()] if record.exists() else []


async def api(base: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as client,
        client.request(method, f"{base}/_shadowproxy{path}", headers=AUTH, json=body) as response,
    ):
        data = await response.json() if response.content_type == "application/json" else None
        return response.status, data


async def pending(base: str, count: int = 1) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    async def listed() -> bool:
        _, body = await api(base, "GET", "/approvals?pending=true")
        found[:] = body["approvals"]
        return len(found) >= count

    for _ in range(300):
        if await listed():
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {count} pending holds: {found}")


def approvals_proxy(name: str) -> Any:
    """A module's proxy on :func:`proxy_config`, with the folder its upstream records calls in."""

    @pytest_asyncio.fixture(scope="module", loop_scope="module")
    async def proxy(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[ProxyProcess, Path]]:
        tmp_path = tmp_path_factory.mktemp(name)
        process = ProxyProcess(tmp_path / "proxy.log")
        await process.start("--config", str(proxy_config(tmp_path)), env=child_env(), cwd=REPO)
        try:
            yield process, tmp_path
        finally:
            await process.stop()

    return proxy


proxy = approvals_proxy("approvals")


async def test_approved_call_gets_the_servers_answer_and_progress_while_held(proxy) -> None:  # type: ignore[no-untyped-def]
    process, tmp_path = proxy
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with Client(process.url, mode="legacy") as client:
        pay = client.call_tool("pay", {"amount": 5, "to": "bob"}, progress_callback=on_progress)
        call = spawn(pay, name="pay")
        (held,) = await pending(process.base)
        assert held["rule"] == "payments-need-a-human" and held["tool"] == "pay"
        assert held["arguments"] == {"amount": 5, "to": "bob"} and held["message"]["method"] == "tools/call"
        assert calls(tmp_path) == []  # the upstream sees nothing until the decision
        await until(lambda: len(progress) >= 2, "progress while held")
        decision = {"decision": "approve", "arguments": {"amount": 7, "to": "bob"}, "by": "ann"}
        status, decided = await api(process.base, "POST", f"/approvals/{held['id']}", decision)
        assert status == 200 and decided["state"] == "approved" and decided["decided_by"] == "ann"
        result = await call
    assert result.content[0].text == "paid 7 to bob"  # type: ignore[union-attr]
    assert calls(tmp_path)[-1] == {"tool": "pay", "arguments": {"amount": 7, "to": "bob"}}
    status, again = await api(process.base, "POST", f"/approvals/{held['id']}", {"decision": "deny"})
    assert status == 409 and "already settled: approved" in again["error"]


async def test_time_held_for_a_decision_is_not_the_proxys_overhead(proxy) -> None:  # type: ignore[no-untyped-def]
    """The overhead histogram (the console's header draws it) leaves out the time a person took to decide."""
    process, _ = proxy
    before = value(await scrape(process.base), "shadowproxy_proxy_overhead_seconds_sum", transport="http")
    async with Client(process.url, mode="legacy") as client:
        call = spawn(client.call_tool("pay", {"amount": 1, "to": "eve"}), name="pay")
        (held,) = await pending(process.base)
        seen = time.monotonic()
        await asyncio.sleep(1.0)
        status, _ = await api(process.base, "POST", f"/approvals/{held['id']}", {"decision": "approve"})
        held_at_least = time.monotonic() - seen
        assert status == 200
        await call
    after = value(await scrape(process.base), "shadowproxy_proxy_overhead_seconds_sum", transport="http")
    # Counted, the hold alone would add at least held_at_least; every request of the window together adds less.
    assert after - before < held_at_least


async def test_denied_call_gets_32010_and_never_reaches_the_server(proxy) -> None:  # type: ignore[no-untyped-def]
    process, tmp_path = proxy
    before = len(calls(tmp_path))
    async with Client(process.url, mode="legacy") as client:
        call = spawn(client.call_tool("pay", {"amount": 1000, "to": "mallory"}), name="pay")
        (held,) = await pending(process.base)
        await api(process.base, "POST", f"/approvals/{held['id']}", {"decision": "deny", "reason": "too much",
                                                                     "by": "ann"})  # fmt: skip
        with pytest.raises(MCPError) as caught:
            await call
    assert caught.value.error.code == -32010
    assert "denied by ann" in caught.value.error.message and "too much" in caught.value.error.message
    assert caught.value.error.data["rule"] == "payments-need-a-human"  # type: ignore[index]
    assert len(calls(tmp_path)) == before
    status, hold = await api(process.base, "GET", f"/approvals/{held['id']}")
    assert status == 200 and hold["state"] == "denied" and hold["reason"] == "too much"


@pytest.mark.parametrize("action", ["accept", "decline"])
async def test_by_user_asks_through_the_clients_elicitation(proxy, action: str) -> None:  # type: ignore[no-untyped-def]
    process, tmp_path = proxy
    before = len(calls(tmp_path))
    asked: list[ElicitRequestParams] = []

    async def the_user(context: object, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params)
        assert calls(tmp_path)[before:] == []  # the upstream sees nothing while the user decides
        return ElicitResult(action=action, content={"reason": f"user said {action}"})  # type: ignore[arg-type]

    async with Client(process.url, mode="legacy", elicitation_callback=the_user) as client:
        if action == "accept":
            result = await client.call_tool("echo", {"text": "ask"})
            assert result.content[0].text == "ask"  # type: ignore[union-attr]
        else:
            with pytest.raises(MCPError) as caught:
                await client.call_tool("echo", {"text": "ask"})
            assert caught.value.error.code == -32010 and "denied by user" in caught.value.error.message
            assert caught.value.error.data["rule"] == "the-user-decides"  # type: ignore[index]
    (question,) = asked
    assert "'echo'" in question.message and '{"text":"ask"}' in question.message
    assert "the-user-decides" in question.message
    hold_id = question.meta["io.shadowproxy/hold"]["id"]  # type: ignore[index]
    status, hold = await api(process.base, "GET", f"/approvals/{hold_id}")
    assert status == 200 and hold["by"] == "user" and hold["decider"] == "user"
    assert hold["state"] == ("approved" if action == "accept" else "denied")
    assert hold["reason"] == f"user said {action}"
    assert calls(tmp_path)[before:] == ([{"tool": "echo", "arguments": {"text": "ask"}}] if action == "accept" else [])


async def test_by_user_without_elicitation_falls_back(proxy) -> None:  # type: ignore[no-untyped-def]
    process, tmp_path = proxy
    before = len(calls(tmp_path))
    async with Client(process.url, mode="legacy") as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("echo", {"text": "ask"})
    assert caught.value.error.code == -32010 and "cannot be asked" in caught.value.error.message
    assert len(calls(tmp_path)) == before


async def test_timeout_follows_on_timeout(proxy) -> None:  # type: ignore[no-untyped-def]
    process, _ = proxy
    async with Client(process.url, mode="legacy") as client:
        result = await client.call_tool("echo", {"text": "wait"})
    assert result.content[0].text == "wait"  # type: ignore[union-attr]
    _, body = await api(process.base, "GET", "/approvals")
    ended = [hold for hold in body["approvals"] if hold["rule"] == "echo-times-out"]
    assert ended[0]["state"] == "approved" and ended[0]["decider"] == "timeout"


async def test_breakpoint_edits_a_request_the_server_sees_the_edit(proxy) -> None:  # type: ignore[no-untyped-def]
    process, tmp_path = proxy
    status, bp = await api(process.base, "POST", "/breakpoints", {"direction": "client_to_server", "tool": "ec*"})
    assert status == 201
    status, bad = await api(process.base, "POST", "/breakpoints", {"tool": "x", "colour": "red"})
    assert status == 400 and "colour" in bad["error"]
    try:
        async with Client(process.url, mode="legacy") as client:
            call = spawn(client.call_tool("echo", {"text": "original"}), name="echo")
            (held,) = await pending(process.base)
            assert held["kind"] == "breakpoint"
            edited = held["message"]
            edited["params"]["arguments"]["text"] = "edited"
            status, _ = await api(process.base, "POST", f"/approvals/{held['id']}",
                                  {"decision": "approve", "message": edited})  # fmt: skip
            assert status == 200
            result = await call
    finally:
        status, _ = await api(process.base, "DELETE", f"/breakpoints/{bp['id']}")
    assert status == 204
    assert result.content[0].text == "edited"  # type: ignore[union-attr]
    assert calls(tmp_path)[-1] == {"tool": "echo", "arguments": {"text": "edited"}}


class Terminal:
    """A command in a tmux session of a private tmux server, driven by keys and read off the screen."""

    def __init__(self, name: str, command: list[str]) -> None:
        self.socket = f"sp-{name}-{os.getpid()}"
        env = " ".join(f"{key}={shlex.quote(value)}" for key, value in child_env(**{TOKEN_ENV: TOKEN}).items())
        shell = f"env {env} {shlex.join(command)}; sleep 30"
        self.tmux(["new-session", "-d", "-s", "t", "-x", "200", "-y", "60", shell], cwd=REPO)

    def tmux(self, args: list[str], cwd: Path | None = None) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, cwd=cwd, check=True)
        return done.stdout

    def screen(self) -> str:
        return self.tmux(["capture-pane", "-p", "-t", "t", "-S", "-200"])

    async def shows(self, text: str) -> None:
        for _ in range(600):
            if text in self.screen():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{text!r} never appeared:\n{self.screen()}")

    def keys(self, *keys: str) -> None:
        self.tmux(["send-keys", "-t", "t", *keys])

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)


needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


@needs_tmux
async def test_approvals_watch_in_a_terminal(proxy) -> None:  # type: ignore[no-untyped-def]
    process, _ = proxy
    command = [sys.executable, "-m", "shadowproxy", "approvals", "watch", "--url", process.base, "--by", "tess"]
    terminal = Terminal("watch", command)
    try:
        await terminal.shows("watching for held calls")
        async with Client(process.url, mode="legacy") as client:
            call = spawn(client.call_tool("pay", {"amount": 3, "to": "carol"}), name="pay")
            await terminal.shows("[a]pprove, [d]eny, [s]kip?")
            assert '{"amount": 3, "to": "carol"}' in terminal.screen()
            terminal.keys("a", "Enter")
            result = await call
        await terminal.shows("approved")
    finally:
        terminal.close()
    assert result.content[0].text == "paid 3 to carol"  # type: ignore[union-attr]
    _, body = await api(process.base, "GET", "/approvals")
    assert body["approvals"][0]["decided_by"] == "tess"


@needs_tmux
async def test_intercept_edits_a_request_in_a_terminal(proxy) -> None:  # type: ignore[no-untyped-def]
    process, tmp_path = proxy
    command = [sys.executable, "-m", "shadowproxy", "intercept", "--url", process.base, "--tool", "echo",
               "--direction", "client_to_server"]  # fmt: skip
    terminal = Terminal("intercept", command)
    try:
        await terminal.shows("breakpoint")
        async with Client(process.url, mode="legacy") as client:
            call = spawn(client.call_tool("echo", {"text": "typed"}), name="echo")
            await terminal.shows("[r]esume [e]dit [d]rop [a]nswer [q]uit?")
            assert '"text": "typed"' in terminal.screen()
            terminal.keys("e", "Enter")
            await terminal.shows("message JSON>")
            edited = {"method": "tools/call", "params": {"name": "echo", "arguments": {"text": "from tmux"}}}
            terminal.keys("-l", json.dumps(edited))
            terminal.keys("Enter")
            result = await call
        await terminal.shows("approved")
        terminal.keys("C-c")
        for _ in range(200):
            _, listed = await api(process.base, "GET", "/breakpoints")
            if not listed["breakpoints"]:
                break
            await asyncio.sleep(0.05)
        assert listed["breakpoints"] == []  # removed as the command ended
    finally:
        terminal.close()
    assert result.content[0].text == "from tmux"  # type: ignore[union-attr]
    assert calls(tmp_path)[-1] == {"tool": "echo", "arguments": {"text": "from tmux"}}
