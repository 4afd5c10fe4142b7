"""Limits on upstream children: message size, CPU, memory and open files, and a bounded stderr in the log."""

from __future__ import annotations

import resource
import sys
from pathlib import Path
from typing import Any

import orjson

from shadowproxy.core.limit_hits import LIMIT_EXCEEDED
from tests.ops.helpers import value
from tests.support import ProxyProcess

from .helpers import open_session
from .test_limits import HITS, SERVER, call, post, scrape, start


async def start_child(start_proxy, tmp_path: Path, limits: dict[str, Any]) -> ProxyProcess:  # type: ignore[no-untyped-def]
    upstream = {"command": [sys.executable, str(SERVER)], "limits": limits}
    return await start(start_proxy, tmp_path, upstreams={"default": upstream})


def text_of(payload: dict[str, Any]) -> str:
    return payload["result"]["content"][0]["text"]  # type: ignore[no-any-return]


async def test_upstream_message_over_the_limit_fails_its_request_and_the_child_serves_on(  # type: ignore[no-untyped-def]
    start_proxy, tmp_path: Path
) -> None:
    proxy = await start_child(start_proxy, tmp_path, {"message": "64KiB"})
    session = {"Mcp-Session-Id": await open_session(proxy.url)}
    status, payload, _ = await post(proxy.url, call(2, "big", size=1000), **session)
    assert status == 200 and len(text_of(payload)) == 1000
    for size in (70_000, 3_000_000):  # within one read, and across many
        status, payload, headers = await post(proxy.url, call(3, "big", size=size), **session)
        # 502 when the answer is plain JSON; an event stream already said 200 before the error came.
        assert status == (200 if headers["Content-Type"] == "text/event-stream" else 502)
        assert payload["id"] == 3
        assert payload["error"]["code"] == LIMIT_EXCEEDED
        assert "over 65536 bytes (limits.message" in payload["error"]["message"]
        status, payload, _ = await post(proxy.url, call(4, "echo", text="still here"), **session)
        assert status == 200 and text_of(payload) == "still here"
    assert value(await scrape(proxy.base), HITS, limit="upstream_message") == 2


async def test_children_run_under_the_configured_resource_limits(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_child(start_proxy, tmp_path, {"cpu": 120, "memory": "1GiB", "files": 64})
    session = {"Mcp-Session-Id": await open_session(proxy.url)}
    _, payload, _ = await post(proxy.url, call(2, "rlimits"), **session)
    assert orjson.loads(text_of(payload)) == {"cpu": 120, "memory": 1024**3, "files": 64}
    _, payload, _ = await post(proxy.url, call(3, "allocate", size=2 * 1024**3), **session)
    assert text_of(payload) == "MemoryError"
    _, payload, _ = await post(proxy.url, call(4, "allocate", size=1024**2), **session)
    assert text_of(payload) == f"allocated {1024**2}"


async def test_a_child_flooding_stderr_does_not_flood_the_log(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_child(start_proxy, tmp_path, {})
    session = {"Mcp-Session-Id": await open_session(proxy.url)}
    _, payload, _ = await post(proxy.url, call(2, "stderr", count=5000), **session)
    assert text_of(payload) == "said"
    logged = proxy.log().count("stderr: noise")
    assert 0 < logged <= 400
    assert "lines are left out of the log" in proxy.log()
    assert value(await scrape(proxy.base), HITS, limit="upstream_stderr") == 5000 - logged


async def test_a_limit_above_the_proxys_own_hard_limit_is_clamped_to_it(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    proxy = await start_child(start_proxy, tmp_path, {"files": 10**9})
    session = {"Mcp-Session-Id": await open_session(proxy.url)}
    _, payload, _ = await post(proxy.url, call(2, "rlimits"), **session)
    assert orjson.loads(text_of(payload))["files"] == (10**9 if hard == resource.RLIM_INFINITY else hard)
