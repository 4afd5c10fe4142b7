"""The conformance fixture, driven by the `mcp` SDK client: both eras, over stdio and Streamable HTTP.

scripts/conformance.sh judges the proxy by the official suite's verdict on this fixture, so the fixture
must itself be right; these tests check it without Node.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError

from tests import support

FIXTURE = Path(__file__).resolve().parent / "conformance_fixture.py"
LEGACY = "legacy"
MODERN = "2026-07-28"
ERAS = [LEGACY, MODERN]
TRANSPORTS = ["stdio", "http"]


async def answer_sampling(context: ClientRequestContext, params: types.CreateMessageRequestParams) -> Any:
    question = params.messages[0].content
    text = question.text if isinstance(question, types.TextContent) else "?"
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text=f"Paris ({text})"), model="test-model"
    )


async def answer_elicitation(context: ClientRequestContext, params: types.ElicitRequestParams) -> Any:
    schema = getattr(params, "requested_schema", None) or {}
    content = {name: f"{name}-value" for name in schema.get("properties", {})}
    return types.ElicitResult(action="accept", content=content)


async def answer_roots(context: ClientRequestContext) -> Any:
    return types.ListRootsResult(roots=[types.Root(uri="file:///test/root", name="Test Root")])


@asynccontextmanager
async def serve_http(log: Path) -> AsyncIterator[str]:
    """The fixture serving Streamable HTTP on a free port; yields its /mcp URL."""
    port = support.free_port()
    server = support.Process(log)
    await server.spawn(sys.executable, str(FIXTURE), "--transport", "http", "--port", str(port))
    url = f"http://127.0.0.1:{port}/mcp"

    async def answers() -> bool:
        assert server.proc is not None
        if server.proc.returncode is not None:
            raise AssertionError(f"the fixture exited:\n{server.log()}")
        try:
            async with aiohttp.ClientSession() as http, http.get(url) as _:
                return True
        except aiohttp.ClientError:
            return False

    try:
        await support.until(answers, "the HTTP fixture")
        yield url
    finally:
        await server.stop()


@asynccontextmanager
async def connect(transport: str, era: str, tmp_path: Path, *options: str) -> AsyncIterator[Client]:
    """An SDK client on `transport` speaking `era`, answering sampling, elicitation and roots (`options`: the
    fixture's, over stdio)."""
    async with AsyncExitStack() as stack:
        args = [str(FIXTURE), "--transport", "stdio", *options]
        target: Any = StdioServerParameters(command=sys.executable, args=args)
        if transport == "http":
            target = await stack.enter_async_context(serve_http(tmp_path / "fixture.log"))
        client = Client(
            target,
            mode=era,
            sampling_callback=answer_sampling,
            elicitation_callback=answer_elicitation,
            list_roots_callback=answer_roots,
            read_timeout_seconds=30,
        )
        yield await stack.enter_async_context(client)


def text_of(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent), block
    return block.text


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("era", ERAS)
async def test_core_scenarios(transport: str, era: str, tmp_path: Path) -> None:
    async with connect(transport, era, tmp_path) as client:
        assert client.protocol_version == ("2025-11-25" if era == LEGACY else MODERN)
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"test_simple_text", "test_image_content", "test_tool_with_progress", "test_sampling"} <= names

        assert text_of(await client.call_tool("test_simple_text")) == "This is a simple text response for testing."
        image = (await client.call_tool("test_image_content")).content[0]
        assert isinstance(image, types.ImageContent) and image.mime_type == "image/png"
        assert base64.b64decode(image.data).startswith(b"\x89PNG")
        failed = await client.call_tool("test_error_handling")
        assert failed.is_error and "intentionally" in text_of(failed)

        seen: list[tuple[float, float | None]] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append((progress, total))

        await client.call_tool("test_tool_with_progress", progress_callback=on_progress)
        assert seen == [(0, 100), (50, 100), (100, 100)]

        static = (await client.read_resource("test://static-text")).contents[0]
        assert isinstance(static, types.TextResourceContents)
        assert static.text == "This is the content of the static text resource."
        templated = (await client.read_resource("test://template/123/data")).contents[0]
        assert isinstance(templated, types.TextResourceContents)
        assert json.loads(templated.text) == {"id": "123", "templateTest": True, "data": "Data for ID: 123"}
        with pytest.raises(MCPError) as missing:
            await client.read_resource("test://nonexistent-resource-for-conformance-testing")
        assert missing.value.error.code == types.INVALID_PARAMS

        prompt = await client.get_prompt("test_prompt_with_arguments", {"arg1": "hello", "arg2": "world"})
        first = prompt.messages[0].content
        assert isinstance(first, types.TextContent)
        assert first.text == "Prompt with arguments: arg1='hello', arg2='world'"
        completion = await client.complete(
            types.PromptReference(type="ref/prompt", name="test_prompt_with_arguments"),
            {"name": "arg1", "value": "par"},
        )
        assert completion.completion.values == ["paris", "park", "party"]


@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")  # subscribe is legacy-era
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_legacy_server_requests(transport: str, tmp_path: Path) -> None:
    async with connect(transport, LEGACY, tmp_path) as client:
        sampled = await client.call_tool("test_sampling", {"prompt": "capital of France?"})
        assert text_of(sampled) == "LLM response: Paris (capital of France?)"
        elicited = await client.call_tool("test_elicitation", {"message": "who are you?"})
        assert "action=accept" in text_of(elicited) and "username-value" in text_of(elicited)
        assert isinstance(await client.subscribe_resource("test://watched-resource"), types.EmptyResult)
        assert isinstance(await client.unsubscribe_resource("test://watched-resource"), types.EmptyResult)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_modern_input_required(transport: str, tmp_path: Path) -> None:
    async with connect(transport, MODERN, tmp_path) as client:
        named = await client.call_tool("test_input_required_result_elicitation")
        assert text_of(named) == "Hello, name-value!"
        rounds = await client.call_tool("test_input_required_result_multi_round")
        assert text_of(rounds) == "Done: color=color-value"
        multiple = await client.call_tool("test_input_required_result_multiple_inputs")
        assert "greeting=Paris (Generate a greeting)" in text_of(multiple)
        assert "roots=file:///test/root" in text_of(multiple)
        stateful = await client.call_tool("test_input_required_result_request_state")
        assert "state-ok" in text_of(stateful)

        first = await client.session.call_tool("test_input_required_result_tampered_state", allow_input_required=True)
        assert isinstance(first, types.InputRequiredResult) and first.request_state
        answers = {"user_name": types.ElicitResult(action="accept", content={"name": "Mallory"})}
        with pytest.raises(MCPError) as tampered:
            await client.session.call_tool(
                "test_input_required_result_tampered_state",
                input_responses=answers,
                request_state=first.request_state[:-4] + "AAAA",
            )
        assert tampered.value.error.code == types.INVALID_PARAMS


async def test_http_stream_resumes_after_the_server_closes_it(tmp_path: Path) -> None:
    async with connect("http", LEGACY, tmp_path) as client:
        result = await client.call_tool("test_reconnection")
        assert text_of(result) == "Reconnection test completed"


@pytest.mark.parametrize("era", ERAS)
async def test_verbatim_schemas_are_listed_intact(era: str, tmp_path: Path) -> None:
    async with connect("stdio", era, tmp_path) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        schema = tools["json_schema_2020_12_tool"].input_schema
        assert schema["$defs"]["address"]["$anchor"] == "addressDef"
        assert schema["if"] and schema["then"] == {"required": ["phone"]} and schema["additionalProperties"] is False
        assert tools["test_custom_headers"].input_schema["properties"]["region"]["x-mcp-header"] == "Region"


async def test_limited_to_the_handshake_era_the_2026_tools_ask_mid_call(tmp_path: Path) -> None:
    """What the bridge carries to a 2026-07-28 client: the InputRequiredResult tools ask as server requests."""
    async with connect("stdio", LEGACY, tmp_path, "--era", "handshake") as client:
        capabilities = client.server_capabilities
        # Declared as the 2026-07-28 half's server/discover declares them (the bridge answers discover from these).
        assert capabilities.tools and capabilities.tools.list_changed is True
        assert capabilities.prompts and capabilities.prompts.list_changed is True
        named = await client.call_tool("test_input_required_result_elicitation")
        assert text_of(named) == "Hello, name-value!"
        rounds = await client.call_tool("test_input_required_result_multi_round")
        assert text_of(rounds) == "Done: color=color-value"
        multiple = await client.call_tool("test_input_required_result_multiple_inputs")
        assert "greeting=Paris (Generate a greeting)" in text_of(multiple)
        assert "roots=file:///test/root" in text_of(multiple)
        prompt = await client.get_prompt("test_input_required_result_prompt")
        first = prompt.messages[0].content
        assert isinstance(first, types.TextContent) and first.text == "Prompt using context: context-value"


async def test_limited_to_2026_the_handshake_tools_ask_in_input_required(tmp_path: Path) -> None:
    """What the bridge carries to a handshake-era client: the sampling and elicitation tools ask through
    InputRequiredResult, and complete as they do in the handshake era."""
    async with connect("stdio", MODERN, tmp_path, "--era", "modern") as client:
        first = await client.session.call_tool("test_sampling", {"prompt": "capital?"}, allow_input_required=True)
        assert isinstance(first, types.InputRequiredResult)
        assert [request.method for request in first.input_requests.values()] == ["sampling/createMessage"]
        sampled = await client.call_tool("test_sampling", {"prompt": "capital of France?"})
        assert text_of(sampled) == "LLM response: Paris (capital of France?)"
        elicited = await client.call_tool("test_elicitation", {"message": "who are you?"})
        assert "action=accept" in text_of(elicited) and "username-value" in text_of(elicited)
        defaults = await client.call_tool("test_elicitation_sep1034_defaults")
        assert text_of(defaults).startswith("Elicitation completed: action=accept")
        assert '"verified": "verified-value"' in text_of(defaults)
