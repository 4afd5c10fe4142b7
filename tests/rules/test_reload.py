"""Reloads: on demand and on change, atomic, and an invalid file keeps the last good rules."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from shadowproxy.core.chain import FORWARD, Action
from shadowproxy.interceptors.rules import create

from .helpers import call, ctx, session, write

BLOCK_X = "rules:\n  - {id: no-x, match: {tool: x}, action: block}\n"
ALLOW_ALL = "rules:\n  - {id: anything, match: {}, action: allow}\n"


def reloads(outcome: str) -> float:
    return REGISTRY.get_sample_value("shadowproxy_rules_reloads_total", {"outcome": outcome}) or 0.0


async def wait_for(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"timed out waiting for {what}")


async def test_reload_changes_the_verdict_mid_session(tmp_path: Path) -> None:
    file = write(tmp_path / "policy.yaml", BLOCK_X)
    rules = create({"paths": [str(file)], "watch": False})
    record = session()
    assert (await rules.on_message(ctx(call("x"), session_record=record))).action is Action.BLOCK
    write(file, ALLOW_ALL)
    before = reloads("success")
    assert await rules.reload() is True
    assert reloads("success") == before + 1
    assert (await rules.on_message(ctx(call("x"), session_record=record))) is FORWARD
    assert REGISTRY.get_sample_value("shadowproxy_rules_loaded") == 1


async def test_broken_reload_keeps_the_old_rules(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    file = write(tmp_path / "policy.yaml", BLOCK_X)
    rules = create({"paths": [str(file)], "watch": False})
    old = rules.rules
    write(file, "rules:\n  - {id: no-x, match: {tol: x}, action: block}\n")
    before = reloads("failure")
    with caplog.at_level(logging.ERROR, logger="shadowproxy.interceptors.rules"):
        assert await rules.reload() is False
    assert reloads("failure") == before + 1
    assert rules.rules is old
    assert rules.last_error is not None and "policy.yaml:2: rule 'no-x': unknown key 'tol'" in rules.last_error
    assert "last good rules stay in force" in caplog.text and "unknown key 'tol'" in caplog.text
    assert (await rules.on_message(ctx(call("x")))).action is Action.BLOCK
    # A deleted file is a failed reload too.
    file.unlink()
    assert await rules.reload() is False
    assert (await rules.on_message(ctx(call("x")))).action is Action.BLOCK


async def test_watch_reloads_on_change_and_skips_a_broken_file_once(tmp_path: Path) -> None:
    file = write(tmp_path / "policy.yaml", BLOCK_X)
    rules = create({"paths": [str(tmp_path)], "watch": True, "watch_interval": 0.02})
    await rules.start()
    try:
        write(file, ALLOW_ALL)
        await wait_for(lambda: rules.rules.rules[0].id == "anything", "the watcher to take the new file")
        assert (await rules.on_message(ctx(call("x")))) is FORWARD
        failures = reloads("failure")
        write(file, "rules: [")
        await wait_for(lambda: reloads("failure") == failures + 1, "the broken file to be refused")
        for _ in range(10):  # several more polls: an unchanged broken file is not retried
            await asyncio.sleep(0.02)
        assert reloads("failure") == failures + 1
        assert rules.rules.rules[0].id == "anything"
        # A new file in the watched directory is picked up.
        write(file, BLOCK_X)
        write(tmp_path / "more.yaml", "rules:\n  - {id: no-y, match: {tool: y}, action: block}\n")
        await wait_for(lambda: len(rules.rules.rules) == 2, "the new file")
        assert (await rules.on_message(ctx(call("y")))).action is Action.BLOCK
    finally:
        await rules.close()
    assert rules._watcher is None


async def test_same_size_rewrite_is_seen_through_mtime(tmp_path: Path) -> None:
    file = write(tmp_path / "policy.yaml", "rules:\n  - {id: no-x, match: {tool: x}, action: block}\n")
    rules = create({"paths": [str(file)], "watch": True, "watch_interval": 0.02})
    await rules.start()
    try:
        stat = file.stat()
        write(file, "rules:\n  - {id: no-z, match: {tool: z}, action: block}\n")
        os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        await wait_for(lambda: rules.rules.rules[0].id == "no-z", "the same-size rewrite")
    finally:
        await rules.close()


async def test_a_message_is_judged_by_one_set_never_a_mix(tmp_path: Path) -> None:
    version = (
        "rules:\n"
        "  - {{id: tag-{v}, match: {{}}, action: {{tag: {v}}}}}\n"
        "  - {{id: block-{v}, match: {{}}, action: block}}\n"
    )
    file = write(tmp_path / "policy.yaml", version.format(v="one"))
    rules = create({"paths": [str(file)], "watch": False})
    done = asyncio.Event()
    seen: dict[str, int] = {}

    async def judge() -> None:
        while not done.is_set():
            record = session()
            verdict = await rules.on_message(ctx(call("x"), session_record=record))
            assert verdict.error is not None
            (tag,) = record.tags
            assert verdict.error.message == f"blocked by policy (rule 'block-{tag}')"
            seen[tag] = seen.get(tag, 0) + 1
            await asyncio.sleep(0)

    async def flip() -> None:
        for index in range(20):
            write(file, version.format(v="two" if index % 2 == 0 else "one"))
            assert await rules.reload()
        done.set()

    await asyncio.gather(flip(), judge(), judge())
    assert set(seen) == {"one", "two"}, seen
