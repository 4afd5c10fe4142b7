"""The bridge in front of Streamable HTTP servers: the era-limited SDK test servers over HTTP, both directions,
and the npm reference server ``@modelcontextprotocol/server-everything`` (streamableHttp), which speaks only the
handshake era, reached by a 2026-07-28 client."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
import pytest_asyncio
import yaml
from mcp import Client

from tests.bridge.conftest import EraHttpServer, _listening
from tests.bridge.rounds import legacy_round, modern_cancel_and_listen, modern_round, resource_updates
from tests.bridge.test_modern_to_handshake import elicitation, sampling, text_of
from tests.support import REPO, Process, ProxyProcess, child_env, free_port, until

pytestmark = pytest.mark.asyncio(loop_scope="package")

# Installed by scripts/conformance.sh (which .ci/run runs before the tests), pinned in scripts/conformance/tools.
TOOLS = REPO / ".tools"
EVERYTHING = TOOLS / "mcp" / "node_modules" / ".bin" / "mcp-server-everything"
NODE_BIN = TOOLS / "node" / "node_modules" / ".bin"


@pytest_asyncio.fixture(scope="module", loop_scope="package")
async def everything(tmp_path_factory: Any) -> AsyncIterator[str]:
    """server-everything in streamableHttp mode; its URL."""
    if not EVERYTHING.exists():
        pytest.fail(f"{EVERYTHING} is missing: scripts/conformance.sh installs it (with Node 22) on its first run")
    port = free_port()
    server = Process(tmp_path_factory.mktemp("everything") / "server.log")
    env = child_env(PORT=str(port), PATH=f"{NODE_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    await server.spawn(str(EVERYTHING), "streamableHttp", env=env)
    try:
        await until(lambda: _listening(port, server), "server-everything")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        await server.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="package")
async def http_proxy(
    tmp_path_factory: Any, old_http: EraHttpServer, new_http: EraHttpServer, everything: str
) -> AsyncIterator[ProxyProcess]:
    tmp: Path = tmp_path_factory.mktemp("bridge_http")
    upstreams = {"old": {"url": old_http.url}, "new": {"url": new_http.url}, "everything": {"url": everything}}
    path = tmp / "shadowproxy.yaml"
    path.write_text(yaml.safe_dump({"upstreams": upstreams}))
    started = ProxyProcess(tmp / "proxy.log")
    try:
        yield await started.start("--config", str(path))
    finally:
        await started.stop()


async def test_a_2026_client_reaches_a_handshake_only_http_server(http_proxy: ProxyProcess, tmp_path: Path) -> None:
    async with Client(
        f"{http_proxy.base}/mcp/old", mode="2026-07-28", sampling_callback=sampling, elicitation_callback=elicitation
    ) as client:
        # The SDK's server asks during a call on the session's GET stream, which the bridge's session reads.
        await modern_round(client)
        await modern_cancel_and_listen(client, tmp_path / "cancelled")


def established_to(port: int) -> int:
    """TCP connections on this machine established to ``port`` on 127.0.0.1 (Linux's /proc/net/tcp)."""
    remote = f"0100007F:{port:04X}"
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for line in lines if line.split()[2] == remote and line.split()[3] == "01")


async def test_bridged_calls_give_their_upstream_connections_back(
    http_proxy: ProxyProcess, old_http: EraHttpServer
) -> None:
    port = int(old_http.url.split(":")[2].split("/")[0])
    async with Client(f"{http_proxy.base}/mcp/old", mode="2026-07-28") as client:
        for n in range(30):
            assert text_of(await client.call_tool("echo", {"text": str(n)})) == str(n)
        # Each answer came as an event stream; a finished one returns its connection to the pool (it took one
        # connection per call, kept, before).
        assert established_to(port) < 10


async def test_a_legacy_client_reaches_a_modern_only_http_server(http_proxy: ProxyProcess) -> None:
    updated, on_message = resource_updates()
    async with Client(
        f"{http_proxy.base}/mcp/new", mode="legacy", sampling_callback=sampling, message_handler=on_message
    ) as client:
        await legacy_round(client, updated)


async def test_a_2026_client_reaches_server_everything(http_proxy: ProxyProcess) -> None:
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with Client(
        f"{http_proxy.base}/mcp/everything",
        mode="2026-07-28",
        sampling_callback=sampling,
        elicitation_callback=elicitation,
    ) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert {"echo", "trigger-sampling-request", "trigger-elicitation-request"} <= tools
        discovered = types.DiscoverResult.model_validate(await client.session.send_discover("2026-07-28"))
        assert discovered.supported_versions == ["2026-07-28"] and discovered.capabilities.tools is not None
        assert (await client.call_tool("echo", {"message": "hi"})).content[0].text == "Echo: hi"  # type: ignore[union-attr]
        arguments = {"duration": 0.2, "steps": 2}
        await client.call_tool("trigger-long-running-operation", arguments, progress_callback=on_progress)
        assert progress == [1, 2]
        # server-everything asks on the call's own response stream; its sampling request is answered by the retry.
        sampled = await client.call_tool("trigger-sampling-request", {"prompt": "life", "maxTokens": 10})
        assert "answer to Resource trigger-sampling-request context: life" in sampled.content[0].text  # type: ignore[union-attr]
        elicited = await client.call_tool("trigger-elicitation-request", {})
        assert "Name: Ada" in str(elicited.content)
        static = await client.read_resource("demo://resource/static/document/architecture.md")
        assert static.contents[0].text.startswith("# Everything Server")  # type: ignore[union-attr]
