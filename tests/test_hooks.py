"""Extension points: the hooks a plugin may have are resolved once, observers see every message (the ones the
chain skipped too), the audit log is an observer that leaves the chain's skip on, and lifecycle hooks are called."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from mcp import Client
from mcp.shared.exceptions import MCPError

from shadowproxy import config
from shadowproxy.core.chain import Chain, Direction
from shadowproxy.core.record import SessionRecord
from shadowproxy.interceptors.audit import create as create_audit
from shadowproxy.proxy.proxy import Proxy
from shadowproxy.sessions.manager import LiveSession
from tests.hook_fixtures import Broken, Lifecycle, Watcher
from tests.rules.helpers import call, interceptor, notification, reply, request, text_result
from tests.support import sdk_server_command, until

C2S, S2C = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
POLICY = "rules:\n  - id: no-fail\n    match: {direction: client_to_server, tool: fail}\n    action: block\n"


def proxy_config(folder: Path, interceptors: list[dict[str, Any]]) -> Path:
    (folder / "policy.yaml").write_text(POLICY)
    file = folder / "proxy.yaml"
    document = {"upstreams": {"files": {"command": sdk_server_command()}}, "interceptors": interceptors}
    file.write_text(yaml.safe_dump(document))
    return file


def rules_entry(folder: Path) -> dict[str, Any]:
    return {"name": "rules", "paths": [str(folder / "policy.yaml")], "watch": False}


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_each_kind_of_hook_is_found_once_when_the_chain_is_built(tmp_path: Path) -> None:
    rules = interceptor(tmp_path, POLICY)
    audit = create_audit({"file": str(tmp_path / "audit.jsonl")})
    lifecycle, watcher, broken = Lifecycle(tmp_path / "record"), Watcher(tmp_path / "record"), Broken()
    chain = Chain([rules, audit, lifecycle, watcher, broken])
    assert chain.interceptors == (rules, audit, lifecycle, watcher, broken), "config order, every hook"
    assert chain.judges == (rules, lifecycle)
    assert chain.observers == (audit, watcher, broken)
    assert chain.startables == (rules, audit, lifecycle)
    assert chain.closables == (rules, audit, lifecycle)
    assert chain.reloadables == (rules, lifecycle, watcher)


def test_the_audit_log_wants_only_the_calls_it_writes_and_their_replies() -> None:
    audit = create_audit({"stream": "stderr"})
    echo = call("echo")
    assert audit.wants(echo, C2S, None)
    assert audit.wants(request("resources/read", {"uri": "test://x"}), C2S, None)
    assert audit.wants(reply(text_result("hi")), S2C, echo)
    assert not audit.wants(request("tools/list"), C2S, None)
    assert not audit.wants(reply({"tools": []}), S2C, request("tools/list"))
    assert not audit.wants(notification("notifications/progress", {"progressToken": 1, "progress": 1}), S2C, None)


async def test_an_audit_on_chain_still_skips_a_call_no_rule_concerns(tmp_path: Path) -> None:
    audit_file = tmp_path / "audit.jsonl"
    file = proxy_config(tmp_path, [{"name": "audit", "file": str(audit_file)}, rules_entry(tmp_path)])
    proxy = Proxy(config.load(str(file)))
    await proxy.start(on_demand=True)
    try:
        mount = proxy.mounts[0]
        session = LiveSession(SessionRecord(id="s-1", client_info={"name": "unit", "version": "1"}), mount)
        first = call("echo", {"text": "one"}, id=1)
        # The rules learn that they have nothing to say about echo by judging its first call.
        assert (await mount.judge(first, C2S, session, "http")).is_forward
        assert (await mount.judge(reply(text_result("one"), id=1), S2C, session, "http", first)).is_forward
        second = call("echo", {"text": "two"}, id=2)
        assert proxy.chain.declines(second, C2S), "the audit log does not turn the chain's skip off"
        assert mount.passes(second, C2S, session, "http")
        assert mount.passes(reply(text_result("two"), id=2), S2C, session, "http", second)
        assert not mount.passes(call("fail", id=3), C2S, session, "http"), "a call a rule names is judged"
    finally:
        await proxy.stop()
    written = [orjson.loads(line) for line in lines(audit_file)]
    calls = [(line["id"], line["tool"], line["outcome"], line["session"]) for line in written]
    assert calls == [(1, "echo", "ok", "s-1"), (2, "echo", "ok", "s-1")], "the skipped call is in the log too"


async def test_an_observer_plugin_sees_skipped_and_judged_messages_and_reloads(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    record = tmp_path / "watcher.txt"
    watcher = {"name": "tests.hook_fixtures:watcher", "record": str(record)}
    proxy = await start_proxy("--config", str(proxy_config(tmp_path, [watcher, rules_entry(tmp_path)])))
    async with Client(proxy.url, mode="legacy") as client:
        for text in ("one", "two", "three"):
            assert (await client.call_tool("echo", {"text": text})).content[0].text == text  # type: ignore[union-attr]
        with pytest.raises(MCPError):
            await client.call_tool("fail", {"reason": "x"})
    seen = lines(record)
    assert seen.count("client_to_server tools/call forward http") == 3
    assert seen.count("server_to_client tools/call forward http") == 3
    assert seen.count("client_to_server tools/call block http") == 1
    assert "client_to_server initialize forward http" in seen
    proxy.signal(signal.SIGHUP)
    await until(lambda: "reload" in lines(record), "the observer to be reloaded")


async def test_a_plugin_interceptor_is_started_reloaded_and_closed(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    record = tmp_path / "lifecycle.txt"
    lifecycle = {"name": "tests.hook_fixtures:lifecycle", "record": str(record)}
    proxy = await start_proxy("--config", str(proxy_config(tmp_path, [lifecycle])))
    assert lines(record) == ["start"]
    async with Client(proxy.url, mode="legacy") as client:
        assert (await client.call_tool("echo", {"text": "a"})).content[0].text == "a"  # type: ignore[union-attr]
    proxy.signal(signal.SIGHUP)
    await until(lambda: lines(record) == ["start", "reload"], "the interceptor to be reloaded")
    await proxy.stop()
    assert lines(record) == ["start", "reload", "close"]


async def test_an_observer_that_raises_leaves_the_message_as_decided(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    file = proxy_config(tmp_path, [{"name": "tests.hook_fixtures:broken"}, rules_entry(tmp_path)])
    proxy = Proxy(config.load(str(file)))
    mount = proxy.mounts[0]
    session = LiveSession(SessionRecord(id="s-1"), mount)
    with caplog.at_level(logging.ERROR, logger="shadowproxy.core.chain"):
        assert (await mount.judge(call("echo", id=1), C2S, session, "http")).is_forward
        assert not (await mount.judge(call("fail", id=2), C2S, session, "http")).is_forward
        assert mount.passes(call("echo", id=3), C2S, session, "http"), "skipped, and shown to the observer"
    assert proxy.chain.failures.by_name == {"broken": 3}
    failures = [record for record in caplog.records if record.getMessage().startswith("observer 'broken' failed")]
    assert len(failures) == 3 and all(record.exc_info for record in failures)
