"""The live tap: a real proxy, SDK clients making calls, tap readers and the ``shadowproxy tap`` CLI following it."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from mcp import Client
from mcp.shared.exceptions import MCPError

from shadowproxy.core.chain import FORWARD, Direction, block
from shadowproxy.core.jsonrpc import decode
from shadowproxy.core.sse import SseParser
from shadowproxy.proxy.tap import QUEUE_LIMIT, Tap, TapFilter
from tests.support import REPO, ProxyProcess, child_env, sdk_server_command

from .helpers import AUTH, TOKEN

POLICY = """
rules:
  - id: mask-codes
    match: {direction: client_to_server, tool: echo}
    action: {redact: {detectors: [], patterns: ["TOPSECRET-[0-9]+"]}}
  - id: no-fail
    match: {direction: client_to_server, tool: fail}
    action: {block: {message: "fail is disabled"}}
"""
RULE_SECRET = "TOPSECRET-4242"
API_KEY = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0K1l2"
WAIT = 30.0


def write_config(tmp_path: Path, rules: bool, **extra: Any) -> Path:
    config: dict[str, Any] = {
        "upstreams": {"files": {"command": sdk_server_command()}},
        "store": "memory://",
        "admin": {"token": TOKEN},
        "interceptors": [],
        **extra,
    }
    if rules:
        policy = tmp_path / "policy.yaml"
        policy.write_text(POLICY)
        config["interceptors"] = [{"name": "rules", "paths": [str(policy)], "watch": False}]
    path = tmp_path / "proxy.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class TapReader:
    """One ``GET /_shadowproxy/tap`` stream, its events collected as they come."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.text = b""
        self.pumping: asyncio.Future[None] | None = None

    async def pump(self) -> None:
        parser = SseParser()
        async for chunk in self.response.content.iter_any():
            self.text += chunk
            for event in parser.feed(chunk):
                self.events.put_nowait(orjson.loads(event.data))

    async def until(self, wanted: Any) -> list[dict[str, Any]]:
        """Every event up to and including the first for which ``wanted(event)`` is true."""
        seen: list[dict[str, Any]] = []
        async with asyncio.timeout(WAIT):
            while True:
                seen.append(await self.events.get())
                if wanted(seen[-1]):
                    return seen


@pytest.fixture
async def open_tap() -> AsyncIterator[Any]:
    async with aiohttp.ClientSession() as client:
        tasks: list[asyncio.Future[None]] = []

        async def start(base: str, query: str = "") -> TapReader:
            response = await client.get(f"{base}/_shadowproxy/tap{query}", headers=AUTH)
            assert response.status == 200 and response.content_type == "text/event-stream"
            reader = TapReader(response)
            reader.pumping = asyncio.ensure_future(reader.pump())  # noqa: TID251
            tasks.append(reader.pumping)
            return reader

        yield start
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_tap_shows_every_message_filtered_and_redacted(start_proxy, open_tap, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy: ProxyProcess = await start_proxy("--config", str(write_config(tmp_path, rules=True)))
    everything = await open_tap(proxy.base, "?bodies=1")
    calls = await open_tap(proxy.base, "?method=tools/call")
    globbed = await open_tap(proxy.base, "?method=tools/c%2Al")

    async with Client(proxy.url, mode="legacy") as client:
        await client.list_tools()
        echoed = await client.call_tool("echo", {"text": f"code {RULE_SECRET} key {API_KEY}"})
        assert echoed.content[0].text == f"code [REDACTED:pattern] key {API_KEY}"  # type: ignore[union-attr]
        with pytest.raises(MCPError, match="fail is disabled"):
            await client.call_tool("fail", {"reason": "x"})
        await client.call_tool("echo", {"text": "last"})

    seen = await everything.until(lambda e: e["kind"] == "response" and "last" in orjson.dumps(e["body"]).decode())
    assert RULE_SECRET.encode() not in everything.text, "the redact rule's mask shows in the tap"
    assert API_KEY.encode() not in everything.text, "the tap's own redactors mask what no rule did"
    methods = [event["method"] for event in seen]
    assert methods[:3] == ["initialize", "initialize", "notifications/initialized"]
    assert "tools/list" in methods
    session = seen[0]["session"]
    assert session and all(event["session"] == session for event in seen)
    for event in seen:
        assert event["transport"] == "http" and event["upstream"] == "files"
        assert event["size"] > 0 and event["direction"] in ("client_to_server", "server_to_client")

    requests = [e for e in seen if e["kind"] == "request" and e["method"] == "tools/call"]
    echo_request, fail_request, _ = requests
    assert echo_request["verdict"] == "modified" and echo_request["direction"] == "client_to_server"
    assert echo_request["body"]["params"]["arguments"]["text"] == "code [REDACTED:pattern] key [REDACTED:api_key]"
    assert fail_request["verdict"] == "block" and fail_request["by"] == "rules"
    echo_reply = next(e for e in seen if e["kind"] == "response" and e["id"] == echo_request["id"])
    assert echo_reply["method"] == "tools/call" and echo_reply["direction"] == "server_to_client"
    assert isinstance(echo_reply["latency_ms"], float) and echo_reply["latency_ms"] >= 0
    assert echo_reply["verdict"] == "forward"
    assert not any(e["kind"] == "response" and e["id"] == fail_request["id"] for e in seen), "blocked: no reply"
    assert echo_request["latency_ms"] is None

    for reader in (calls, globbed):
        filtered = await reader.until(lambda e: e["kind"] == "response" and e["id"] == seen[-1]["id"])
        assert [e["method"] for e in filtered] == ["tools/call"] * 5  # echo, echo's reply, fail, echo, its reply
        assert b'"body"' not in reader.text, "bodies only when asked for"


async def test_session_filter_and_the_empty_chain(start_proxy, open_tap, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy: ProxyProcess = await start_proxy("--config", str(write_config(tmp_path, rules=False)))
    everything = await open_tap(proxy.base)
    async with Client(proxy.url, mode="legacy") as first, Client(proxy.url, mode="legacy") as second:
        first_init = await everything.until(lambda e: e["method"] == "notifications/initialized")
        first_id = first_init[0]["session"]
        await everything.until(lambda e: e["method"] == "notifications/initialized")
        only_first = await open_tap(proxy.base, f"?session={first_id[:10]}")
        await second.call_tool("echo", {"text": "second"})
        await first.call_tool("echo", {"text": "first"})
    got = await only_first.until(lambda e: e["kind"] == "response" and e["method"] == "tools/call")
    assert [e["kind"] for e in got] == ["request", "response"], "the other session's call is filtered out"
    assert all(e["session"] == first_id for e in got)
    assert all(e["verdict"] == "forward" and e["by"] is None for e in got), "no chain: every message forwarded"


async def test_tap_needs_the_token_and_good_parameters(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy: ProxyProcess = await start_proxy("--config", str(write_config(tmp_path, rules=False)))
    async with aiohttp.ClientSession() as client:
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}):
            async with client.get(f"{proxy.base}/_shadowproxy/tap", headers=headers) as response:
                assert response.status == 401
        for query, problem in (("?bodies=maybe", "bodies must be 1 or 0"), ("?sesion=ab", "unknown query parameter")):
            async with client.get(f"{proxy.base}/_shadowproxy/tap{query}", headers=AUTH) as response:
                assert response.status == 400
                assert problem in (await response.json())["error"]
        async with client.get(f"{proxy.base}/_shadowproxy/openapi.json", headers=AUTH) as response:
            document = await response.json()
        assert "text/event-stream" in document["paths"]["/tap"]["get"]["responses"]["200"]["content"]


async def run_cli(*args: str, token: str | None = TOKEN) -> asyncio.subprocess.Process:
    env = child_env()
    env.pop("SHADOWPROXY_ADMIN_TOKEN", None)
    if token is not None:
        env["SHADOWPROXY_ADMIN_TOKEN"] = token
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shadowproxy", "tap", *args, env=env, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def test_the_cli_follows_the_tap(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy: ProxyProcess = await start_proxy("--config", str(write_config(tmp_path, rules=True)))
    text_cli = await run_cli("--url", proxy.base, "--method", "tools/call", "--count", "2")
    json_cli = await run_cli("--url", proxy.base, "--json", "--bodies", "--count", "3")
    for cli in (text_cli, json_cli):
        assert cli.stderr is not None
        started = await asyncio.wait_for(cli.stderr.readline(), WAIT)
        assert started.startswith(b"shadowproxy tap: following "), started
    async with Client(proxy.url, mode="legacy") as client:
        await client.call_tool("echo", {"text": f"hi {RULE_SECRET}"})
    out, err = await asyncio.wait_for(text_cli.communicate(), WAIT)
    assert text_cli.returncode == 0, err
    request, reply = out.decode().splitlines()
    assert " -> " in request and " request " in request and "tools/call" in request and " modified " in request
    assert " <- " in reply and " response " in reply and reply.rstrip().endswith("http/files")
    assert "ms " in reply, "a reply shows its latency"
    out, err = await asyncio.wait_for(json_cli.communicate(), WAIT)
    assert json_cli.returncode == 0, err
    events = [orjson.loads(line) for line in out.splitlines()]
    assert [e["method"] for e in events] == ["initialize", "initialize", "notifications/initialized"]
    assert events[0]["body"]["params"]["clientInfo"]


async def test_the_cli_fails_clearly(start_proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proxy: ProxyProcess = await start_proxy("--config", str(write_config(tmp_path, rules=False)))
    cases = (
        (("--url", proxy.base), "wrong-token-0123456789", b"refused the admin token (401)"),
        (("--url", proxy.base), None, b"no admin token"),
        (("--url", "http://127.0.0.1:9"), TOKEN, b"cannot connect to http://127.0.0.1:9/_shadowproxy/tap"),
    )
    for args, token, message in cases:
        cli = await run_cli(*args, token=token)
        _, err = await asyncio.wait_for(cli.communicate(), WAIT)
        assert cli.returncode == 2 and message in err, err


def message(text: str) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"t": text}}}
    return decode(orjson.dumps(body))


def test_a_slow_listener_loses_events_and_is_told() -> None:
    tap = Tap()
    slow = tap.attach(TapFilter())
    picky = tap.attach(TapFilter(method="resources/"))
    for _ in range(QUEUE_LIMIT + 7):
        tap.publish(message("x"), Direction.CLIENT_TO_SERVER, None, "http", "files", None, FORWARD)
    assert slow.dropped == 7 and len(slow.events) == QUEUE_LIMIT
    assert picky.dropped == 0 and not picky.events
    chunk = slow.take()
    assert chunk.startswith(b'event: dropped\ndata: {"dropped":7,"total":7}\n\n')
    assert chunk.count(b"data: ") == QUEUE_LIMIT + 1
    assert slow.take() == b"", "the loss is told once"
    tap.publish(message("y"), Direction.CLIENT_TO_SERVER, None, "http", "files", None, block())
    assert slow.take().count(b'"verdict":"block"') == 1
    tap.detach(slow)
    tap.detach(picky)
    assert not tap.listeners


async def test_a_tap_stream_ends_when_the_proxy_stops(start_proxy, open_tap, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # With an hour to drain, a tap stream that held the shutdown up would outlast the wait below.
    config = write_config(tmp_path, rules=False, shutdown_timeout=3600)
    proxy: ProxyProcess = await start_proxy("--config", str(config))
    reader = await open_tap(proxy.base)
    proxy.signal(signal.SIGTERM)
    assert await proxy.wait() == 0
    assert reader.pumping is not None
    await asyncio.wait_for(reader.pumping, WAIT)
    assert reader.text.startswith(b": tap open")
