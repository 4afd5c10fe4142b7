"""Request ids in logs: the client's failing request and the upstream's line about it carry the same id."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

from tests.support import REPO, ProxyProcess
from tests.test_lifecycle import open_session

FLAKY = REPO / "tests" / "servers" / "flaky.py"
CRASH = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "crash", "arguments": {}}}


def config(tmp_path: Path, **extra: Any) -> Path:
    state = tmp_path / "flaky"
    state.mkdir(exist_ok=True)
    upstream = {"command": [sys.executable, str(FLAKY)], "env": {"FLAKY_DIR": str(state)}}
    path = tmp_path / "shadowproxy.yaml"
    path.write_text(yaml.safe_dump({"upstreams": {"flaky": upstream}, **extra}))
    return path


async def crash(proxy: ProxyProcess, request_id: str | None) -> tuple[str, dict[str, Any]]:
    """A tools/call whose server dies before answering; the id the proxy gave back, and the answer."""
    async with aiohttp.ClientSession() as client:
        headers = {**await open_session(client, proxy.url), "Accept": "application/json"}
        if request_id is not None:
            headers = {**headers, "X-Request-Id": request_id}
        async with client.post(proxy.url, json=CRASH, headers=headers) as response:
            return response.headers["X-Request-Id"], await response.json()


def json_lines(proxy: ProxyProcess) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in proxy.log().splitlines() if line.startswith("{")]


async def test_a_failing_request_and_its_upstream_line_share_the_id(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_proxy("--config", str(config(tmp_path)), "--log-format", "json")
    proxy.url = proxy.url.removesuffix('"}')  # found in a JSON line by a pattern made for text ones
    given, answer = await crash(proxy, "client-chosen.id-42")
    assert given == "client-chosen.id-42"
    assert answer["error"]["code"] == -32000 and "exited" in answer["error"]["message"]

    lines = json_lines(proxy)
    client_side = [line for line in lines if line["message"].startswith("request 'tools/call' failed")]
    upstream_side = [line for line in lines if "before answering 'tools/call'" in line["message"]]
    assert [line.get("request_id") for line in client_side] == ["client-chosen.id-42"]
    assert [line.get("request_id") for line in upstream_side] == ["client-chosen.id-42"]
    assert upstream_side[0]["logger"] == "shadowproxy.upstreams.stdio"
    # Lines that belong to no request carry no id, even those of a child a request happened to start.
    assert all("request_id" not in line for line in lines if line["message"].startswith("serving "))
    assert all("request_id" not in line for line in lines if "exited with code 3" == line["message"][-18:])


async def test_ids_are_made_up_when_missing_or_unfit_and_shown_in_text_logs(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy = await start_proxy("--config", str(config(tmp_path)))
    made, _ = await crash(proxy, None)
    unfit, _ = await crash(proxy, "bad id with spaces\tand a tab")
    assert made != unfit and unfit != "bad id with spaces\tand a tab"
    for request_id in (made, unfit):
        assert f"shadowproxy.fronts.http.endpoint [{request_id}]: request 'tools/call' failed" in proxy.log()
        assert f"shadowproxy.upstreams.stdio [{request_id}]: upstream flaky exited" in proxy.log()


async def test_every_kind_of_answer_carries_its_id(stdio_proxy: ProxyProcess) -> None:
    """JSON and streamed MCP answers (served past the router), aiohttp's and our refusals, routed pages, streams."""
    params = {"name": "slow", "arguments": {"seconds": 0.3}}
    slow = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": params}
    async with aiohttp.ClientSession() as client:
        headers = await open_session(client, stdio_proxy.url)
        ping = {"jsonrpc": "2.0", "id": 3, "method": "ping"}
        # JSON only: a client that takes event streams too gets one for an answer slower than stream_after (0.1 s).
        json_only = {**headers, "Accept": "application/json", "X-Request-Id": "json-1"}
        async with client.post(stdio_proxy.url, json=ping, headers=json_only) as response:
            assert response.content_type == "application/json"
            assert response.headers["X-Request-Id"] == "json-1"
        async with client.post(stdio_proxy.url, json=slow, headers={**headers, "X-Request-Id": "sse-1"}) as response:
            assert response.content_type == "text/event-stream"
            assert response.headers["X-Request-Id"] == "sse-1"
            assert b'"id":2' in await response.read()
        huge = b'{"jsonrpc": "2.0", "id": 4, "method": "ping", "pad": "' + b"x" * 5_000_000 + b'"}'
        oversized = {**headers, "X-Request-Id": "big-1"}
        async with client.post(stdio_proxy.url, data=huge, headers=oversized) as response:
            assert response.status == 413 and response.headers["X-Request-Id"] == "big-1"
        refused = {**headers, "X-Request-Id": "host-1", "Host": "evil.example"}
        async with client.post(stdio_proxy.url, json=ping, headers=refused) as response:
            assert response.status == 421 and response.headers["X-Request-Id"] == "host-1"
        base = stdio_proxy.url.rsplit("/", 1)[0]
        async with client.get(f"{base}/healthz", headers={"X-Request-Id": "health-1"}) as response:
            assert response.status == 200 and response.headers["X-Request-Id"] == "health-1"
        listen = {**headers, "Accept": "text/event-stream", "X-Request-Id": "get-1"}
        async with client.get(stdio_proxy.url, headers=listen) as response:
            assert response.status == 200 and response.headers["X-Request-Id"] == "get-1"
