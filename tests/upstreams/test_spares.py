"""Spare processes of a per-session stdio server (``spare``): real children of ``tests/servers/which_process.py``,
which writes a file per process (its pid, and the first message it was sent)."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shadowproxy import config
from shadowproxy.bridge.pool import HandshakePool
from shadowproxy.config import CircuitConfig
from shadowproxy.core.errors import ConfigError
from shadowproxy.core.jsonrpc import Kind, Message
from shadowproxy.upstreams.base import final_reply
from shadowproxy.upstreams.child import ChildProcess
from shadowproxy.upstreams.child_channel import ChildChannel
from shadowproxy.upstreams.circuit import Circuit, CircuitState
from shadowproxy.upstreams.stdio import StdioUpstream
from tests.ops.helpers import TOKEN, admin
from tests.support import REPO, until

SERVER = REPO / "tests" / "servers" / "which_process.py"


def upstream(folder: Path, *extra: str, **settings: Any) -> StdioUpstream:
    command = [sys.executable, str(SERVER), str(folder), *extra]
    return StdioUpstream(config.UpstreamConfig.model_validate({"name": "which", "command": command, **settings}))


def pid_of(child: ChildProcess) -> int:
    assert child.transport is not None
    return child.transport.get_pid()


def started(folder: Path, pid: int) -> dict[str, Any] | None:
    """What the process ``pid`` wrote of itself, once it has (``None`` before it ran)."""
    record = folder / f"{pid}.json"
    return json.loads(record.read_text()) if record.exists() else None


def pids_in(folder: Path) -> list[int]:
    """Every process of the server started so far."""
    return [int(record.stem) for record in folder.glob("*.json")]


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def ready_spare(up: StdioUpstream, folder: Path, *, besides: set[int] = frozenset()) -> int:  # type: ignore[assignment]
    """The pid of a spare that is running its own code, none of ``besides``; 0 while there is none."""
    for child in up.spares.ready:
        pid = pid_of(child)
        if child.alive and pid not in besides and started(folder, pid) is not None:
            return pid
    return 0


async def initialize(channel: ChildChannel, client: str) -> dict[str, Any]:
    params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": client, "version": "1"}}
    request = Message(Kind.REQUEST, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params})
    reply = await final_reply(await channel.request(request, {}))
    assert isinstance(reply.result, dict), reply
    return reply.result


async def test_a_new_session_takes_a_spare_started_before_it_and_another_is_started(tmp_path: Path) -> None:
    up = upstream(tmp_path, spare=1)
    try:
        first = await up.open(lambda message: None)
        assert isinstance(first, ChildChannel)
        cold = pid_of(first.child)
        await until(lambda: ready_spare(up, tmp_path), "a spare")
        spare = ready_spare(up, tmp_path)
        assert spare != cold
        # Nothing was sent to the spare while it waited.
        assert started(tmp_path, spare) == {"pid": spare, "first": None}

        second = await up.open(lambda message: None)
        assert isinstance(second, ChildChannel)
        assert pid_of(second.child) == spare and up.spares.taken == 1
        assert (await initialize(second, "second"))["serverInfo"]["version"] == str(spare)
        # The session that took it sent the process its very first message, its own initialize.
        first_message = started(tmp_path, spare)["first"]  # type: ignore[index]
        assert first_message["method"] == "initialize"
        assert first_message["params"]["clientInfo"]["name"] == "second"

        await until(lambda: ready_spare(up, tmp_path, besides={cold, spare}), "a spare in place of the one taken")
        assert len(up.children) == 3  # two sessions' processes and the spare (the admin view's "processes")
    finally:
        await up.close()


async def test_a_spare_that_died_is_not_handed_out_and_is_replaced(tmp_path: Path) -> None:
    up = upstream(tmp_path, spare=1)
    try:
        await up.open(lambda message: None)
        await until(lambda: ready_spare(up, tmp_path), "a spare")
        [dead] = up.spares.ready
        killed = pid_of(dead)
        os.kill(killed, signal.SIGKILL)
        await until(lambda: not dead.alive, "the proxy to see the spare exit")

        session = await up.open(lambda message: None)
        assert isinstance(session, ChildChannel)
        assert pid_of(session.child) != killed and session.child.alive
        assert (await initialize(session, "after"))["serverInfo"]["version"] == str(pid_of(session.child))
        await until(lambda: ready_spare(up, tmp_path, besides={killed}), "a spare in place of the dead one")
        assert up.crashes == 1  # the spare's unasked exit counts, as any child's
    finally:
        await up.close()


async def test_restart_replaces_the_spares_and_close_leaves_no_process(tmp_path: Path) -> None:
    up = upstream(tmp_path, spare=2)
    try:
        await up.open(lambda message: None)
        await until(lambda: len([c for c in up.spares.ready if started(tmp_path, pid_of(c))]) == 2, "two spares")
        before = {pid_of(child) for child in up.spares.ready}

        await up.restart(prime=5.0)
        for pid in before:
            await until(lambda pid=pid: not running(pid), f"the spare {pid} to end at the restart")
        await until(
            lambda: len([c for c in up.spares.ready if pid_of(c) not in before and started(tmp_path, pid_of(c))]) == 2,
            "two new spares",
        )
    finally:
        await up.close()
    everyone = pids_in(tmp_path)
    assert len(everyone) >= 6  # the session's, the stateless child restarted, 2 + 2 spares
    assert not [pid for pid in everyone if running(pid)] and not up.children and not up.spares.ready


async def test_spares_that_die_at_start_stop_at_the_open_circuit(tmp_path: Path) -> None:
    up = upstream(tmp_path, "--exit", "3", spare=2)
    # Open for longer than the test: once open, nothing may start.
    up.circuit = Circuit("which", CircuitConfig(failures=3, window=600, open_for=600))
    try:
        up.spares.fill()
        await until(lambda: up.circuit.state is CircuitState.OPEN, "the circuit to open")
        assert up.crashes == 3
        # Longer than the pause after the third failure (2 s): without the circuit, a fourth start would be tried.
        await asyncio.sleep(2.5)
        assert up.crashes == 3 and not up.spares.ready and len(pids_in(tmp_path)) == 3
        assert up.spares.failures == 3  # no start was even tried: the filler waits for the circuit
    finally:
        await up.close()


async def test_the_bridge_pool_takes_a_spare_for_a_new_key(tmp_path: Path) -> None:
    """``spare`` unset: a plain per-session server keeps none, one the bridge pools sessions on keeps one."""
    up = upstream(tmp_path)
    pool = HandshakePool(up, idle=3600)
    try:
        plain = await up.open(lambda message: None)
        await plain.close()
        assert up.spares.target == 0 and not up.spares.ready

        first = await pool.session("alice", {})
        assert isinstance(first.channel, ChildChannel)
        await until(lambda: ready_spare(up, tmp_path), "a spare once the bridge pools sessions")
        spare = ready_spare(up, tmp_path)

        other = await pool.session("alice", {"sampling": {}})
        assert isinstance(other.channel, ChildChannel) and pid_of(other.channel.child) == spare
        assert other.initialized["serverInfo"]["version"] == str(spare)
        sent = started(tmp_path, spare)["first"]  # type: ignore[index]
        assert sent["method"] == "initialize" and sent["params"]["capabilities"] == {"sampling": {}}
    finally:
        await pool.close()
        await up.close()


async def test_the_bridge_keeps_no_spare_when_the_config_says_0(tmp_path: Path) -> None:
    up = upstream(tmp_path, spare=0)
    pool = HandshakePool(up, idle=3600)
    try:
        await pool.session("alice", {})
        assert up.spares.target == 0 and not up.spares.ready
    finally:
        await pool.close()
        await up.close()


async def test_the_proxy_starts_spares_lists_them_and_leaves_none_at_shutdown(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    records = tmp_path / "processes"
    records.mkdir()
    command = [sys.executable, str(SERVER), str(records)]
    path = tmp_path / "sp.yaml"
    settings = {"upstreams": {"which": {"command": command, "spare": 2}}, "admin": {"token": TOKEN}}
    path.write_text(yaml.safe_dump(settings))
    proxy = await start_proxy("--config", str(path))
    # Started with the proxy: the stateless child it warms, and two spares, none sent anything but the first.
    await until(lambda: len(pids_in(records)) == 3, "the stateless child and two spares")
    status, listed = await admin(proxy.base, "GET", "/upstreams")
    assert status == 200
    [entry] = [item for item in listed["upstreams"] if item["name"] == "which"]
    assert entry["processes"] == 3
    assert entry["spares"] == {"ready": 2, "target": 2, "taken": 0}, "the admin view names the spares apart"
    firsts = [started(records, pid)["first"] for pid in pids_in(records)]  # type: ignore[index]
    assert sorted(str(first and first["method"]) for first in firsts) == ["None", "None", "server/discover"]

    await proxy.stop()
    assert not [pid for pid in pids_in(records) if running(pid)]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("  a: {url: 'http://a/mcp', spare: 1}\n", "[upstreams.a.spare]: applies to stdio servers with a child per"),
        ("  a: {command: x, share: true, spare: 1}\n", "[upstreams.a.spare]: applies to stdio servers with a child"),
        ("  a: {command: x, spare: -1}\n", "[upstreams.a.spare]: must not be negative"),
        ("  a: {command: x, spare: 17}\n", "[upstreams.a.spare]: must be at most 16"),
        ("  a: {command: x, spare: true}\n", "[upstreams.a.spare]: must be a number"),
    ],
)
def test_spare_mistakes_are_named(tmp_path: Path, text: str, needle: str) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text("upstreams:\n" + text)
    with pytest.raises(ConfigError) as caught:
        config.load(str(file), env={})
    assert needle in str(caught.value)


def test_spare_is_read(tmp_path: Path) -> None:
    file = tmp_path / "sp.yaml"
    file.write_text("upstreams:\n  a: {command: x, spare: 2}\n  b: {command: y}\n")
    a, b = config.load(str(file), env={}).upstreams
    assert a.spare == 2 and b.spare is None
    assert config.parse_upstream("c", shlex.join(["x", "y"])).spare is None
