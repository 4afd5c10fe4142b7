"""A third-party server in a virtual server: ``@modelcontextprotocol/server-everything`` (npm, over stdio) beside
the SDK test server, driven by the SDK client. Completion, ``resources/read`` and ``resources/subscribe`` reach
the member that serves them, with the names translated (issue 20, item 3).

server-everything is installed with the conformance tools (``scripts/conformance.sh`` puts the pinned packages
and Node >= 22 under ``.tools/``); without it the test is skipped, and fails in CI.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import AsyncIterator

import mcp_types as types
import pytest
import pytest_asyncio
import yaml
from mcp.client import Client
from mcp.shared.exceptions import MCPError

from shadowproxy.core.errors import METHOD_NOT_FOUND
from tests.support import REPO, ProxyProcess, sdk_server_command
from tests.test_proxy_http import text_of

pytestmark = pytest.mark.asyncio(loop_scope="module")

TOOLS = REPO / ".tools"
EVERYTHING = TOOLS / "mcp" / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"


def node() -> str | None:
    """A Node of at least 22: the one the conformance tools installed, else the machine's."""
    for candidate in (str(TOOLS / "node" / "node_modules" / ".bin" / "node"), shutil.which("node")):
        if candidate is None or not os.access(candidate, os.X_OK):
            continue
        major = subprocess.run([candidate, "-p", "process.versions.node.split('.')[0]"], capture_output=True, text=True)
        if major.returncode == 0 and int(major.stdout.strip() or 0) >= 22:
            return candidate
    return None


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def proxy(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ProxyProcess]:
    runtime = node()
    if runtime is None or not EVERYTHING.exists():
        missing = "server-everything and Node >= 22 are installed under .tools/ by scripts/conformance.sh"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    folder = tmp_path_factory.mktemp("everything")
    settings = {
        "upstreams": {
            "everything": {"command": [runtime, str(EVERYTHING), "stdio"], "share": True},
            "local": {"command": sdk_server_command(), "share": True},
        },
        "virtual_servers": {"mixed": {"upstreams": ["everything", "local"], "join_timeout": 60}},
    }
    (folder / "sp.yaml").write_text(yaml.safe_dump(settings))
    started = ProxyProcess(folder / "proxy.log")
    try:
        yield await started.start("--config", str(folder / "sp.yaml"))
    finally:
        await started.stop()


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_server_everything_as_a_member(proxy: ProxyProcess, mode: str) -> None:
    logged: list[str] = []
    subscribed = asyncio.Event()

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logged.append(str(params.data))
        if "Subscribe" in logged[-1]:
            subscribed.set()

    async with Client(f"{proxy.base}/mcp/mixed", mode=mode, logging_callback=on_log) as client:
        tools = {tool.name for tool in (await client.list_tools(cache_mode="bypass")).tools}
        assert {"everything__echo", "everything__get-sum", "local__echo"} <= tools
        assert "The sum of 2 and 3 is 5" in text_of(await client.call_tool("everything__get-sum", {"a": 2, "b": 3}))
        assert text_of(await client.call_tool("local__echo", {"text": "beside"})) == "beside"

        # Completion of a prompt's argument, by the prompt's namespaced name, with the context narrowing it.
        prompts = {prompt.name for prompt in (await client.list_prompts()).prompts}
        assert {"everything__completable-prompt", "local__greet"} <= prompts
        ref = types.PromptReference(name="everything__completable-prompt")
        done = await client.complete(ref, {"name": "department", "value": "Eng"})
        assert done.completion.values == ["Engineering"]
        done = await client.complete(ref, {"name": "name", "value": "A"}, {"department": "Engineering"})
        assert done.completion.values == ["Alice"]
        # ... and of a resource template's variable, by its URI template.
        templates = (await client.list_resource_templates()).resource_templates
        text_template = next(t.uri_template for t in templates if t.uri_template.startswith("demo://resource/dynamic/"))
        done = await client.complete(
            types.ResourceTemplateReference(uri=text_template), {"name": "resourceId", "value": "1"}
        )
        assert done.completion.values and all(value.startswith("1") for value in done.completion.values)

        # resources/read by URI: each member's own resource from its owner.
        resources = (await client.list_resources()).resources
        document = next(r for r in resources if str(r.uri).startswith("demo://resource/static/document/"))
        read = await client.read_resource(str(document.uri))
        assert str(read.contents[0].uri) == str(document.uri) and read.contents[0].text  # type: ignore[union-attr]
        assert text_of_resource(await client.read_resource("test://static")) == "static text"

        if mode != "legacy":
            # 2026-07-28 has no resources/subscribe (subscriptions/listen instead): the member's bridge answers as a
            # 2026-07-28 server does.
            with pytest.raises(MCPError) as refused:
                await client.subscribe_resource(str(document.uri))
            assert refused.value.error.code == METHOD_NOT_FOUND
            return
        # resources/subscribe reaches server-everything, which acknowledges it in a log message to this client.
        await client.set_logging_level("debug")
        assert await client.subscribe_resource(str(document.uri)) is not None
        await asyncio.wait_for(subscribed.wait(), 30)
        assert any(str(document.uri) in line for line in logged if "Subscribe" in line)


def text_of_resource(result: types.ReadResourceResult) -> str:
    return result.contents[0].text  # type: ignore[union-attr,no-any-return]
