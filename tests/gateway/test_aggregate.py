"""A virtual server over real members: the SDK test server over stdio and over HTTP, and a counting SDK server,
driven by the official SDK client in both eras over Streamable HTTP, WebSocket and the stdio front."""

from __future__ import annotations

import asyncio
import json
import sys
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import mcp_types as types
import pytest
import pytest_asyncio
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError
from openapi_spec_validator import validate

from tests.streams.ws_transport import websocket_client
from tests.support import REPO, HttpServerProcess, ProxyProcess, child_env, sdk_server_command, until
from tests.test_proxy_http import ERAS, sampling, text_of

pytestmark = pytest.mark.asyncio(loop_scope="module")

MEMBER = REPO / "tests" / "servers" / "gateway_member.py"
RULES = """
rules:
  - id: no-local-failures
    match: {direction: client_to_server, method: tools/call, upstream: local, tool: "*fail"}
    action: {block: {message: "local failures are not allowed"}}
"""


def config_text(remote_url: str) -> str:
    python = sys.executable
    return f"""
upstreams:
  local: {{command: "{python} {REPO / "tests/servers/sdk_server.py"}", share: true}}
  remote: {{url: "{remote_url}"}}
  counter: {{command: "{python} {MEMBER}", share: true}}
  sleepy: {{command: "{python} {REPO / "tests/servers/slow_start.py"} 600"}}
virtual_servers:
  all:
    upstreams: [local, remote, counter]
    page_size: 4
    join_timeout: 60
    retry: 0.2
    tools:
      exclude: ["counter__list_*"]
      rename: {{local__echo: say}}
      describe: {{say: "Say it back."}}
    cache: {{results: {{tools: ["counter__*"], ttl: 60}}}}
  found:
    upstreams: [local, counter]
    discovery: search
    join_timeout: 60
  counted:
    upstreams: [counter]
    join_timeout: 60
  waiting:
    upstreams: [local, sleepy]
    join_timeout: 1
health: {{interval: 0}}
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def remote(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[HttpServerProcess]:
    server = HttpServerProcess(tmp_path_factory.mktemp("remote") / "server.log")
    try:
        yield await server.start()
    finally:
        await server.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def proxy(tmp_path_factory: pytest.TempPathFactory, remote: HttpServerProcess) -> AsyncIterator[ProxyProcess]:
    folder = tmp_path_factory.mktemp("gateway")
    (folder / "rules.yaml").write_text(RULES)
    (folder / "shadowproxy.yaml").write_text(config_text(remote.url))
    started = ProxyProcess(folder / "proxy.log")
    await started.start("--config", str(folder / "shadowproxy.yaml"), "--rules", str(folder / "rules.yaml"))
    try:
        yield started
    finally:
        await started.stop()


async def every_tool(client: Client) -> tuple[list[str], int]:
    """All tool names across the pages, and how many pages there were."""
    names: list[str] = []
    cursor = None
    pages = 0
    while True:
        result = await client.list_tools(cursor=cursor, cache_mode="bypass")
        pages += 1
        names += [tool.name for tool in result.tools]
        cursor = result.next_cursor
        if cursor is None:
            return names, pages


async def check_aggregate(server: Any, mode: str) -> None:
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with Client(server, mode=mode, sampling_callback=sampling) as client:
        names, pages = await every_tool(client)
        assert pages > 3  # 4 a page: the pages span the members
        assert len(names) == len(set(names))
        assert {"say", "local__progress", "remote__echo", "remote__progress", "counter__lookup"} <= set(names)
        assert "local__echo" not in names and "counter__list_count" not in names
        assert all(name == "say" or name.split("__")[0] in ("local", "remote", "counter") for name in names)
        tools = {tool.name: tool for tool in (await client.list_tools(cache_mode="bypass")).tools}
        assert tools["say"].description == "Say it back."

        assert text_of(await client.call_tool("say", {"text": "one"})) == "one"
        assert text_of(await client.call_tool("remote__echo", {"text": "two"})) == "two"
        assert text_of(await client.call_tool("counter__lookup", {"key": "k"})).startswith("k: lookup")
        result = await client.call_tool("remote__progress", {"steps": 3}, progress_callback=on_progress)
        assert text_of(result) == "done 3" and progress == [1, 2, 3]

        prompts = [prompt.name for prompt in (await client.list_prompts()).prompts]
        assert {"local__greet", "remote__greet"} <= set(prompts)
        prompt = await client.get_prompt("remote__greet", {"name": "Ada"})
        assert prompt.messages[0].content.text == "Hello, Ada!"  # type: ignore[union-attr]
        resource = await client.read_resource("test://static")
        assert resource.contents[0].text == "static text"  # type: ignore[union-attr]
        with pytest.raises(MCPError):
            await client.read_resource("test://missing")
        with pytest.raises(MCPError, match="unknown tool"):
            await client.call_tool("nobody__echo", {"text": "x"})

        with pytest.raises(MCPError, match="local failures are not allowed"):
            await client.call_tool("local__fail", {"reason": "x"})
        failed = await client.call_tool("remote__fail", {"reason": "kaboom"})
        assert failed.is_error  # the rule names the member: the same tool of another member passes

        if mode == "legacy":
            answer = await client.call_tool("remote__ask", {"question": "life"})
            assert text_of(answer) == "model said: answer to life"
            answer = await client.call_tool("local__ask", {"question": "death"})
            assert text_of(answer) == "model said: answer to death"


@pytest.mark.parametrize("mode", ERAS)
async def test_streamable_http(proxy: ProxyProcess, mode: str) -> None:
    await check_aggregate(f"{proxy.base}/mcp/all", mode)


async def test_websocket(proxy: ProxyProcess) -> None:
    await check_aggregate(websocket_client(proxy.base.replace("http://", "ws://") + "/mcp/all/ws"), "legacy")


async def test_stdio_front(proxy: ProxyProcess, remote: HttpServerProcess, tmp_path: Path) -> None:
    config = tmp_path / "shadowproxy.yaml"
    config.write_text(config_text(remote.url))
    command = ["-m", "shadowproxy", "stdio", "--config", str(config), "--server", "all"]
    params = StdioServerParameters(command=sys.executable, args=command, env=child_env(), cwd=str(REPO))
    async with Client(params, mode="legacy") as client:
        names, _ = await every_tool(client)
        assert {"say", "remote__echo", "counter__lookup"} <= set(names)
        assert text_of(await client.call_tool("remote__echo", {"text": "via stdio"})) == "via stdio"


async def list_count(client: Client) -> int:
    return int(text_of(await client.call_tool("counter__list_count", {})))


async def test_lists_are_cached(proxy: ProxyProcess) -> None:
    """The counter counts the tools/list it answers: a new session's lists come from the cache."""
    url = f"{proxy.base}/mcp/counted"
    async with Client(url, mode="legacy") as first:
        await first.list_tools(cache_mode="bypass")
        before = await list_count(first)
    changed = asyncio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with Client(url, mode="legacy", message_handler=on_message) as second:
        for _ in range(3):
            await second.list_tools(cache_mode="bypass")
        assert await list_count(second) == before
        # The member's list_changed reaches the client, and the next tools/list reaches the member.
        await second.call_tool("counter__change", {})
        await asyncio.wait_for(changed.wait(), 30)
        await second.list_tools(cache_mode="bypass")
        assert await list_count(second) == before + 1


async def test_the_members_ttl_is_honoured(proxy: ProxyProcess) -> None:
    """In the 2026-07-28 era the SDK server says ``ttlMs: 0``: its lists are not kept."""
    async with Client(f"{proxy.base}/mcp/counted", mode="2026-07-28") as client:
        before = await list_count(client)
        for _ in range(2):
            await client.list_tools(cache_mode="bypass")
        assert await list_count(client) >= before + 2


async def test_results_of_read_only_idempotent_tools_are_cached(proxy: ProxyProcess) -> None:
    async with Client(f"{proxy.base}/mcp/all", mode="legacy") as client:
        await client.list_tools(cache_mode="bypass")
        first = text_of(await client.call_tool("counter__lookup", {"key": "cached"}))
        assert text_of(await client.call_tool("counter__lookup", {"key": "cached"})) == first
        assert text_of(await client.call_tool("counter__lookup", {"key": "other"})) != first.replace("cached", "other")


@pytest.mark.parametrize("mode", ERAS)
async def test_tool_search(proxy: ProxyProcess, mode: str) -> None:
    async with Client(f"{proxy.base}/mcp/found", mode=mode) as client:
        listed = [tool.name for tool in (await client.list_tools(cache_mode="bypass")).tools]
        assert listed == ["search_tools", "call_tool"]
        found = await client.call_tool("search_tools", {"query": "echo text back", "detail": "name"})
        names = [tool["name"] for tool in found.structured_content["tools"]]  # type: ignore[index]
        assert names[0] == "local__echo"
        called = await client.call_tool("call_tool", {"name": "local__echo", "arguments": {"text": "found"}})
        assert text_of(called) == "found"
        with pytest.raises(MCPError, match="local failures are not allowed"):
            await client.call_tool("call_tool", {"name": "local__fail", "arguments": {"reason": "x"}})


async def readyz(proxy: ProxyProcess) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{proxy.base}/readyz") as response:
        return await response.json()  # type: ignore[no-any-return]


async def test_member_down_and_back(proxy: ProxyProcess, remote: HttpServerProcess) -> None:
    """The HTTP member dies: its tools leave the lists, its calls fail naming it, the others go on; it comes back
    on the same port and the client hears notifications/tools/list_changed."""
    changed = asyncio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with Client(f"{proxy.base}/mcp/all", mode="legacy", message_handler=on_message) as client:
        assert "remote__echo" in (await every_tool(client))[0]
        port = remote.url.split(":")[2].split("/")[0]
        await remote.stop()
        with pytest.raises(MCPError, match="upstream 'remote' of virtual server 'all' is unavailable") as failure:
            await client.call_tool("remote__echo", {"text": "x"})
        assert failure.value.error.code == -32000
        names, _ = await every_tool(client)
        assert "remote__echo" not in names and "local__progress" in names
        assert text_of(await client.call_tool("say", {"text": "still here"})) == "still here"
        problems = (await readyz(proxy)).get("problems", [])
        assert any("virtual server all: member remote left out" in problem for problem in problems)

        await remote.spawn(*sdk_server_command(), "--http", port)
        await asyncio.wait_for(changed.wait(), 60)
        assert text_of(await client.call_tool("remote__echo", {"text": "back"})) == "back"
        assert "remote__echo" in (await every_tool(client))[0]
    await until(lambda: _no_gateway_problems(proxy), "the problem to clear")


async def _no_gateway_problems(proxy: ProxyProcess) -> bool:
    return not any("virtual server" in problem for problem in (await readyz(proxy)).get("problems", []))


async def test_a_slow_member_does_not_hold_the_others_back(proxy: ProxyProcess) -> None:
    """A member still starting after ``join_timeout`` is left out of the session's first answers."""
    async with Client(f"{proxy.base}/mcp/waiting", mode="legacy") as client:
        names, _ = await every_tool(client)
        assert "local__progress" in names and not any(name.startswith("sleepy__") for name in names)
        with pytest.raises(MCPError, match="upstream 'sleepy' of virtual server 'waiting' is unavailable: still"):
            await client.call_tool("sleepy__noop", {})
        assert text_of(await client.call_tool("local__echo", {"text": "not held"})) == "not held"


async def test_rest_facade(proxy: ProxyProcess) -> None:
    base = f"{proxy.base}/v1/mcp/servers"
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as response:
            servers = {server["name"]: server for server in (await response.json())["servers"]}
        assert servers["all"]["kind"] == "virtual" and servers["local"]["kind"] == "upstream"
        async with http.get(f"{base}/all/openapi.json") as response:
            document = await response.json()
        validate(document)
        path = "/v1/mcp/servers/all/tools/remote__echo"
        assert document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["required"] == [
            "text"
        ]
        async with http.post(proxy.base + path, json={"text": "rest"}) as response:
            assert response.status == 200 and (await response.json())["content"][0]["text"] == "rest"
        for tool, body, status in (
            ("remote__fail", {"reason": "x"}, 200),  # a tool error is the tool's result
            ("local__fail", {"reason": "x"}, 403),  # the rule naming the member
            ("nobody__echo", {}, 404),
            ("remote__echo", {"txt": "typo"}, 422),
        ):
            async with http.post(f"{base}/all/tools/{tool}", json=body) as response:
                assert response.status == status, (tool, await response.text())
        async with http.get(f"{base}/all/resources/read", params={"uri": "test://static"}) as response:
            assert (await response.json())["contents"][0]["text"] == "static text"
        async with http.post(f"{base}/all/prompts/remote__greet", json={"name": "Ada"}) as response:
            assert (await response.json())["messages"][0]["content"]["text"] == "Hello, Ada!"
        async with http.get(f"{base}/nothing/tools") as response:
            assert response.status == 404


async def shadowproxy(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shadowproxy", *args, stdout=PIPE, stderr=PIPE, env=child_env(), cwd=REPO
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


async def test_tools_commands(proxy: ProxyProcess) -> None:
    code, out, _ = await shadowproxy(
        "tools", "call", "all", "remote__echo", "--args", '{"text": "cli"}', "--url", proxy.base
    )
    assert (code, out) == (0, "cli\n")
    code, _, err = await shadowproxy(
        "tools", "call", "all", "local__fail", "--args", '{"reason": "x"}', "--url", proxy.base
    )
    assert code == 1 and "HTTP 403" in err
    code, out, _ = await shadowproxy("tools", "list", "found", "--json", "--url", proxy.base)
    assert code == 0 and [tool["name"] for tool in json.loads(out)["found"]] == ["search_tools", "call_tool"]
