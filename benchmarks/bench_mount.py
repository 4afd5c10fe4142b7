"""One echo call and its reply through a mount, with no interceptor, with 100 rules, and with the audit log on too.

The rules name no ``echo`` tool, so the chain skips the call and its reply; the ``audit`` rows show what the
audit log costs on top (it writes one line per call, in its own thread). Nothing here suspends, so each
message is driven with one ``send`` and no event loop, as in ``bench_chain``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.recorder import TEXT, call_body
from shadowproxy import config
from shadowproxy.core.chain import Direction, Verdict
from shadowproxy.core.jsonrpc import Message, decode
from shadowproxy.core.record import SessionRecord
from shadowproxy.proxy.mount import Mount
from shadowproxy.proxy.proxy import Proxy
from shadowproxy.sessions.manager import LiveSession

ANSWER = b'{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"%s"}],"isError":false}}' % TEXT.encode()


def finish(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends, without an event loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise AssertionError("the coroutine suspended")


def chain_config(folder: Path, chain: str) -> dict[str, Any]:
    rules = folder / "rules.yaml"
    entries = [{"id": f"rule-{i}", "match": {"tool": f"tool_{i}_*"}, "action": "block"} for i in range(100)]
    rules.write_text(yaml.safe_dump({"rules": entries}))
    interceptors: list[dict[str, Any]] = []
    if "audit" in chain:
        interceptors.append({"name": "audit", "file": str(folder / "audit.jsonl")})
    if "rules" in chain:
        interceptors.append({"name": "rules", "paths": [str(rules)], "watch": False})
    return {"upstreams": {"default": {"command": ["unused"]}}, "interceptors": interceptors}


@pytest.fixture(params=["empty", "rules", "rules+audit"])
def mount(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Mount]:
    file = tmp_path / "proxy.yaml"
    file.write_text(yaml.safe_dump(chain_config(tmp_path, request.param)))
    proxy = Proxy(config.load(str(file)))
    hooks = proxy.chain.interceptors
    # Starting and closing may wait (a rules file's first read, the audit thread); judging never does.
    loop = asyncio.new_event_loop()
    for hook in hooks:
        if hasattr(hook, "start"):
            loop.run_until_complete(hook.start())
    yield proxy.mounts[0]
    for hook in hooks:
        if hasattr(hook, "close"):
            loop.run_until_complete(hook.close())
    loop.close()


def test_call_and_reply(benchmark: BenchmarkFixture, mount: Mount) -> None:
    call, answer = decode(call_body(7)), decode(ANSWER)
    assert isinstance(call, Message) and isinstance(answer, Message)
    session = LiveSession(SessionRecord(id="bench", client_info={"name": "bench", "version": "1"}), mount)

    def round_trip() -> tuple[Verdict, Verdict]:
        sent = finish(mount.judge(call, Direction.CLIENT_TO_SERVER, session, "http"))
        return sent, finish(mount.judge(answer, Direction.SERVER_TO_CLIENT, session, "http", call))

    sent, answered = benchmark(round_trip)
    assert sent.is_forward and sent.message is None and answered.is_forward and answered.message is None
